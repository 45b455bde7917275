//! Which token the CLI sends: `--token`, else HEARTH_TOKEN, else `token` in
//! the client's configuration file (`$XDG_CONFIG_HOME/hearth/client.toml`,
//! default `~/.config/hearth/client.toml`), else the local admin token a
//! daemon on this host wrote to its data directory (readable by the
//! daemon's user only: root, for a daemon run as root).

use std::path::PathBuf;

/// Where a token came from (for error messages).
#[derive(Debug, Clone)]
pub struct Found {
    pub token: String,
    pub from: String,
}

/// What looking for a token found: the token, and files that exist but
/// could not be read (for the hint of a 401).
#[derive(Debug, Default)]
pub struct Search {
    pub found: Option<Found>,
    pub unreadable: Vec<String>,
}

/// The client configuration file.
pub fn client_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir).join("hearth/client.toml"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(".config/hearth/client.toml"))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    token: Option<String>,
}

/// Admin token files a daemon on this host may have written, in the order
/// they are tried: HEARTH_DATA's (whatever address it serves), then those
/// of `./hearth-data`, the default data directory and /var/lib/hearth whose
/// daemon listens at `addr`.
fn local_token_files(addr: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(data) = std::env::var_os("HEARTH_DATA").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(data).join(hearth_auth::TOKEN_FILE));
    }
    for dir in candidate_dirs() {
        let listens = std::fs::read_to_string(dir.join(crate::daemon::ADDRESS_FILE))
            .map(|a| same_address(a.trim(), addr))
            .unwrap_or(false);
        if listens {
            files.push(dir.join(hearth_auth::TOKEN_FILE));
        }
    }
    files
}

/// The data directories looked in for a daemon's admin token (besides
/// HEARTH_DATA's), for error messages.
pub fn searched_dirs() -> Vec<String> {
    candidate_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect()
}

/// Where a daemon on this host may keep its data: `scripts/up`'s, the
/// default, the service's.
fn candidate_dirs() -> [PathBuf; 3] {
    [
        PathBuf::from("./hearth-data"),
        crate::config::default_data_dir(),
        PathBuf::from("/var/lib/hearth"),
    ]
}

/// Whether a daemon listening on `listen` is the one at `addr` (a daemon
/// on 0.0.0.0 or [::] answers on every address of its port).
fn same_address(listen: &str, addr: &str) -> bool {
    let addr = addr
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    if listen == addr {
        return true;
    }
    let port = |a: &str| {
        a.rsplit_once(':')
            .map(|(h, p)| (h.to_owned(), p.to_owned()))
    };
    match (port(listen), port(addr)) {
        (Some((host, p1)), Some((other, p2))) => {
            p1 == p2
                && (host == "0.0.0.0"
                    || host == "[::]"
                    || (other == "localhost" && (host == "127.0.0.1" || host == "[::1]")))
        }
        _ => false,
    }
}

pub fn find(explicit: Option<&str>, addr: &str) -> Result<Search, String> {
    let mut search = Search::default();
    if let Some(token) = explicit.map(str::trim).filter(|t| !t.is_empty()) {
        search.found = Some(Found {
            token: token.to_owned(),
            from: "--token / HEARTH_TOKEN".into(),
        });
        return Ok(search);
    }
    if let Some(path) = client_config_path() {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let file: ClientFile = toml::from_str(&text).map_err(|e| {
                    format!(
                        "{}: {}; it may hold only `token = \"...\"`",
                        path.display(),
                        e.message()
                    )
                })?;
                if let Some(token) = file.token.filter(|t| !t.trim().is_empty()) {
                    search.found = Some(Found {
                        token: token.trim().to_owned(),
                        from: path.display().to_string(),
                    });
                    return Ok(search);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => search.unreadable.push(path.display().to_string()),
        }
    }
    for path in local_token_files(addr) {
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => {
                search.found = Some(Found {
                    token: text.trim().to_owned(),
                    from: path.display().to_string(),
                });
                return Ok(search);
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                search.unreadable.push(path.display().to_string())
            }
            Err(_) => {}
        }
    }
    Ok(search)
}

#[cfg(test)]
mod tests {
    use super::same_address;

    #[test]
    fn addresses() {
        assert!(same_address("127.0.0.1:7700", "127.0.0.1:7700"));
        assert!(same_address("127.0.0.1:7700", "http://localhost:7700/"));
        assert!(same_address("0.0.0.0:7700", "10.0.0.5:7700"));
        assert!(!same_address("127.0.0.1:7700", "127.0.0.1:7701"));
        assert!(!same_address("127.0.0.1:7700", "10.0.0.5:7700"));
    }
}
