//! hearth as a service: the systemd units (systemd-analyze verify and
//! security), `hearth install-service`, readiness, status and watchdog
//! notifications on a NOTIFY_SOCKET the test reads, socket activation
//! (a socket the test holds, passed to successive daemons as systemd does,
//! and systemd-socket-activate), and stopping on SIGTERM.
//!
//! systemd is not this machine's init, so the units are checked with
//! systemd-analyze and the daemon's side of each protocol with real
//! sockets; docs/SERVICE.md says what that covers.

mod common;

use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, reachable_tempdir, try_http_with, Daemon, FnDir, BIN};

/// The path of a tool, or None (and why the test is skipped).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!(
            "SKIPPED: {name} is not installed (Debian's systemd package has it; scripts/setup --deps installs it)"
        );
    }
    found
}

/// The units of dist/systemd/ in `dir`, with ExecStart= naming `binary`
/// (systemd-analyze verify checks that the program exists).
fn units_in(dir: &Path, binary: &str) -> (PathBuf, PathBuf) {
    let service = std::fs::read_to_string(common::repo().join("dist/systemd/hearth.service"))
        .expect("read dist/systemd/hearth.service");
    assert!(
        service.contains("ExecStart=/usr/local/bin/hearth serve"),
        "the unit runs /usr/local/bin/hearth, where install-service puts it"
    );
    let service = service.replace("/usr/local/bin/hearth", binary);
    let (s, k) = (dir.join("hearth.service"), dir.join("hearth.socket"));
    std::fs::write(&s, service).expect("write unit");
    std::fs::copy(common::repo().join("dist/systemd/hearth.socket"), &k).expect("copy socket");
    (s, k)
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (service, socket) = units_in(tmp.path(), BIN);
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&service)
        .arg(&socket)
        .output()
        .expect("run systemd-analyze verify");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify refused the units:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A unit with a mistake is refused, so the check above means something.
    let broken = std::fs::read_to_string(&service)
        .expect("read")
        .replace("KillMode=mixed", "KillMode=sometimes");
    std::fs::write(&service, broken).expect("write");
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&service)
        .arg(&socket)
        .output()
        .expect("run systemd-analyze verify");
    assert!(
        !out.stderr.is_empty(),
        "a wrong KillMode= should be reported"
    );
}

#[test]
fn unit_exposure_score_stays_low() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (service, _) = units_in(tmp.path(), BIN);
    let out = Command::new(&analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&service)
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("{line}");
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    // 3.9 when written; docs/SERVICE.md explains what is left and why.
    assert!(
        score <= 4.5,
        "the unit's exposure grew to {score}: {line}\n{text}"
    );
    for must in [
        "Delegate=yes",
        "KillMode=mixed",
        "Type=notify",
        "WatchdogSec=",
    ] {
        assert!(
            std::fs::read_to_string(&service)
                .expect("read")
                .contains(must),
            "the unit lacks {must}"
        );
    }
}

#[test]
fn install_service_writes_units_config_and_directories() {
    let root = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("install-service")
            .arg("--root")
            .arg(root.path())
            .args(args)
            .output()
            .expect("run install-service");
        assert!(
            out.status.success(),
            "install-service failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let planned = run(&["--dry-run"]);
    assert!(planned.contains("hearth.service"), "{planned}");
    assert!(
        std::fs::read_dir(root.path()).expect("ls").next().is_none(),
        "--dry-run wrote something"
    );

    run(&["--listen", "127.0.0.1:7811"]);
    let r = root.path();
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(r.join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("usr/local/bin/hearth"), 0o755);
    let version = Command::new(r.join("usr/local/bin/hearth"))
        .arg("--version")
        .output()
        .expect("run the installed binary");
    assert!(
        version.status.success(),
        "the installed binary does not run"
    );
    let service =
        std::fs::read_to_string(r.join("etc/systemd/system/hearth.service")).expect("unit");
    assert_eq!(
        service,
        std::fs::read_to_string(common::repo().join("dist/systemd/hearth.service")).expect("dist")
    );
    let socket =
        std::fs::read_to_string(r.join("etc/systemd/system/hearth.socket")).expect("socket");
    assert!(
        socket.contains("\nListenStream=127.0.0.1:7811\n"),
        "{socket}"
    );
    assert_eq!(mode("var/lib/hearth"), 0o711);
    assert_eq!(mode("var/cache/hearth"), 0o700);
    let config = r.join("etc/hearth/hearth.toml");
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        std::fs::read_to_string(common::repo().join("dist/hearth.toml")).expect("dist")
    );

    // A configuration the operator changed is kept by a second install.
    std::fs::write(&config, "[pools]\nmax_workers_total = 9\n").expect("edit");
    let again = run(&[]);
    assert!(again.contains("kept"), "{again}");
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        "[pools]\nmax_workers_total = 9\n"
    );
}

