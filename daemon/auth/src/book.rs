//! The token book: every valid token in memory (those made through the
//! API and kept in the store, the host's local admin token, and those the
//! configuration file declares), found by the SHA-256 of what a request
//! presents. Last use is noted in memory and written to the store now and
//! then (`flush_used`).

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use hearth_api::manifest::validate_name;
use hearth_api::{Scope, TokenCreated, TokenInfo, TokenRequest};
use hearth_store::{DynStore, TokenRecord};
use tracing::{info, warn};

use crate::token::{self, digest};
use crate::{AuthError, Principal};

/// The file in the data directory holding the local admin token (mode
/// 0600, the daemon's user only).
pub const TOKEN_FILE: &str = "admin.token";
/// The local admin token's name.
pub const LOCAL_ADMIN: &str = "local-admin";

/// A token the configuration file declares (by its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigToken {
    pub name: String,
    pub sha256: String,
    pub scopes: Vec<Scope>,
    pub apps: Vec<String>,
}

/// What [`TokenBook::ensure_local_admin`] did.
#[derive(Debug)]
pub struct LocalAdmin {
    pub path: PathBuf,
    /// A new token was made (first start, or the file was missing).
    pub created: bool,
}

pub struct TokenBook {
    store: DynStore,
    by_hash: RwLock<HashMap<String, Arc<TokenRecord>>>,
    config: RwLock<Vec<ConfigToken>>,
    /// Token name → last use (ms) not yet written to the store.
    used: Mutex<HashMap<String, i64>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl TokenBook {
    pub async fn open(store: DynStore) -> Result<Arc<TokenBook>, AuthError> {
        let book = Arc::new(TokenBook {
            store,
            by_hash: RwLock::new(HashMap::new()),
            config: RwLock::new(Vec::new()),
            used: Mutex::new(HashMap::new()),
        });
        book.refresh().await?;
        Ok(book)
    }

    /// Re-read the stored tokens (another process sharing the store, or
    /// the CLI of this one, may have made or revoked some).
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let mut map: HashMap<String, Arc<TokenRecord>> = HashMap::new();
        for record in self.store.tokens().await? {
            map.insert(record.sha256.clone(), Arc::new(record));
        }
        let config = self.config.read().map(|c| c.clone()).unwrap_or_default();
        for t in config {
            if map.values().any(|r| r.name == t.name) {
                continue;
            }
            map.insert(t.sha256.clone(), Arc::new(config_record(t)));
        }
        if let Ok(mut book) = self.by_hash.write() {
            *book = map;
        }
        Ok(())
    }

    /// Check what the configuration file declares, without applying it.
    pub fn check_config_tokens(tokens: &[ConfigToken]) -> Result<(), AuthError> {
        let mut names = std::collections::HashSet::new();
        for t in tokens {
            check_name(&t.name)?;
            if !names.insert(t.name.as_str()) {
                return Err(AuthError::Invalid(format!(
                    "token \"{}\" is declared twice",
                    t.name
                )));
            }
            if !token::is_digest(&t.sha256) {
                return Err(AuthError::Invalid(format!(
                    "token \"{}\": sha256 must be 64 lowercase hex digits (`hearth token hash` prints it for a token)",
                    t.name
                )));
            }
            check_scopes(&t.scopes, &t.apps)?;
        }
        Ok(())
    }

    /// Replace the tokens the configuration file declares (at start and on
    /// SIGHUP).
    pub async fn set_config_tokens(&self, tokens: Vec<ConfigToken>) -> Result<(), AuthError> {
        TokenBook::check_config_tokens(&tokens)?;
        if let Ok(mut config) = self.config.write() {
            *config = tokens;
        }
        self.refresh().await
    }

    /// Replace the configuration file's tokens at once (SIGHUP; checked
    /// before with `check_config_tokens`). Stored tokens are untouched.
    pub fn replace_config_tokens(&self, tokens: Vec<ConfigToken>) {
        let names: Vec<String> = match self.by_hash.read() {
            Ok(map) => map
                .values()
                .filter(|r| r.origin != "config")
                .map(|r| r.name.clone())
                .collect(),
            Err(_) => return,
        };
        if let Ok(mut config) = self.config.write() {
            *config = tokens.clone();
        }
        if let Ok(mut map) = self.by_hash.write() {
            map.retain(|_, r| r.origin != "config");
            for t in tokens {
                if names.contains(&t.name) {
                    continue;
                }
                map.insert(t.sha256.clone(), Arc::new(config_record(t)));
            }
        }
    }

    /// Who presents `bearer`, if it is a valid token.
    pub fn authenticate(&self, bearer: &str) -> Option<Principal> {
        if !bearer.starts_with(token::PREFIX) {
            return None;
        }
        let hash = digest(bearer);
        let record = self.by_hash.read().ok()?.get(&hash).cloned()?;
        // Found by its hash; compared again in constant time all the same
        // (the hash already made, not a second one).
        if !token::same_digest(&hash, &record.sha256) {
            return None;
        }
        if let Ok(mut used) = self.used.lock() {
            used.insert(record.name.clone(), now_ms());
        }
        Some(Principal {
            name: record.name.clone(),
            scopes: record.scopes.clone(),
            apps: record.apps.clone(),
        })
    }

