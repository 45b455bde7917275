//! Access control: what a token may do (its scopes, optionally limited to
//! some applications), how an application is invoked (open or with a key),
//! and the token routes' request and response types.
//!
//! Scopes nest: `admin` may do everything (tokens included); `deploy` may
//! deploy, publish, roll back and move aliases, and read; `read` lists and
//! reads functions, versions, history, workers and applications (tokens are
//! for `admin` only); `invoke` calls the functions of key-protected
//! applications. `deploy` and `invoke` may be limited to some applications.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Admin,
    Deploy,
    Read,
    Invoke,
}

impl Scope {
    pub const ALL: &'static [Scope] = &[Scope::Admin, Scope::Deploy, Scope::Read, Scope::Invoke];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Deploy => "deploy",
            Scope::Read => "read",
            Scope::Invoke => "invoke",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// Whether holding `self` grants `needed`.
    pub fn grants(self, needed: Scope) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Deploy => matches!(needed, Scope::Deploy | Scope::Read),
            Scope::Read => needed == Scope::Read,
            Scope::Invoke => needed == Scope::Invoke,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, the service root).
    Public,
    /// A token holding this scope.
    Scope(Scope),
    /// A function call: open, unless the function's application is
    /// key-protected (then an `invoke` token for it).
    Call,
}

/// How an application's functions may be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvokeMode {
    /// Anyone who reaches the gateway may call them (the default).
    #[default]
    Open,
    /// Calls need `Authorization: Bearer` with a token of scope `invoke`
    /// (or `admin`) for the application.
    Key,
}

impl InvokeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InvokeMode::Open => "open",
            InvokeMode::Key => "key",
        }
    }

    pub fn parse(s: &str) -> Option<InvokeMode> {
        match s {
            "open" => Some(InvokeMode::Open),
            "key" => Some(InvokeMode::Key),
            _ => None,
        }
    }
}

/// `POST /api/v1/tokens`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Applications a `deploy` or `invoke` token is limited to (empty: all).
    #[serde(default)]
    pub apps: Vec<String>,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenInfo {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub apps: Vec<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub last_used: Option<i64>,
    /// The first characters of the token, to tell tokens apart.
    pub id: String,
    /// Where it comes from: `api` (created with `hearth token create`),
    /// `local` (the admin token the daemon made for this host) or
    /// `config` (declared in the configuration file).
    pub origin: String,
}

/// What creating a token answers: the token itself, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenCreated {
    pub token: String,
    pub info: TokenInfo,
}

/// `GET /api/v1/tokens`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// `DELETE /api/v1/tokens/{name}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenRevoked {
    pub name: String,
    pub revoked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest() {
        assert!(Scope::Admin.grants(Scope::Invoke));
        assert!(Scope::Deploy.grants(Scope::Read));
        assert!(!Scope::Deploy.grants(Scope::Admin));
        assert!(!Scope::Read.grants(Scope::Deploy));
        assert!(!Scope::Invoke.grants(Scope::Read));
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(*s));
        }
    }
}
