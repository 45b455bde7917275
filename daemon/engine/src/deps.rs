//! Per-function dependencies, installed at deploy time with the runtime's own
//! installer, never into an interpreter's global packages:
//!
//! - Python: `requirements.txt` → `pip install --target <dir>`; workers get
//!   the directory on `PYTHONPATH` (ahead of the interpreter's own packages).
//! - Node: `package.json` (+ `package-lock.json`) → `npm ci` (or `npm install`)
//!   in a directory whose `node_modules` the version directory links to.
//! - Lua: functions bundle their modules; nothing to install.
//!
//! Installs are cached by content under `<data>/deps/<runtime>/<key>/`, the
//! key being a hash of the dependency files (and, for Python, the
//! interpreter's minor version): redeploying unchanged dependencies costs
//! nothing, and two versions with different dependency files never share
//! (or disturb) each other's packages. An install is made in
//! `<key>.tmp<pid>` next to its final directory and renamed into place when
//! it is complete; those of a daemon that is gone are removed at start and
//! by gc ([`Deps::leftovers`]), and gc removes the installs no stored
//! version needs ([`Deps::installs`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tracing::info;

use crate::runtime::{find_on_path, Runtime};
use hearth_api::bundle::BundleFile;
use hearth_api::manifest::RuntimeKind;

/// Longest an install may take.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Lines of installer output kept for an error.
const OUTPUT_TAIL: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    #[error(
        "installing {function}'s dependencies from {file} failed: {installer} {status}: {message}"
    )]
    Failed {
        function: String,
        file: String,
        installer: String,
        status: String,
        /// The installer's own error lines.
        message: String,
        /// The last lines of its output.
        output: String,
    },
    #[error("cannot install {function}'s dependencies: {reason}")]
    Setup { function: String, reason: String },
}

/// Where progress of a long operation goes (the deploying client, and the log).
#[derive(Clone, Default)]
pub struct Progress {
    tx: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Progress {
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<String>) -> Progress {
        Progress { tx: Some(tx) }
    }

    pub fn none() -> Progress {
        Progress::default()
    }

    pub fn say(&self, message: impl Into<String>) {
        let message = message.into();
        info!(target: "hearth::progress", "{message}");
        if let Some(tx) = &self.tx {
            let _ = tx.send(message);
        }
    }
}

/// What a version needs installed.
#[derive(Debug, Clone)]
pub struct Plan {
    runtime: RuntimeKind,
    key: String,
    /// The dependency files, copied into the install directory.
    files: Vec<BundleFile>,
    /// The file that declares the dependencies (for messages).
    declared_in: String,
}

/// What the version's workers need to see the installed packages.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    /// Extra environment for workers (Python: PYTHONPATH).
    pub env: Vec<(String, String)>,
    /// Links to create in the version directory (Node: node_modules).
    pub links: Vec<(String, PathBuf)>,
}

/// The files that declare dependencies, of any runtime: all [`plan`] reads.
pub const DEPENDENCY_FILES: &[&str] = &["requirements.txt", "package.json", "package-lock.json"];

/// An install found on disk.
#[derive(Debug, Clone)]
pub struct FoundInstall {
    /// `python` or `node`.
    pub runtime: String,
    pub key: String,
    pub path: PathBuf,
}

/// Decide from a version's files whether it has dependencies to install.
pub fn plan(runtime: &Runtime, files: &[BundleFile]) -> Option<Plan> {
    let find = |name: &str| files.iter().find(|f| f.path == name).cloned();
    let (declared_in, dep_files, salt) = match runtime.kind {
        RuntimeKind::Python => {
            let req = find("requirements.txt")?;
            let minor = runtime
                .version
                .rsplit_once('.')
                .map(|(mm, _)| mm)
                .unwrap_or(&runtime.version);
            ("requirements.txt", vec![req], format!("python{minor}"))
        }
        RuntimeKind::Node => {
            let pkg = find("package.json")?;
            let mut v = vec![pkg];
            v.extend(find("package-lock.json"));
            ("package.json", v, "node".to_owned())
        }
        RuntimeKind::Lua | RuntimeKind::Page => return None,
    };
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    for f in &dep_files {
        h.update((f.path.len() as u64).to_be_bytes());
        h.update(f.path.as_bytes());
        h.update((f.data.len() as u64).to_be_bytes());
        h.update(&f.data);
    }
    let key: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(Plan {
        runtime: runtime.kind,
        key,
        files: dep_files,
        declared_in: declared_in.to_owned(),
    })
}

