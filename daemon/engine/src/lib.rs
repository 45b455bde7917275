//! hearth's engine: everything between "call function X" and a worker's
//! answer, knowing nothing of HTTP.

pub mod code;
pub mod deps;
pub mod pool;
pub mod publish;
pub mod router;
pub mod runtime;
