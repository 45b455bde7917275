//! The tokens themselves: `hearth_` + 43 characters of base64url (32
//! random bytes). Only the SHA-256 of the whole token is kept.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthError;

/// What every hearth token starts with (so that scanners and people can
/// tell one when they see it).
pub const PREFIX: &str = "hearth_";

/// A token just made: the secret, shown once, and what is kept of it.
pub struct NewToken {
    pub token: String,
    /// Hex SHA-256 of `token`.
    pub sha256: String,
    /// The first characters, shown in lists to tell tokens apart.
    pub id: String,
}

/// A new random token.
pub fn generate() -> Result<NewToken, AuthError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| AuthError::Random(e.to_string()))?;
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    Ok(NewToken {
        sha256: digest(&token),
        id: token.chars().take(PREFIX.len() + 6).collect(),
        token,
    })
}

/// Hex SHA-256 of a token.
pub fn digest(token: &str) -> String {
    let hash = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `token` hashes to `sha256` (hex), in time that does not depend
/// on where they differ.
pub fn matches(token: &str, sha256: &str) -> bool {
    same_digest(&digest(token), sha256)
}

/// Whether two hex digests are equal, in time that does not depend on
/// where they differ.
pub fn same_digest(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Whether `s` looks like a hex SHA-256 (64 lowercase hex digits).
pub fn is_digest(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_to_what_is_kept() {
        let a = generate().expect("token");
        let b = generate().expect("token");
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with(PREFIX));
        assert_eq!(a.token.len(), PREFIX.len() + 43);
        assert!(is_digest(&a.sha256));
        assert!(matches(&a.token, &a.sha256));
        assert!(!matches(&b.token, &a.sha256));
        assert!(!matches("", &a.sha256));
        assert!(a.token.starts_with(&a.id));
    }
}
