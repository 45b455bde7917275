//! `hearth install-service`: the binary, the systemd units of dist/systemd/,
//! the example configuration of dist/ (never over an existing one) and the
//! state and cache directories, under `--root` (default `/`).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The units and the example configuration, as shipped in dist/.
pub const SERVICE_UNIT: &str = include_str!("../../../../dist/systemd/hearth.service");
pub const SOCKET_UNIT: &str = include_str!("../../../../dist/systemd/hearth.socket");
pub const EXAMPLE_CONFIG: &str = include_str!("../../../../dist/hearth.toml");

/// Where things go, relative to the root.
pub const BINARY: &str = "usr/local/bin/hearth";
pub const UNIT_DIR: &str = "etc/systemd/system";
pub const CONFIG: &str = "etc/hearth/hearth.toml";
pub const STATE_DIR: &str = "var/lib/hearth";
pub const CACHE_DIR: &str = "var/cache/hearth";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot write {}: {error}; run as root, or install under another directory with --root DIR", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot find this hearth binary to install it: {0}")]
    CurrentExe(std::io::Error),
    #[error("dist/systemd/hearth.socket has no ListenStream= line to set --listen in")]
    NoListenStream,
}

pub struct Plan {
    pub root: PathBuf,
    pub dry_run: bool,
    /// The address hearth.socket listens on.
    pub listen: SocketAddr,
}

enum Step {
    Dir {
        path: PathBuf,
        mode: u32,
    },
    File {
        path: PathBuf,
        text: String,
        keep: bool,
    },
    Binary {
        from: PathBuf,
        to: PathBuf,
    },
}

/// The socket unit, listening on `listen`.
pub fn socket_unit(listen: SocketAddr) -> Result<String, InstallError> {
    let mut found = false;
    let text: Vec<String> = SOCKET_UNIT
        .lines()
        .map(|l| {
            if l.starts_with("ListenStream=") {
                found = true;
                format!("ListenStream={listen}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !found {
        return Err(InstallError::NoListenStream);
    }
    Ok(text.join("\n") + "\n")
}

pub fn install(plan: &Plan) -> anyhow::Result<()> {
    let root = &plan.root;
    let exe = std::env::current_exe().map_err(InstallError::CurrentExe)?;
    let units = root.join(UNIT_DIR);
    let steps = vec![
        Step::Binary {
            from: exe,
            to: root.join(BINARY),
        },
        Step::Dir {
            path: units.clone(),
            mode: 0o755,
        },
        Step::File {
            path: units.join("hearth.service"),
            text: SERVICE_UNIT.to_owned(),
            keep: false,
        },
        Step::File {
            path: units.join("hearth.socket"),
            text: socket_unit(plan.listen)?,
            keep: false,
        },
        Step::File {
            path: root.join(CONFIG),
            text: EXAMPLE_CONFIG.to_owned(),
            keep: true,
        },
        Step::Dir {
            path: root.join(STATE_DIR),
            mode: 0o711,
        },
        Step::Dir {
            path: root.join(CACHE_DIR),
            mode: 0o700,
        },
    ];
    for step in &steps {
        run(step, plan.dry_run)?;
    }
    if plan.dry_run {
        println!("(dry run: nothing written)");
        return Ok(());
    }
    if root != Path::new("/") {
        println!("installed under {}; systemctl was not run", root.display());
    } else if Path::new("/run/systemd/system").is_dir() {
        let reload = std::process::Command::new("systemctl")
            .arg("daemon-reload")
            .status();
        match reload {
            Ok(s) if s.success() => {}
            _ => println!("warning: `systemctl daemon-reload` failed; run it yourself"),
        }
        println!("start it with: systemctl enable --now hearth.socket hearth.service");
    } else {
        println!("systemd is not running on this machine; the units are installed for when it is");
    }
    Ok(())
}

fn run(step: &Step, dry_run: bool) -> Result<(), InstallError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| InstallError::Write { path, error }
    };
    match step {
        Step::Dir { path, mode } => {
            println!("directory {} (mode {mode:o})", path.display());
            if !dry_run {
                std::fs::create_dir_all(path).map_err(write_err(path))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                    .map_err(write_err(path))?;
            }
        }
        Step::File { path, text, keep } => {
            if *keep && path.exists() {
                println!("{} exists: kept as it is", path.display());
                return Ok(());
            }
            println!("file {}", path.display());
            if !dry_run {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(write_err(parent))?;
                }
                std::fs::write(path, text).map_err(write_err(path))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                    .map_err(write_err(path))?;
            }
        }
        Step::Binary { from, to } => {
            let same = match (from.canonicalize(), to.canonicalize()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            if same {
                println!("binary {} (already this one)", to.display());
                return Ok(());
            }
            println!("binary {} (from {})", to.display(), from.display());
            if !dry_run {
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(write_err(parent))?;
                }
                // Into a new file, then renamed over: a running binary
                // cannot be written to.
                let tmp = to.with_extension("new");
                std::fs::copy(from, &tmp).map_err(write_err(&tmp))?;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                    .map_err(write_err(&tmp))?;
                std::fs::rename(&tmp, to).map_err(write_err(to))?;
            }
        }
    }
    Ok(())
}