pub struct Deps {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Deps {
    pub fn new(root: PathBuf) -> Deps {
        Deps {
            root,
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The key of a plan (its directory's name under `<runtime>/`).
    pub fn key(plan: &Plan) -> (&'static str, &str) {
        (plan.runtime.as_str(), &plan.key)
    }

    /// Every finished install on disk.
    pub fn installs(&self) -> Vec<FoundInstall> {
        let mut found = Vec::new();
        for runtime_dir in crate::code::entries(&self.root) {
            let Some(runtime) = crate::code::file_name(&runtime_dir).map(str::to_owned) else {
                continue;
            };
            for path in crate::code::entries(&runtime_dir) {
                let Some(name) = crate::code::file_name(&path) else {
                    continue;
                };
                if !name.contains('.') && path.is_dir() {
                    found.push(FoundInstall {
                        runtime: runtime.clone(),
                        key: name.to_owned(),
                        path: path.clone(),
                    });
                }
            }
        }
        found
    }

    /// Unfinished installs (`<key>.tmp<pid>`) of a daemon that is gone (at
    /// start, this daemon's own pid counts as gone).
    pub fn leftovers(&self, at_start: bool) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for runtime_dir in crate::code::entries(&self.root) {
            for path in crate::code::entries(&runtime_dir) {
                let Some(name) = crate::code::file_name(&path) else {
                    continue;
                };
                let Some((_, pid)) = name.split_once(".tmp") else {
                    continue;
                };
                let pid = pid.parse::<u32>().ok();
                if pid.is_none_or(|pid| crate::leftovers::gone(pid, at_start)) {
                    found.push(path);
                }
            }
        }
        found
    }

    fn dir(&self, plan: &Plan) -> PathBuf {
        self.root.join(plan.runtime.as_str()).join(&plan.key)
    }

    fn installed(&self, plan: &Plan) -> Installed {
        let dir = self.dir(plan);
        match plan.runtime {
            RuntimeKind::Python => Installed {
                env: vec![("HEARTH_DEPS".into(), dir.join("site").display().to_string())],
                links: vec![],
            },
            RuntimeKind::Node => Installed {
                env: vec![],
                links: vec![("node_modules".into(), dir.join("node_modules"))],
            },
            RuntimeKind::Lua | RuntimeKind::Page => Installed::default(),
        }
    }

    /// Is this plan's install already done?
    pub fn ready(&self, plan: &Plan) -> Option<Installed> {
        self.dir(plan)
            .join(".complete")
            .is_file()
            .then(|| self.installed(plan))
    }

    /// Install the plan's dependencies unless a finished install with the
    /// same key exists. Shows progress; fails with the installer's message.
    pub async fn ensure(
        &self,
        function: &str,
        runtime: &Runtime,
        plan: &Plan,
        progress: &Progress,
    ) -> Result<Installed, DepsError> {
        if let Some(done) = self.ready(plan) {
            progress.say(format!(
                "dependencies from {} unchanged: using the cached install",
                plan.declared_in
            ));
            return Ok(done);
        }
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(plan.key.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if let Some(done) = self.ready(plan) {
            return Ok(done);
        }
        let setup = |reason: String| DepsError::Setup {
            function: function.to_owned(),
            reason,
        };
        let dir = self.dir(plan);
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| setup(format!("cannot create {}: {e}", tmp.display())))?;
        for f in &plan.files {
            std::fs::write(tmp.join(&f.path), &f.data)
                .map_err(|e| setup(format!("cannot write {}: {e}", tmp.join(&f.path).display())))?;
        }
        let (program, args, installer): (PathBuf, Vec<String>, &str) = match plan.runtime {
            RuntimeKind::Python => (
                runtime.interpreter.clone(),
                [
                    "-m",
                    "pip",
                    "install",
                    "--target",
                    "site",
                    "--requirement",
                    "requirements.txt",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                    "--no-warn-script-location",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                "pip",
            ),
            RuntimeKind::Node => {
                let npm = find_on_path("npm").ok_or_else(|| {
                    setup(
                        "npm is not on PATH; install Node.js with npm (./scripts/setup does)"
                            .into(),
                    )
                })?;
                let verb = if plan.files.iter().any(|f| f.path == "package-lock.json") {
                    "ci"
                } else {
                    "install"
                };
                (
                    npm,
                    [
                        verb,
                        "--omit=dev",
                        "--no-audit",
                        "--no-fund",
                        "--no-update-notifier",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                    "npm",
                )
            }
            RuntimeKind::Lua | RuntimeKind::Page => return Ok(Installed::default()),
        };
        progress.say(format!(
            "installing dependencies from {} with {installer}…",
            plan.declared_in
        ));
        let started = Instant::now();
        let result = run_installer(&program, &args, &tmp, progress).await;
        let (status, output) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(setup(format!("cannot run {}: {e}", program.display())));
            }
        };
        if !status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            let errors: Vec<&String> = output
                .iter()
                .filter(|l| {
                    l.starts_with("ERROR") || l.starts_with("npm ERR") || l.starts_with("npm error")
                })
                .collect();
            let message = if errors.is_empty() {
                output.last().cloned().unwrap_or_default()
            } else {
                errors
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            return Err(DepsError::Failed {
                function: function.to_owned(),
                file: plan.declared_in.clone(),
                installer: installer.to_owned(),
                status: describe(status),
                message,
                output: output.join("\n"),
            });
        }
        std::fs::write(tmp.join(".complete"), b"").map_err(|e| setup(e.to_string()))?;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| setup(e.to_string()))?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| {
            setup(format!(
                "cannot move the install into {}: {e}",
                dir.display()
            ))
        })?;
        progress.say(format!(
            "dependencies installed in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(self.installed(plan))
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed".to_owned(),
    }
}

/// Run an installer in `dir`, passing each output line on as progress (and a
/// heartbeat every 5 s when it is quiet). Returns its status and last lines.
async fn run_installer(
    program: &Path,
    args: &[String],
    dir: &Path,
    progress: &Progress,
) -> std::io::Result<(std::process::ExitStatus, Vec<String>)> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + INSTALL_TIMEOUT;
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => {
                    let trimmed = line.trim_end().to_owned();
                    if !trimmed.is_empty() {
                        progress.say(format!("  {trimmed}"));
                        if tail.len() == OUTPUT_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(trimmed);
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                progress.say(format!("  still installing ({} s)…", started.elapsed().as_secs()));
            }
            _ = tokio::time::sleep_until(deadline) => {
                let _ = child.kill().await;
                tail.push_back(format!("hearth: the install took longer than {} s and was stopped", INSTALL_TIMEOUT.as_secs()));
                break;
            }
        }
    }
    let status = child.wait().await?;
    Ok((status, tail.into_iter().collect()))
}
