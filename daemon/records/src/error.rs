//! The records store's errors.

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("cannot open the call records store {path}: {source}; check that the data directory exists and is writable")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("call records query failed: {0}")]
    Query(#[from] rusqlite::Error),
    #[error("a stored call record is unreadable: {0}; the records store (calls.db) may be damaged: stop the daemon and remove it to start afresh")]
    Corrupt(String),
    #[error("the call records store is closed (the daemon is stopping)")]
    Closed,
    #[error("the call records store's thread failed: {0}")]
    Thread(String),
}

pub type Result<T, E = RecordsError> = std::result::Result<T, E>;
