//! hearth: a function runtime. A supervisor daemon keeps warm pools of
//! interpreter processes that speak MessagePack over pipes; an HTTP gateway
//! routes each call to a worker of the function's live version.
//!
//! This crate is the `hearth` binary: the HTTP gateway, the CLI and
//! `hearth serve`. The layers below it are crates of their own (see
//! docs/ARCHITECTURE.md); they are re-exported here under their old names.

pub mod cli;
pub mod client;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod docs;
pub mod gateway;
pub mod launcher;
pub mod metrics;
pub mod records;
pub mod service;
pub mod telemetry;
pub mod templates;

pub use hearth_api as api;
pub use hearth_api::{bundle, manifest};
pub use hearth_engine::{code, deps, pool, router, runtime};
pub use hearth_protocol as protocol;
pub use hearth_sandbox::{cgroup, isolation};
pub use hearth_store as store;
