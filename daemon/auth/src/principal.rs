//! Who a request comes from, as its token says, and what it may do.

use hearth_api::{ApiError, ErrorCode, Scope};

/// The holder of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name: the actor kept in the release history.
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Applications its `deploy` and `invoke` scopes are limited to (empty:
    /// all).
    pub apps: Vec<String>,
}

impl Principal {
    /// Whether it may do what needs `needed` in `app` (None: in some
    /// application — the handler checks again once it knows which).
    pub fn allows(&self, needed: Scope, app: Option<&str>) -> bool {
        self.scopes.iter().any(|held| {
            held.grants(needed)
                && match held {
                    Scope::Admin | Scope::Read => true,
                    Scope::Deploy | Scope::Invoke if needed == Scope::Read => true,
                    Scope::Deploy | Scope::Invoke => {
                        self.apps.is_empty() || app.is_none_or(|a| self.apps.iter().any(|x| x == a))
                    }
                }
        })
    }

    /// 403 unless it [`allows`](Principal::allows) it; the error names the
    /// scope (and application) needed.
    pub fn require(&self, needed: Scope, app: Option<&str>) -> Result<(), ApiError> {
        if self.allows(needed, app) {
            return Ok(());
        }
        let held: Vec<&str> = self.scopes.iter().map(|s| s.as_str()).collect();
        let limited = if self.apps.is_empty() {
            String::new()
        } else {
            format!(" for {}", self.apps.join(", "))
        };
        let (what, create) = match app {
            Some(app) => (
                format!("scope {needed} for application {app}"),
                format!("hearth token create --name NAME --scope {needed} --app {app}"),
            ),
            None => (
                format!("scope {needed}"),
                format!("hearth token create --name NAME --scope {needed}"),
            ),
        };
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "token \"{}\" (scopes {}{limited}) may not do this: it needs {what}",
                self.name,
                held.join(", ")
            ),
            format!("use a token that has it; an admin can make one with `{create}`"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(scopes: &[Scope], apps: &[&str]) -> Principal {
        Principal {
            name: "t".into(),
            scopes: scopes.to_vec(),
            apps: apps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn scopes_and_applications() {
        let deploy_shop = who(&[Scope::Deploy], &["shop"]);
        assert!(deploy_shop.allows(Scope::Deploy, Some("shop")));
        assert!(!deploy_shop.allows(Scope::Deploy, Some("video")));
        assert!(deploy_shop.allows(Scope::Deploy, None));
        assert!(deploy_shop.allows(Scope::Read, Some("video")));
        assert!(!deploy_shop.allows(Scope::Admin, None));
        assert!(!deploy_shop.allows(Scope::Invoke, Some("shop")));
        let read = who(&[Scope::Read], &[]);
        assert!(read.allows(Scope::Read, None));
        assert!(!read.allows(Scope::Deploy, None));
        let admin = who(&[Scope::Admin], &[]);
        assert!(admin.allows(Scope::Invoke, Some("x")));
        let e = deploy_shop
            .require(Scope::Deploy, Some("video"))
            .expect_err("403");
        assert_eq!(e.status, 403);
        assert!(e
            .detail
            .message
            .contains("scope deploy for application video"));
    }
}
