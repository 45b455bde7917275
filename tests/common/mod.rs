//! Test harness: a real `hearth serve` on a free loopback port with its own
//! data directory, the real CLI, and a small HTTP/1.1 client on a TCP socket.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_hearth");

/// The local admin token of each daemon the tests started, by address:
/// requests under /api/ made through these helpers carry it, unless they
/// send an Authorization header of their own (or use `http_anon`).
static TOKENS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn token_for(addr: &str) -> Option<String> {
    TOKENS
        .lock()
        .ok()?
        .iter()
        .rev()
        .find(|(a, _)| a == addr)
        .map(|(_, t)| t.clone())
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Daemon {
    child: Option<Child>,
    pub addr: String,
    pub data: PathBuf,
    /// The local admin token it made in its data directory.
    pub token: String,
    log: Arc<Mutex<String>>,
    _tmp: Option<tempfile::TempDir>,
}

/// Most bytes of a daemon's log kept (a function that prints a lot must not
/// fill the test's memory, nor a failing test's output).
const LOG_KEPT: usize = 16 << 20;

/// Drop the older half of `log` once it is over LOG_KEPT.
fn keep_tail(log: &mut String) {
    if log.len() <= LOG_KEPT {
        return;
    }
    let mut cut = log.len() - LOG_KEPT / 2;
    while !log.is_char_boundary(cut) {
        cut += 1;
    }
    log.replace_range(..cut, "[earlier log dropped]\n");
}

/// A temporary directory for a data directory: workers run as other users,
/// so they must be able to reach the data directory in it (not list it),
/// whatever the umask.
pub fn reachable_tempdir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod tempdir");
    tmp
}

impl Daemon {
    /// A daemon with a fresh data directory.
    pub fn start() -> Daemon {
        Daemon::start_with(&[], &[])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let tmp = reachable_tempdir();
        let data = tmp.path().join("data");
        let mut d = Daemon::start_in(&data, args, env);
        d._tmp = Some(tmp);
        d
    }

