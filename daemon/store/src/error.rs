//! The store's errors.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {source}; check that the data directory exists and is writable")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot update the store's schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored manifest of {function} version {version} is unreadable: {reason}")]
    Corrupt {
        function: String,
        version: u32,
        reason: String,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
