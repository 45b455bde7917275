//! hearth's API contract: what a function declares (hearth.toml), what a
//! deploy carries (bundles), and the management API's request and response
//! types, error codes and routes. The gateway, the CLI and the tests use
//! these types; nothing here knows of HTTP servers, the store or workers.

pub mod bundle;
pub mod manifest;
mod types;

pub use types::*;