    /// Make a token; the answer holds it, shown this once.
    pub async fn create(&self, req: &TokenRequest) -> Result<TokenCreated, AuthError> {
        check_name(&req.name)?;
        if req.name == LOCAL_ADMIN {
            return Err(AuthError::Invalid(format!(
                "\"{LOCAL_ADMIN}\" is the name of the host's own admin token; choose another"
            )));
        }
        check_scopes(&req.scopes, &req.apps)?;
        if self.is_config_token(&req.name) {
            return Err(AuthError::Exists(req.name.clone()));
        }
        let record = self.put(&req.name, &req.scopes, &req.apps, "api").await?;
        Ok(TokenCreated {
            token: record.0,
            info: info_of(&record.1, None),
        })
    }

    async fn put(
        &self,
        name: &str,
        scopes: &[Scope],
        apps: &[String],
        origin: &str,
    ) -> Result<(String, TokenRecord), AuthError> {
        let made = token::generate()?;
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let record = TokenRecord {
            name: name.to_owned(),
            id: made.id,
            sha256: made.sha256,
            scopes,
            apps: apps.to_vec(),
            origin: origin.to_owned(),
            created_at: now_ms(),
            last_used: None,
        };
        if !self.store.put_token(&record).await? {
            return Err(AuthError::Exists(name.to_owned()));
        }
        self.refresh().await?;
        Ok((made.token, record))
    }

    fn is_config_token(&self, name: &str) -> bool {
        self.config
            .read()
            .map(|c| c.iter().any(|t| t.name == name))
            .unwrap_or(false)
    }

    /// Revoke a token at once; false if there is none of that name.
    pub async fn revoke(&self, name: &str) -> Result<bool, AuthError> {
        if self.is_config_token(name) {
            return Err(AuthError::Invalid(format!(
                "token \"{name}\" is declared in the configuration file; remove it there and reload (SIGHUP)"
            )));
        }
        let revoked = self.store.revoke_token(name).await?;
        self.refresh().await?;
        Ok(revoked)
    }

    /// Every token, by name (never a secret).
    pub async fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        self.flush_used().await;
        let mut out: Vec<TokenInfo> = self
            .store
            .tokens()
            .await?
            .iter()
            .map(|r| info_of(r, None))
            .collect();
        let config = self.config.read().map(|c| c.clone()).unwrap_or_default();
        let used = self.used.lock().map(|u| u.clone()).unwrap_or_default();
        for t in config {
            if out.iter().any(|o| o.name == t.name) {
                continue;
            }
            out.push(TokenInfo {
                last_used: used.get(&t.name).copied(),
                name: t.name,
                scopes: t.scopes,
                apps: t.apps,
                created_at: 0,
                id: String::new(),
                origin: "config".into(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Write the last uses noted since the previous flush.
    pub async fn flush_used(&self) {
        let pending: Vec<(String, i64)> = match self.used.lock() {
            Ok(mut used) => used.drain().collect(),
            Err(_) => return,
        };
        if pending.is_empty() {
            return;
        }
        if let Err(e) = self.store.touch_tokens(&pending).await {
            warn!(error = %e, "cannot record when tokens were last used");
        }
    }

    /// The host's own admin token, in `dir/admin.token` (mode 0600): made
    /// at the first start, and again whenever the file is missing or no
    /// longer holds a valid admin token (delete it and restart to replace
    /// the token). The CLI on this host reads it when HEARTH_TOKEN is not
    /// set.
    pub async fn ensure_local_admin(&self, dir: &Path) -> Result<LocalAdmin, AuthError> {
        let path = dir.join(TOKEN_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Some(p) = self.authenticate(text.trim()) {
                if p.allows(Scope::Admin, None) {
                    return Ok(LocalAdmin {
                        path,
                        created: false,
                    });
                }
            }
        }
        self.store.revoke_token(LOCAL_ADMIN).await?;
        let (token, _) = self.put(LOCAL_ADMIN, &[Scope::Admin], &[], "local").await?;
        let failed = |e: std::io::Error| AuthError::TokenFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let tmp = dir.join(format!(".{TOKEN_FILE}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(failed)?;
        file.write_all(format!("{token}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(failed)?;
        std::fs::rename(&tmp, &path).map_err(failed)?;
        info!(path = %path.display(), "made the local admin token (readable by this user only)");
        Ok(LocalAdmin {
            path,
            created: true,
        })
    }
}

fn config_record(t: ConfigToken) -> TokenRecord {
    TokenRecord {
        name: t.name,
        id: String::new(),
        sha256: t.sha256,
        scopes: t.scopes,
        apps: t.apps,
        origin: "config".into(),
        created_at: 0,
        last_used: None,
    }
}

fn info_of(r: &TokenRecord, last_used: Option<i64>) -> TokenInfo {
    TokenInfo {
        name: r.name.clone(),
        scopes: r.scopes.clone(),
        apps: r.apps.clone(),
        created_at: r.created_at,
        last_used: last_used.or(r.last_used),
        id: r.id.clone(),
        origin: r.origin.clone(),
    }
}

fn check_name(name: &str) -> Result<(), AuthError> {
    validate_name(name).map_err(|problem| AuthError::Invalid(format!("token name {problem}")))
}

fn check_scopes(scopes: &[Scope], apps: &[String]) -> Result<(), AuthError> {
    if scopes.is_empty() {
        return Err(AuthError::Invalid(
            "a token needs at least one scope (admin, deploy, read or invoke)".into(),
        ));
    }
    for app in apps {
        validate_name(app)
            .map_err(|problem| AuthError::Invalid(format!("application name {problem}")))?;
    }
    if !apps.is_empty()
        && scopes
            .iter()
            .any(|s| matches!(s, Scope::Admin | Scope::Read))
    {
        return Err(AuthError::Invalid(
            "--app limits deploy and invoke tokens only; admin and read tokens are for the whole host"
                .into(),
        ));
    }
    Ok(())
}