#[test]
fn install_service_explains_an_unwritable_root() {
    let root = tempfile::tempdir().expect("tempdir");
    let file = root.path().join("not-a-dir");
    std::fs::write(&file, "").expect("write");
    let out = Command::new(BIN)
        .args(["install-service", "--root"])
        .arg(&file)
        .output()
        .expect("run install-service");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--root"), "{err}");
}

/// A datagram socket standing in for systemd's notification socket; every
/// message received is kept.
struct NotifySocket {
    path: PathBuf,
    got: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                if let Ok(mut g) = sink.lock() {
                    g.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        });
        NotifySocket {
            path,
            got,
            _dir: dir,
        }
    }

    fn messages(&self) -> Vec<String> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn count(&self, line: &str) -> usize {
        self.messages()
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

#[test]
fn notifies_ready_status_watchdog_and_stopping() {
    let notify = NotifySocket::bind();
    let path = notify.path.to_str().expect("utf-8");
    let mut d = Daemon::start_with(
        &[],
        &[("NOTIFY_SOCKET", path), ("WATCHDOG_USEC", "1000000")],
    );
    assert!(
        eventually(10, || notify.count("READY=1") >= 1),
        "no READY=1; got {:?}",
        notify.messages()
    );
    let ready = notify
        .messages()
        .into_iter()
        .find(|m| m.contains("READY=1"))
        .expect("ready");
    assert!(
        ready.contains("STATUS=0 functions live, ") && ready.contains("calls in flight"),
        "{ready}"
    );

    // The status follows what the daemon does.
    let f = FnDir::python(
        "svc-status",
        "def handler(event):\n    return {'ok': True}\n",
    );
    d.ok(&["deploy", f.path()]);
    assert_eq!(d.post("/fn/svc-status", "{}").status, 200);
    assert!(
        eventually(15, || notify
            .messages()
            .iter()
            .any(|m| m.contains("STATUS=1 functions live, 1 warm workers"))),
        "no status with the deployed function; got {:?}",
        notify.messages()
    );

    // Keep-alives every half period while the daemon is healthy.
    let before = notify.count("WATCHDOG=1");
    assert!(
        eventually(20, || notify.count("WATCHDOG=1") >= before + 3),
        "watchdog keep-alives stopped; got {:?}",
        notify.messages()
    );

    d.signal(libc::SIGTERM);
    let status = d.wait_exit(30).expect("the daemon did not stop");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        notify.count("STOPPING=1") >= 1,
        "no STOPPING=1; got {:?}",
        notify.messages()
    );
}

#[test]
fn no_watchdog_keep_alives_unless_asked() {
    let notify = NotifySocket::bind();
    let path = notify.path.to_str().expect("utf-8");
    // WATCHDOG_PID names another process: the watchdog is not ours.
    let d = Daemon::start_with(
        &[],
        &[
            ("NOTIFY_SOCKET", path),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    assert!(eventually(10, || notify.count("READY=1") >= 1));
    // Long enough for several periods of 200 ms.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(notify.count("WATCHDOG=1"), 0, "{:?}", notify.messages());
    drop(d);
}

/// A function to call across restarts.
fn deploy_echo(d: &Daemon) {
    let f = FnDir::python(
        "svc-echo",
        "def handler(event):\n    return {'n': event.get('n')}\n",
    );
    d.ok(&["deploy", f.path()]);
}

/// `hearth serve` with `listener` as its fd 3 and LISTEN_FDS=1, LISTEN_PID
/// set to its own pid by the shell that execs it: what systemd does.
fn activated(listener: &std::net::TcpListener, data: &Path) -> Daemon {
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"", BIN])
        .args(["serve", "--generic-workers", "0", "--data-dir"])
        .arg(data)
        .env("HEARTH_LOG", "info")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS");
    // SAFETY: dup2 and fcntl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Daemon::spawn(cmd, data)
}

#[test]
fn socket_activated_restart_refuses_no_call() {
    let tmp = reachable_tempdir();
    let data = tmp.path().join("data");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();

    let mut first = activated(&listener, &data);
    assert_eq!(first.addr, addr, "the daemon did not use the passed socket");
    assert!(first.wait_log(5, "listening on the socket passed by the service manager"));
    deploy_echo(&first);
    assert_eq!(first.post("/fn/svc-echo", "{\"n\": 0}").status, 200);

    // Call in a loop, one connection per call, across the restart.
    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let (done, ok, failures, addr) =
                (done.clone(), ok.clone(), failures.clone(), addr.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    n += 1;
                    let body = format!("{{\"n\": {n}}}");
                    match try_http_with(&addr, "POST", "/fn/svc-echo", body.as_bytes(), &[]) {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failures.lock().expect("lock").push(format!(
                            "{}: {}",
                            r.status,
                            r.text()
                        )),
                        Err(e) => failures.lock().expect("lock").push(e),
                    }
                }
            })
        })
        .collect();

    assert!(eventually(10, || ok.load(Ordering::Relaxed) >= 10));
    first.signal(libc::SIGTERM);
    let status = first.wait_exit(30).expect("the first daemon did not stop");
    assert!(
        status.success(),
        "first daemon: {status:?}\n{}",
        first.log()
    );
    let before_restart = ok.load(Ordering::Relaxed);
    // No daemon now: connections wait in the socket's queue.
    std::thread::sleep(Duration::from_millis(300));
    let second = activated(&listener, &data);
    assert!(
        eventually(20, || ok.load(Ordering::Relaxed) >= before_restart + 20),
        "calls did not resume after the restart; failures: {:?}\n{}",
        failures.lock().expect("lock"),
        second.log()
    );
    done.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().expect("caller");
    }
    let failures = failures.lock().expect("lock");
    assert!(
        failures.is_empty(),
        "{} calls failed across the restart (of {}): {:?}\nfirst daemon:\n{}\nsecond daemon:\n{}",
        failures.len(),
        ok.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)],
        first.log(),
        second.log()
    );
}

