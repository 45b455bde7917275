//! Access control's errors, and the API errors they answer with.

use hearth_api::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot draw random bytes for a token: {0}")]
    Random(String),
    #[error("the store failed: {0}")]
    Store(#[from] hearth_store::StoreError),
    #[error("cannot write the admin token file {path}: {reason}")]
    TokenFile { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("a token named \"{0}\" exists already")]
    Exists(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Invalid(msg) => ApiError::bad_request(
                msg,
                "scopes are admin, deploy, read and invoke; --app limits deploy and invoke tokens",
            ),
            AuthError::Exists(name) => ApiError::bad_request(
                format!("a token named \"{name}\" exists already"),
                format!(
                    "choose another name, or revoke it first with `hearth token revoke {name}`"
                ),
            ),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// 401: no token, or one that is not valid.
pub fn unauthorized(message: &str, needed: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        format!("{message}; this needs a token with scope {needed}"),
        "send `Authorization: Bearer TOKEN`; on the daemon's host the CLI finds the admin token by itself (root only), elsewhere set HEARTH_TOKEN or --token; make tokens with `hearth token create`",
    )
}
