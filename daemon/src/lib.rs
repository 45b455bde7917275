//! hearth: a function runtime. A supervisor daemon keeps warm pools of
//! interpreter processes that speak MessagePack over pipes; an HTTP gateway
//! routes each call to a worker of the function's live version.

pub mod api;
pub mod bundle;
pub mod cgroup;
pub mod cli;
pub mod client;
pub mod code;
pub mod daemon;
pub mod deps;
pub mod gateway;
pub mod isolation;
pub mod manifest;
pub mod pool;
pub mod protocol;
pub mod publish;
pub mod router;
pub mod runtime;
pub mod store;
pub mod telemetry;
