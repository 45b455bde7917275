//! hearth's access control. Tokens are random (256 bits), shown once,
//! kept only as a SHA-256 (enough for random secrets; no slow password
//! hash), found by that hash and compared in constant time ([`token`]).
//! The [`TokenBook`] holds every valid token in memory, refreshed from the
//! store, and answers who a bearer is ([`Principal`]); [`RateLimits`]
//! throttles each token's management requests.
//!
//! The gateway checks every route's scope (`hearth_api::routes::access_of`)
//! with these before any handler runs; function code never holds a token.

mod book;
mod error;
mod limits;
mod principal;
pub mod token;

pub use book::{ConfigToken, LocalAdmin, TokenBook, LOCAL_ADMIN, TOKEN_FILE};
pub use error::{unauthorized, AuthError};
pub use limits::{Rate, RateLimits};
pub use principal::Principal;
