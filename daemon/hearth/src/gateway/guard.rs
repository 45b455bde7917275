//! The gateway's guard: before any management handler runs, the request's
//! Host and Origin must be this daemon's (no browser page of another site,
//! no DNS rebinding), a body must be JSON, and the bearer token must hold
//! the route's scope (`hearth_api::routes::access_of`) within its rate.
//! Function calls need a token only when their application is
//! key-protected.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};

use hearth_api::{Access, ApiError, ErrorCode, InvokeMode, Scope};
use hearth_auth::{unauthorized, Principal, Rate, RateLimits, TokenBook};
use hearth_engine::events::{Event, Events};

/// Host names (besides IP literals and `localhost`) the management API
/// answers to; `*` in the list: any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(pub Vec<String>);

impl AllowedHosts {
    fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        // An IP literal cannot be rebound by DNS; `localhost` resolves here.
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
            || self
                .0
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(&host))
    }
}

/// `host[:port]` → host (IPv6 literals keep their brackets).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    authority.split(':').next().unwrap_or(authority)
}

pub struct Guard {
    pub tokens: Arc<TokenBook>,
    pub limits: RateLimits,
    hosts: RwLock<AllowedHosts>,
    events: Events,
}

impl Guard {
    pub fn new(tokens: Arc<TokenBook>, rate: Rate, hosts: AllowedHosts, events: Events) -> Guard {
        Guard {
            tokens,
            limits: RateLimits::new(rate),
            hosts: RwLock::new(hosts),
            events,
        }
    }

    /// Apply a new configuration's settings (SIGHUP).
    pub fn reconfigure(&self, rate: Rate, hosts: AllowedHosts) {
        self.limits.set_rate(rate);
        if let Ok(mut h) = self.hosts.write() {
            *h = hosts;
        }
    }

    /// Refuse what a browser on another site could send: a Host that is
    /// not ours (DNS rebinding) and an Origin that is not the Host's.
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let allowed = self.hosts.read().map(|h| h.clone()).unwrap_or_default();
        if !host.is_empty() && !allowed.allows(host_of(host)) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("the management API does not answer to host \"{host}\""),
                "call it by IP address or localhost, or add the name to allowed_hosts in the [server] section of the configuration (or --allowed-host NAME)",
            ));
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = origin.to_str().unwrap_or("null");
            let origin_host = origin
                .split_once("://")
                .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
                .unwrap_or("");
            if origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("the management API refuses requests from web pages of another origin ({origin})"),
                    "call the API from the CLI, an SDK or a server, not from a page of another site",
                ));
            }
        }
        Ok(())
    }

    /// The principal behind `Authorization: Bearer`, if one is sent: a
    /// token that is not valid is a 401 even where none is needed.
    pub fn bearer(&self, headers: &HeaderMap, needed: &str) -> Result<Option<Principal>, ApiError> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value.to_str().unwrap_or("");
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or("");
        if token.is_empty() {
            return Err(unauthorized(
                "the Authorization header is not `Bearer TOKEN`",
                needed,
            ));
        }
        match self.tokens.authenticate(token) {
            Some(p) => Ok(Some(p)),
            None => Err(unauthorized(
                "the token sent is not valid (revoked, mistyped, or of another daemon)",
                needed,
            )),
        }
    }

    /// Everything a management route needs before its handler runs; the
    /// principal it returns is the actor of what the handler does.
    pub fn management(
        &self,
        access: Access,
        method: &hyper::Method,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, ApiError> {
        self.check_origin(headers)?;
        let needed = match access {
            Access::Public | Access::Call => return Ok(None),
            Access::Scope(scope) => scope,
        };
        let Some(who) = self.bearer(headers, needed.as_str())? else {
            return Err(unauthorized("no token was sent", needed.as_str()));
        };
        who.require(needed, None)?;
        if let Err(wait) = self.limits.check(&who.name) {
            self.events.emit(Event::Throttled {
                limit: "token",
                key: &who.name,
            });
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "token \"{}\" is over its rate of {} management requests",
                    who.name,
                    self.limits.rate()
                ),
                "wait and retry (Retry-After), or raise api_rate in the [auth] section of the configuration (or --api-rate)",
            )
            .retry_after(wait.as_secs().max(1)));
        }
        if matches!(*method, hyper::Method::POST | hyper::Method::PUT) {
            let json = headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                })
                .is_some_and(|v| v == "application/json");
            if !json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "management requests with a body must be JSON",
                    "send Content-Type: application/json",
                ));
            }
        }
        Ok(Some(who))
    }

    /// A call to a function of `app`, invoked as `mode`.
    pub fn call(&self, app: &str, mode: InvokeMode, headers: &HeaderMap) -> Result<(), ApiError> {
        // Like an open function URL elsewhere: the header is not looked at.
        if mode == InvokeMode::Open {
            return Ok(());
        }
        let Some(who) = self.bearer(headers, "invoke")? else {
            return Err(unauthorized(
                &format!("application {app} is key-protected"),
                &format!("invoke for application {app}"),
            ));
        };
        who.require(Scope::Invoke, Some(app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let none = AllowedHosts::default();
        assert!(none.allows(host_of("127.0.0.1:7700")));
        assert!(none.allows(host_of("[::1]:7700")));
        assert!(none.allows(host_of("localhost:7700")));
        assert!(none.allows(host_of("10.1.2.3")));
        assert!(!none.allows(host_of("evil.example:7700")));
        let named = AllowedHosts(vec!["hearth.internal".into()]);
        assert!(named.allows(host_of("HEARTH.internal:7700")));
        assert!(AllowedHosts(vec!["*".into()]).allows("anything"));
    }
}