    /// A daemon on an existing data directory (to test restarts).
    pub fn start_in(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(args)
            // One pre-started interpreter per runtime is enough for tests
            // (several daemons run at once on two cores).
            .args(if args.contains(&"--generic-workers") {
                &[][..]
            } else {
                &["--generic-workers", "1"][..]
            })
            .env("HEARTH_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon::spawn(cmd, data)
    }

    /// Start `cmd` (a `hearth serve`, or something that execs one) and wait
    /// for its "listening" line; `data` is its data directory.
    pub fn spawn(mut cmd: Command, data: &Path) -> Daemon {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start hearth serve");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                    l.push('\n');
                    keep_tail(&mut l);
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                // Let the log reader catch the last lines (the error).
                std::thread::sleep(Duration::from_millis(500));
                panic!(
                    "hearth serve did not start ({status:?}); its log:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        let token = std::fs::read_to_string(data.join("admin.token"))
            .map(|t| t.trim().to_owned())
            .unwrap_or_else(|e| {
                panic!("the daemon wrote no admin token in {}: {e}", data.display())
            });
        if let Ok(mut tokens) = TOKENS.lock() {
            tokens.push((addr.clone(), token.clone()));
        }
        Daemon {
            child: Some(child),
            addr,
            data: data.to_path_buf(),
            token,
            log,
            _tmp: None,
        }
    }

    /// Send `signal` (libc::SIGTERM, SIGHUP, ...) to the daemon.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    /// Wait up to `secs` for the daemon to exit; its status, if it did.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait up to `secs` for `text` to appear in the daemon's log.
    pub fn wait_log(&self, secs: u64, text: &str) -> bool {
        eventually(secs, || self.log().contains(text))
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Pids of the idle pre-started interpreters of `runtime`.
    pub fn generic_pids(&self, runtime: &str) -> std::collections::HashSet<u64> {
        let workers = self.get("/api/v1/workers").json();
        workers["generic"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["runtime"] == runtime)
            .flat_map(|g| g["pids"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p.as_u64())
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Run the CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("HEARTH_ADDR", &self.addr)
            // Where the CLI finds the daemon's admin token.
            .env("HEARTH_DATA", &self.data)
            .env_remove("HEARTH_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("run hearth")
    }

    /// Run the CLI with HEARTH_TOKEN set to `token` (no local admin token).
    pub fn cli_with_token(&self, token: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("HEARTH_ADDR", &self.addr)
            .env("HEARTH_TOKEN", token)
            .env_remove("HEARTH_DATA")
            .stdin(Stdio::null())
            .output()
            .expect("run hearth")
    }

    /// Run the CLI and insist that it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "hearth {args:?} failed:\nstdout: {}\nstderr: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run the CLI and insist that it fails; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "hearth {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        http(&self.addr, "POST", path, body.as_bytes())
    }

    /// POST asking for the call's log; returns the reply and the decoded log.
    pub fn post_logged(&self, path: &str, body: &str) -> (Reply, String) {
        use base64::Engine as _;
        let reply = http_with(
            &self.addr,
            "POST",
            path,
            body.as_bytes(),
            &[("x-hearth-log", "tail")],
        );
        let log = match reply.header("x-hearth-log") {
            Some(h) => String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(h)
                    .expect("base64 log"),
            )
            .into_owned(),
            None => reply.json()["error"]["log"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        };
        (reply, log)
    }

    pub fn get(&self, path: &str) -> Reply {
        http(&self.addr, "GET", path, b"")
    }

    /// Run the CLI against this daemon without waiting for it.
    pub fn spawn_cli(&self, args: &[&str]) -> Child {
        Command::new(BIN)
            .args(args)
            .env("HEARTH_ADDR", &self.addr)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run hearth")
    }

    /// Kill with SIGKILL (no clean-up of any kind) and wait for it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop with SIGTERM and wait; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..200 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- hearth serve log ----\n{}", self.log());
        }
        // A clean stop (SIGTERM), so the daemon removes its cgroups; a
        // daemon that does not stop in time is killed.
        if self.child.is_some() && !self.stop() {
            eprintln!("hearth serve did not stop cleanly");
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error.code` of an error reply.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (Connection: close).
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> Reply {
    http_with(addr, method, path, body, &[])
}

/// The same, with extra request headers.
pub fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Reply {
    try_http_with(addr, method, path, body, headers).unwrap_or_else(|e| panic!("{e}"))
}

/// The same, returning a failure (cannot connect, no HTTP answer) instead
/// of panicking. Requests under /api/ carry the daemon's admin token unless
/// they send an Authorization header of their own.
pub fn try_http_with(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let own = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    let bearer = match token_for(addr) {
        Some(token) if path.starts_with("/api/") && !own => Some(format!("Bearer {token}")),
        _ => None,
    };
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(b) = &bearer {
        all.push(("Authorization", b));
    }
    try_http_anon(addr, method, path, body, &all)
}

/// A request with exactly the headers given (no token added).
pub fn http_anon(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Reply {
    try_http_anon(addr, method, path, body, headers).unwrap_or_else(|e| panic!("{e}"))
}

pub fn try_http_anon(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let mut stream =
        TcpStream::connect(addr).map_err(|e| format!("cannot connect to hearth at {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    // Host and Content-Type unless the caller sends its own.
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut defaults = String::new();
    if !has("host") {
        defaults.push_str(&format!("Host: {addr}\r\n"));
    }
    if !has("content-type") {
        defaults.push_str("Content-Type: application/json\r\n");
    }
    let head =
        format!(
        "{method} {path} HTTP/1.1\r\n{defaults}Content-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect::<String>()
    );
    stream
        .write_all(head.as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    // The server may answer (413) before reading a large body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(format!(
            "no HTTP answer to {method} {path}: {:?}",
            String::from_utf8_lossy(&raw)
        ));
    }
    Ok(parse_reply(&raw))
}

/// Start a request on a fresh connection and send only its head (and the
/// first bytes of its body, if any); the test sends the rest on the stream
/// it gets back and reads the answer with [`read_reply`].
pub fn start_request(
    addr: &str,
    method: &str,
    path: &str,
    content_length: usize,
    headers: &[(&str, &str)],
    body_start: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect to hearth");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let auth = match token_for(addr) {
        Some(token) if path.starts_with("/api/") => format!("Authorization: Bearer {token}\r\n"),
        _ => String::new(),
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\nConnection: close\r\n{auth}{}\r\n",
        headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect::<String>()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body_start).expect("write body");
    stream
}

/// Read an interim `100 Continue` answer (the server has begun to read the
/// body). Returns false if something else came.
pub fn read_continue(stream: &mut TcpStream) -> bool {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => return false,
        }
    }
    got.starts_with(b"HTTP/1.1 100")
}

/// Read the whole answer of a request started with [`start_request`].
pub fn read_reply(mut stream: TcpStream) -> Reply {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_reply(&raw)
}

/// A deploy request body (as `POST /api/v1/deploy` takes it) of these files,
/// sent as they are, without the CLI's own checks.
pub fn deploy_body(files: &[(&str, &[u8])]) -> String {
    use base64::Engine as _;
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, data)| {
            serde_json::json!({
                "path": path,
                "data": base64::engine::general_purpose::STANDARD.encode(data),
            })
        })
        .collect();
    serde_json::json!({ "files": files }).to_string()
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in: {}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// A function directory in a temporary folder: a hearth.toml made from
/// `manifest` (TOML text) and the given files.
pub struct FnDir {
    pub dir: tempfile::TempDir,
}

impl FnDir {
    pub fn new(manifest: &str, files: &[(&str, &str)]) -> FnDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hearth.toml"), manifest).expect("write manifest");
        for (path, content) in files {
            let p = dir.path().join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(p, content).expect("write file");
        }
        FnDir { dir }
    }

    /// A Python function `name` whose main.py is `code`.
    pub fn python(name: &str, code: &str) -> FnDir {
        FnDir::python_with(name, code, "")
    }

    /// Same, with extra manifest lines (for example a [limits] table).
    pub fn python_with(name: &str, code: &str, extra: &str) -> FnDir {
        let manifest = format!("name = \"{name}\"\nruntime = \"python\"\nentry = \"main.handler\"\napp = \"tests\"\n{extra}\n");
        FnDir::new(&manifest, &[("main.py", code)])
    }

    pub fn path(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 path")
    }

    pub fn write(&self, path: &str, content: &str) {
        std::fs::write(self.dir.path().join(path), content).expect("write");
    }
}

/// Is a process with this pid still there (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Wait up to `secs` for `cond`.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// A daemon serving HTTPS with a fresh self-signed certificate for
/// localhost and 127.0.0.1, and the certificate's file (its CA, for
/// HEARTH_CA_CERT). The directory holds both files.
pub fn https_daemon() -> (Daemon, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("write key");
    let d = Daemon::start_with(
        &[
            "--tls-cert",
            cert.to_str().expect("path"),
            "--tls-key",
            key.to_str().expect("path"),
        ],
        &[],
    );
    (d, cert, dir)
}
