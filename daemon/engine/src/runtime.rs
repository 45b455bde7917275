//! Runtimes: finding each interpreter once (by absolute path), writing the
//! shims embedded in this binary into the data directory, and describing how
//! a worker process is started with a clean, controlled environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use hearth_api::manifest::RuntimeKind;

const PYTHON_SHIM: &[(&str, &str)] = &[(
    "hearth_worker.py",
    include_str!("../../../shims/python/hearth_worker.py"),
)];
const NODE_SHIM: &[(&str, &str)] = &[
    (
        "hearth_worker.js",
        include_str!("../../../shims/node/hearth_worker.js"),
    ),
    ("codec.js", include_str!("../../../shims/node/codec.js")),
    ("hearth.js", include_str!("../../../shims/node/hearth.js")),
];
const LUA_SHIM: &[(&str, &str)] = &[
    (
        "hearth_worker.lua",
        include_str!("../../../shims/lua/hearth_worker.lua"),
    ),
    ("hearth.lua", include_str!("../../../shims/lua/hearth.lua")),
];

#[derive(Debug, thiserror::Error, Clone)]
pub enum RuntimeError {
    #[error("the {kind} runtime is not available: {reason}")]
    Unavailable { kind: RuntimeKind, reason: String },
}

/// How to start a worker of one runtime.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub kind: RuntimeKind,
    /// Absolute path of the interpreter binary.
    pub interpreter: PathBuf,
    /// Interpreter version, as the interpreter reports it.
    pub version: String,
    /// Arguments before none: the shim path and flags.
    pub args: Vec<String>,
    /// The whole environment of a worker (nothing is inherited).
    pub env: Vec<(String, String)>,
}

/// Which interpreters to use; `None` means "find it on PATH".
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    pub python: Option<PathBuf>,
    pub node: Option<PathBuf>,
    pub lua: Option<PathBuf>,
}

pub struct Runtimes {
    found: HashMap<RuntimeKind, Result<Runtime, RuntimeError>>,
}

/// Compiles a version's Python modules into `__pycache__` (see
/// [`Runtime::precompile`]); argv: the directory, the path it will have.
const PRECOMPILE: &str = r#"
import os, sys, py_compile
src, shown = sys.argv[1], sys.argv[2]
mode = py_compile.PycInvalidationMode.CHECKED_HASH
for root, dirs, files in os.walk(src):
    dirs[:] = [d for d in dirs if d != "__pycache__" and not os.path.islink(os.path.join(root, d))]
    for name in files:
        path = os.path.join(root, name)
        if name.endswith(".py") and not os.path.islink(path):
            try:
                py_compile.compile(path, dfile=os.path.join(shown, os.path.relpath(path, src)), doraise=True, invalidation_mode=mode)
            except Exception:
                pass  # the worker's load reports it, with its traceback
"#;

