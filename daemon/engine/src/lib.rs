//! hearth's engine: everything between "call function X" and a worker's
//! answer, knowing nothing of HTTP. `Engine::invoke` is the one path of
//! every call; releases, aliases and applications are its parts; typed
//! events say what happened.

mod aliases;
mod apps;
pub mod call;
mod catalog;
pub mod cells;
pub mod code;
pub mod contract;
pub mod deploy;
pub mod deps;
mod engine;
mod error;
pub mod events;
pub mod gc;
mod invoke;
pub mod leftovers;
mod locks;
mod manage;
pub mod page;
pub mod pool;
pub mod rates;
mod releases;
pub mod router;
pub mod runtime;
pub mod stats;
mod versions;
mod watch;

pub use aliases::Aliases;
pub use apps::Apps;
pub use call::{Caller, Dispatch, Invocation, Outcome};
pub use deploy::DeployOptions;
pub use engine::{Engine, EngineConfig};
pub use error::{function_error, PublishError};
pub use events::{CallDetail, Event, EventSink, Events};
pub use gc::{Retention, DEFAULT_KEEP_RELEASES, DEFAULT_KEEP_VERSIONS};
pub use invoke::Resolved;
pub use manage::MAX_INFO_BYTES;
pub use releases::Releases;
pub use stats::{StatsError, DEFAULT_FLUSH_INTERVAL, DEFAULT_RETENTION};
pub use versions::{Versions, DEFAULT_DRAIN_GRACE, LOAD_TIMEOUT};
pub use watch::WATCH_INTERVAL;