#[test]
fn systemd_socket_activate_starts_a_daemon_that_serves() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let tmp = reachable_tempdir();
    let data = tmp.path().join("data");
    // A free port (systemd-socket-activate binds it itself).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = Command::new(activate);
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-E",
            "HEARTH_LOG=info",
            BIN,
            "serve",
            "--generic-workers",
            "0",
            "--data-dir",
        ])
        .arg(&data)
        .stdin(Stdio::null());
    // systemd-socket-activate starts the program at the first connection;
    // that connection waits in the queue and is served.
    let addr = format!("127.0.0.1:{port}");
    let first = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                if std::net::TcpStream::connect(&addr).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            try_http_with(&addr, "GET", "/", b"", &[])
        })
    };
    let d = Daemon::spawn(cmd, &data);
    assert_eq!(d.addr, addr);
    let r = first
        .join()
        .expect("first caller")
        .expect("the first connection failed");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(d.wait_log(5, "listening on the socket passed by the service manager"));
    deploy_echo(&d);
    let r = d.post("/fn/svc-echo", "{\"n\": 7}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["n"], 7);
}

#[test]
fn sigterm_lets_calls_in_flight_finish_then_exits_zero() {
    let mut d = Daemon::start_with(&["--shutdown-grace", "60s"], &[]);
    let f = FnDir::python(
        "svc-slow",
        "import time\ndef handler(event):\n    time.sleep(2)\n    return {'done': True}\n",
    );
    d.ok(&["deploy", f.path()]);
    let addr = d.addr.clone();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || try_http_with(&addr, "POST", "/fn/svc-slow", b"{}", &[]))
        })
        .collect();
    // Both calls are in a worker before the signal.
    assert!(eventually(20, || {
        d.get("/api/v1/workers").json()["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["function"] == "svc-slow")
            .map(|p| p["busy"].as_u64().unwrap_or(0))
            .sum::<u64>()
            >= 2
    }));
    d.signal(libc::SIGTERM);
    assert!(d.wait_log(10, "SIGTERM received: no new connections"));
    // It stops accepting while the calls run.
    assert!(
        eventually(10, || std::net::TcpStream::connect(&addr).is_err()),
        "still accepting connections after SIGTERM"
    );
    for c in calls {
        let r = c
            .join()
            .expect("caller")
            .expect("the call in flight failed");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["done"], true);
    }
    let status = d.wait_exit(30).expect("the daemon did not exit");
    assert!(status.success(), "exit status {status:?}\n{}", d.log());
    assert!(d.log().contains("stopped"), "{}", d.log());
}

#[test]
fn second_signal_stops_at_once() {
    let mut d = Daemon::start_with(&["--shutdown-grace", "120s"], &[]);
    let f = FnDir::python_with(
        "svc-stuck",
        "import time\ndef handler(event):\n    time.sleep(100)\n    return {}\n",
        "[limits]\ntimeout_ms = 200000\n",
    );
    d.ok(&["deploy", f.path()]);
    let addr = d.addr.clone();
    let call =
        std::thread::spawn(move || try_http_with(&addr, "POST", "/fn/svc-stuck", b"{}", &[]));
    assert!(eventually(20, || {
        d.get("/api/v1/workers").json()["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["function"] == "svc-stuck" && p["busy"].as_u64().unwrap_or(0) >= 1)
    }));
    d.signal(libc::SIGTERM);
    assert!(d.wait_log(10, "SIGTERM received"));
    // The first signal alone waits for the call (up to 120 s).
    assert!(d.wait_exit(2).is_none(), "exited before the call finished");
    d.signal(libc::SIGINT);
    // Far less than the call's 100 s and the 120 s grace: at once.
    let status = d
        .wait_exit(20)
        .expect("a second signal did not stop the daemon");
    assert!(
        !status.success(),
        "a forced stop reports failure: {status:?}"
    );
    assert!(
        d.log().contains("SIGINT received again: stopping at once"),
        "{}",
        d.log()
    );
    let r = call.join().expect("caller");
    assert!(
        r.as_ref().map(|r| r.status != 200).unwrap_or(true),
        "the cut call should not succeed: {r:?}"
    );
}