/// How long compiling one version's modules may take.
const PRECOMPILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Runtime {
    /// Python: compile the modules of a version being written in `dir`
    /// (its final path `shown_as`, which tracebacks show) into
    /// `__pycache__`, so that a worker's load imports bytecode instead of
    /// compiling: a version's directory is read-only to its workers, so
    /// without this every new worker compiles the code again (1–2 ms of a
    /// first call for a few lines). Hash-checked `.pyc` files: a source that
    /// differs from its `.pyc` is compiled again, whatever the timestamps.
    /// Best effort: a file that does not compile is left for the load to
    /// report. Other runtimes: nothing to do.
    pub fn precompile(&self, dir: &Path, shown_as: &Path) -> Result<(), String> {
        use std::os::unix::process::CommandExt as _;
        if self.kind != RuntimeKind::Python {
            return Ok(());
        }
        let mut cmd = std::process::Command::new(&self.interpreter);
        cmd.arg("-S")
            .arg("-c")
            .arg(PRECOMPILE)
            .arg(dir)
            .arg(shown_as)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Compiling runs none of the function's code, but bounds its CPU
        // and memory all the same.
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(|| {
                use nix::sys::resource::{setrlimit, Resource};
                setrlimit(Resource::RLIMIT_CPU, 60, 60)?;
                setrlimit(Resource::RLIMIT_AS, 2 << 30, 2 << 30)?;
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.interpreter.display()))?;
        let started = std::time::Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("the compiler exited with {status}")),
                Ok(None) if started.elapsed() > PRECOMPILE_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "compiling took over {} s; stopped",
                        PRECOMPILE_TIMEOUT.as_secs()
                    ));
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(2)),
                Err(e) => return Err(format!("cannot wait for the compiler: {e}")),
            }
        }
    }

    /// What a page's pool has for a runtime: none (it starts no worker).
    pub fn page() -> Runtime {
        Runtime {
            kind: RuntimeKind::Page,
            interpreter: PathBuf::new(),
            version: String::new(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl Runtimes {
    /// Find interpreters and install the shims under `dir` (the data
    /// directory's `runtimes/`). Never fails: a missing runtime is recorded
    /// with the reason and the fix, and reported when a function needs it.
    ///
    /// `unprivileged`: workers run as other users than the daemon, so each
    /// interpreter must be usable by any user (a Python under /root, for
    /// instance, is not; the system's /usr/bin/python3 is tried instead).
    pub async fn discover(dir: &Path, options: &RuntimeOptions, unprivileged: bool) -> Runtimes {
        let mut found = HashMap::new();
        let mut py = python(dir, options, None).await;
        if unprivileged {
            if let Ok(rt) = &py {
                if !usable_by_others(rt) {
                    let system = Path::new(SYSTEM_PYTHON);
                    py = if options.python.is_none() && system.exists() {
                        python(dir, options, Some(system)).await.map_err(|e| RuntimeError::Unavailable {
                            kind: RuntimeKind::Python,
                            reason: format!(
                                "{} is not usable by the workers' users (a directory above it is private), and {SYSTEM_PYTHON} cannot serve instead: {e}; install python3-msgpack (apt-get install python3-msgpack; ./scripts/setup does) or point --python at an interpreter every user can run",
                                rt.interpreter.display()
                            ),
                        })
                    } else {
                        Err(not_usable(rt))
                    };
                }
            }
        }
        found.insert(RuntimeKind::Python, py);
        let mut others = [
            (RuntimeKind::Lua, lua(dir, options).await),
            (RuntimeKind::Node, node(dir, options).await),
        ];
        for (kind, rt) in &mut others {
            if unprivileged {
                if let Ok(r) = rt {
                    if !usable_by_others(r) {
                        *rt = Err(not_usable(r));
                    }
                }
            }
            found.insert(*kind, rt.clone());
        }
        Runtimes { found }
    }

    pub fn get(&self, kind: RuntimeKind) -> Result<&Runtime, RuntimeError> {
        match self.found.get(&kind) {
            Some(Ok(rt)) => Ok(rt),
            Some(Err(e)) => Err(e.clone()),
            None => Err(RuntimeError::Unavailable {
                kind,
                reason: "unknown runtime".into(),
            }),
        }
    }

    /// One line per runtime, for the start-up log.
    pub fn summary(&self) -> Vec<String> {
        RuntimeKind::ALL
            .iter()
            .map(|k| match self.get(*k) {
                Ok(rt) => format!("{k}: {} {}", rt.interpreter.display(), rt.version),
                Err(e) => e.to_string(),
            })
            .collect()
    }
}

/// Debian's own Python, used when the one on PATH is private to root.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Can a worker of another user run this interpreter and read its shim?
fn usable_by_others(rt: &Runtime) -> bool {
    hearth_sandbox::isolation::usable_by_others(&rt.interpreter)
        && rt
            .env
            .iter()
            .filter(|(k, _)| k == "PYTHONPATH")
            .flat_map(|(_, v)| v.split(':'))
            .all(|dir| hearth_sandbox::isolation::usable_by_others(Path::new(dir)))
}

fn not_usable(rt: &Runtime) -> RuntimeError {
    RuntimeError::Unavailable {
        kind: rt.kind,
        reason: format!(
            "{} (or its packages) is not usable by the workers' users: a directory above it is private; install the runtime system-wide or point hearth serve at one every user can run",
            rt.interpreter.display()
        ),
    }
}

fn base_env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("HOME".into(), std::env::temp_dir().display().to_string()),
        ("TMPDIR".into(), std::env::temp_dir().display().to_string()),
        ("HEARTH_PROTOCOL".into(), "1".into()),
    ]
}

/// Write a shim's files into `dir` (each only if it changed).
fn install_shim(kind: RuntimeKind, dir: &Path, files: &[(&str, &str)]) -> Result<(), RuntimeError> {
    for (name, content) in files {
        let path = dir.join(name);
        install_file(&path, content).map_err(|e| RuntimeError::Unavailable {
            kind,
            reason: format!("cannot write the shim {}: {e}", path.display()),
        })?;
    }
    Ok(())
}

/// Find `name` on PATH and resolve links (Debian's alternatives) to the
/// real binary.
fn resolve(requested: &Path) -> Option<PathBuf> {
    let found = if requested.components().count() > 1 {
        Some(requested.to_path_buf())
    } else {
        find_on_path(&requested.to_string_lossy())
    }?;
    std::fs::canonicalize(found).ok()
}

async fn node(dir: &Path, options: &RuntimeOptions) -> Result<Runtime, RuntimeError> {
    let unavailable = |reason: String| RuntimeError::Unavailable {
        kind: RuntimeKind::Node,
        reason,
    };
    let requested = options
        .node
        .clone()
        .unwrap_or_else(|| PathBuf::from("node"));
    let interpreter = resolve(&requested).ok_or_else(|| {
        unavailable(format!(
            "{} not found; install Node.js 18 or newer (20 recommended) or point --node / HEARTH_NODE at it",
            requested.display()
        ))
    })?;
    let shim_dir = dir.join("node");
    install_shim(RuntimeKind::Node, &shim_dir, NODE_SHIM)?;
    // No NODE_OPTIONS, NODE_EXTRA_CA_CERTS or NODE_PATH from the daemon's
    // environment: they change behaviour and cost start-up time.
    let env = base_env();
    let version = probe(&interpreter, &["-p", "process.versions.node"], Some(&env))
        .await
        .map_err(unavailable)?;
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 18 {
        return Err(unavailable(format!(
            "{} is Node.js {version}; hearth needs Node.js 18 or newer",
            interpreter.display()
        )));
    }
    Ok(Runtime {
        kind: RuntimeKind::Node,
        interpreter,
        version,
        args: vec![shim_dir.join("hearth_worker.js").display().to_string()],
        env,
    })
}

async fn lua(dir: &Path, options: &RuntimeOptions) -> Result<Runtime, RuntimeError> {
    let unavailable = |reason: String| RuntimeError::Unavailable {
        kind: RuntimeKind::Lua,
        reason,
    };
    let requested = options
        .lua
        .clone()
        .unwrap_or_else(|| PathBuf::from("lua5.4"));
    let interpreter = resolve(&requested).ok_or_else(|| {
        unavailable(format!(
            "{} not found; install Lua 5.4 (apt-get install lua5.4; ./scripts/setup does) or point --lua / HEARTH_LUA at it",
            requested.display()
        ))
    })?;
    let shim_dir = dir.join("lua");
    install_shim(RuntimeKind::Lua, &shim_dir, LUA_SHIM)?;
    let env = base_env();
    let banner = probe(&interpreter, &["-v"], Some(&env))
        .await
        .map_err(unavailable)?;
    let version = banner.split_whitespace().nth(1).unwrap_or("").to_owned();
    if !version.starts_with("5.4") {
        return Err(unavailable(format!(
            "{} is Lua {version}; hearth needs Lua 5.4 (apt-get install lua5.4)",
            interpreter.display()
        )));
    }
    let main = if precompile_lua(&interpreter, &shim_dir).await {
        "hearth_worker.luac"
    } else {
        "hearth_worker.lua"
    };
    Ok(Runtime {
        kind: RuntimeKind::Lua,
        interpreter,
        version,
        args: vec![shim_dir.join(main).display().to_string()],
        env,
    })
}

/// Compile the Lua shim to bytecode with the `luac5.4` next to the
/// interpreter (or on PATH): a worker then starts without parsing it
/// (2.8 → 1.6 ms here). Without luac, or if it fails, the sources are used
/// and no old bytecode is left to shadow them.
async fn precompile_lua(interpreter: &Path, shim_dir: &Path) -> bool {
    let luac = interpreter
        .parent()
        .map(|d| d.join("luac5.4"))
        .filter(|p| p.is_file())
        .or_else(|| find_on_path("luac5.4"));
    let mut compiled = luac.is_some();
    for (name, _) in LUA_SHIM {
        let source = shim_dir.join(name);
        let target = source.with_extension("luac");
        let _ = std::fs::remove_file(&target);
        let Some(luac) = luac.as_ref().filter(|_| compiled) else {
            continue;
        };
        let tmp = source.with_extension("luac.tmp");
        let ok = tokio::process::Command::new(luac)
            .arg("-o")
            .arg(&tmp)
            .arg(&source)
            .env_clear()
            .output()
            .await
            .is_ok_and(|out| out.status.success());
        compiled = ok && std::fs::rename(&tmp, &target).is_ok();
        if !compiled {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(luac = %luac.display(), "cannot compile the Lua shim to bytecode; Lua workers parse it at start");
        }
    }
    if !compiled {
        for (name, _) in LUA_SHIM {
            let _ = std::fs::remove_file(shim_dir.join(name).with_extension("luac"));
        }
    }
    compiled
}

/// Write `content` to `path` unless it already holds exactly that.
fn install_file(path: &Path, content: &str) -> std::io::Result<()> {
    if std::fs::read(path)
        .map(|c| c == content.as_bytes())
        .unwrap_or(false)
    {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

/// Run a short probe command and return its trimmed stdout, or a reason.
async fn probe(
    program: &Path,
    args: &[&str],
    env: Option<&[(String, String)]>,
) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    if let Some(env) = env {
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), cmd.output())
        .await
        .map_err(|_| format!("{} did not answer within 20 s", program.display()))?
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim().to_owned();
        return Err(if last.is_empty() {
            format!("exited with {}", out.status)
        } else {
            last
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn python(
    dir: &Path,
    options: &RuntimeOptions,
    instead: Option<&Path>,
) -> Result<Runtime, RuntimeError> {
    let unavailable = |reason: String| RuntimeError::Unavailable {
        kind: RuntimeKind::Python,
        reason,
    };
    let requested = match instead {
        Some(path) => path.to_path_buf(),
        None => options
            .python
            .clone()
            .unwrap_or_else(|| PathBuf::from("python3")),
    };
    // Ask the interpreter for its real path (PATH entries are often
    // version-manager shims that cost tens of milliseconds per start).
    let real = probe(
        &requested,
        &["-c", "import sys; print(sys.executable)"],
        None,
    )
    .await
    .map_err(|e| {
        unavailable(format!(
            "{e}; install Python 3.8 or newer, or point --python / HEARTH_PYTHON at an interpreter"
        ))
    })?;
    let interpreter = PathBuf::from(real);
    let shim_dir = dir.join("python");
    let shim = shim_dir.join("hearth_worker.py");
    install_shim(RuntimeKind::Python, &shim_dir, PYTHON_SHIM)?;
    // Workers run with -S: no site module, so no .pth files of the
    // interpreter's packages run at every start (on this kind of machine they
    // cost 30 ms). The directory holding the shim's codec (msgpack) goes on
    // PYTHONPATH instead.
    let probed = probe(
        &interpreter,
        &[
            "-c",
            "import msgpack, os, sys; print('%d.%d.%d' % sys.version_info[:3]); print(os.path.dirname(os.path.dirname(msgpack.__file__)))",
        ],
        Some(&base_env()),
    )
    .await
    .map_err(|e| {
        unavailable(format!(
            "{} cannot import the shim's codec ({e}); run `{} -m pip install 'msgpack>=1.0,<2'` (./scripts/setup does), then restart hearth serve",
            interpreter.display(),
            interpreter.display()
        ))
    })?;
    let mut lines = probed.lines();
    let version = lines.next().unwrap_or("").to_owned();
    let codec_dir = lines.next().unwrap_or("").to_owned();
    let mut env = base_env();
    env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    env.push((
        "PYTHONPATH".into(),
        format!("{}:{codec_dir}", shim_dir.display()),
    ));
    Ok(Runtime {
        kind: RuntimeKind::Python,
        interpreter,
        version,
        args: vec!["-S".into(), shim.display().to_string()],
        env,
    })
}

/// The first file called `name` in a directory on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
