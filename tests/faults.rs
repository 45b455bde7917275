//! Fault injection: functions that loop, exhaust memory, fork or spawn
//! without end, crash, write garbage on the protocol pipe, flood stdout,
//! answer too much, probe what they may read and write, leave children
//! behind, or die on every call.
//!
//! Each case runs against a daemon serving the chaos function of
//! `tests/faults/<runtime>/chaos` (its handler misbehaves as `event.mode`
//! says) next to a plain healthy function, and asserts that
//! - the fault gets the documented status and error code,
//! - the healthy function answers 200 throughout,
//! - the chaos function serves a normal call again afterwards,
//! - nothing is left behind: no process but the live workers under the
//!   daemon, no extra descriptor in the daemon, no temp dir but the live
//!   workers', and no cgroup once the daemon has stopped.
//!
//! Each case prints `FAULT | case | status code | recovered in N ms`
//! (`cargo nextest run --test faults --no-capture` shows the table).
//! Cases that need root and cgroups say why on stderr and pass without
//! running when those are missing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{alive, eventually, http, Daemon, FnDir, Reply};
use serde_json::{json, Value};

/// The healthy neighbour of every case.
const HELLO: &str =
    "import os\n\ndef handler(event):\n    return {'hello': event.get('name', 'world'), 'pid': os.getpid()}\n";

/// Daemon descriptors allowed per worker above the baseline's worker count
/// (its pipes, and room for a pidfd or a cgroup handle).
const FDS_PER_WORKER: usize = 8;
/// Daemon descriptors allowed above the baseline regardless.
const FD_SLACK: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Python,
    Node,
}

impl Runtime {
    fn dir(self) -> &'static str {
        match self {
            Runtime::Python => "python",
            Runtime::Node => "node",
        }
    }

    fn code_file(self) -> &'static str {
        match self {
            Runtime::Python => "main.py",
            Runtime::Node => "index.js",
        }
    }

    fn comment(self) -> &'static str {
        match self {
            Runtime::Python => "#",
            Runtime::Node => "//",
        }
    }
}

fn fixture(runtime: Runtime) -> PathBuf {
    common::repo()
        .join("tests/faults")
        .join(runtime.dir())
        .join("chaos")
}

/// A copy of the chaos fixture, its manifest passed through `manifest` and
/// `note` appended to its code as a comment (a different note makes a
/// different version).
fn chaos_copy(runtime: Runtime, manifest: impl Fn(String) -> String, note: &str) -> FnDir {
    let dir = fixture(runtime);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(name).display()))
    };
    let code = format!(
        "{}\n{} {note}\n",
        read(runtime.code_file()),
        runtime.comment()
    );
    FnDir::new(
        &manifest(read("hearth.toml")),
        &[(runtime.code_file(), code.as_str())],
    )
}

/// Why the cases that need process isolation cannot run here, if they cannot.
fn isolation_missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (workers cannot get users of their own)".into());
    }
    if !Path::new("/sys/fs/cgroup/memory").is_dir()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    {
        return Some("no cgroup filesystem at /sys/fs/cgroup".into());
    }
    None
}

/// Return from the test (it passes) when isolation is not available.
macro_rules! needs_isolation {
    ($case:expr) => {
        if let Some(why) = isolation_missing() {
            eprintln!("skipping fault case {}: {why}", $case);
            return;
        }
    };
}

// ---- /proc ----------------------------------------------------------------

/// Fields of /proc/<pid>/stat after the command name: [0] is the state,
/// [1] the parent pid, [11] utime, [12] stime.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// When the process started (clock ticks after boot): with the pid, it
/// names one process even if the pid is reused.
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Is the process that had this pid and start time still running?
fn running(pid: u32, started: u64) -> bool {
    stat_fields(pid).is_some_and(|f| {
        f.first().map(String::as_str) != Some("Z")
            && f.get(19).and_then(|s| s.parse().ok()) == Some(started)
    })
}

/// Every process whose chain of parents reaches `root` (not `root` itself).
fn descendants(root: u32) -> BTreeSet<u32> {
    let mut parent = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                parent.insert(pid, ppid);
            }
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&pid| {
            let mut at = pid;
            for _ in 0..64 {
                match parent.get(&at) {
                    Some(&p) if p == root => return true,
                    Some(&p) if p > 1 => at = p,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

fn describe(pid: u32) -> String {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default();
    let state = stat_fields(pid)
        .and_then(|f| f.first().cloned())
        .unwrap_or_default();
    format!("{pid} [{state}] {}", cmd.trim())
}

/// Is `pid` the daemon's cgroup reaper (`hearth reap hearth-<daemon>`)?
fn is_reaper(pid: u32, daemon: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    args.len() >= 3
        && args[0] == common::BIN.as_bytes()
        && args[1] == b"reap"
        && args[2] == format!("hearth-{daemon}").as_bytes()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// CPU time (user + system) the process has used itself.
fn cpu_time(pid: u32) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let fields = stat_fields(pid).unwrap_or_default();
    let used: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_secs_f64(used as f64 / ticks)
}

/// A `VmHWM:`-style line of /proc/<pid>/status, in KiB.
fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Cgroup directories named `hearth-<pid>` anywhere under /sys/fs/cgroup.
fn hearth_cgroups(daemon_pid: u32) -> Vec<String> {
    let out = std::process::Command::new("find")
        .args(["/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "-name"])
        .arg(format!("hearth-{daemon_pid}"))
        .output()
        .expect("run find");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The cgroup directory of `pid` for a v1 `controller` (or the v2 one).
fn cgroup_dir(pid: u32, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == controller) {
            return Some(PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}")));
        }
        if controllers.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return Some(PathBuf::from(format!("/sys/fs/cgroup{path}")));
        }
    }
    None
}

// ---- the census -----------------------------------------------------------

/// Every process seen under the daemon during a case, sampled every 25 ms
/// from a thread of its own: a process that leaves the daemon's tree (its
/// parent died, so it was reparented to init) is still accounted for.
struct Census {
    root: u32,
    seen: Arc<std::sync::Mutex<BTreeMap<u32, u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Census {
    fn start(root: u32) -> Census {
        let seen = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    Census::sample_into(root, &seen);
                    std::thread::sleep(Duration::from_millis(25));
                }
            })
        };
        Census {
            root,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn sample_into(root: u32, seen: &std::sync::Mutex<BTreeMap<u32, u64>>) {
        let now: Vec<(u32, u64)> = descendants(root)
            .into_iter()
            .filter_map(|p| Some((p, start_time(p)?)))
            .collect();
        if let Ok(mut seen) = seen.lock() {
            seen.extend(now);
        }
    }

    /// Processes seen so far that still run, apart from `except`.
    fn running_except(&self, except: &BTreeSet<u32>) -> Vec<u32> {
        Census::sample_into(self.root, &self.seen);
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        seen.into_iter()
            .filter(|(pid, started)| !except.contains(pid) && running(*pid, *started))
            .map(|(pid, _)| pid)
            .collect()
    }
}

impl Drop for Census {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---- the lab --------------------------------------------------------------

/// A daemon serving the chaos function of one runtime and a healthy
/// `hello`, with the baseline its leak checks compare against.
struct Lab {
    d: Daemon,
    census: Census,
    chaos: String,
    baseline_fds: usize,
    baseline_workers: usize,
}

/// How the chaos function's workers start: from the daemon's pre-started
/// interpreters (as root, taking the function's identity at load), or as
/// new processes started for it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Start {
    Generic,
    Fresh,
}

/// What a fault call got, and when.
struct Outcome {
    reply: Reply,
    answered: Instant,
}

impl Outcome {
    fn message(&self) -> String {
        let j = self.reply.json();
        format!(
            "{} (hint: {})",
            j["error"]["message"].as_str().unwrap_or(""),
            j["error"]["hint"].as_str().unwrap_or("")
        )
    }

    fn expect(&self, case: &str, status: u16, code: &str) {
        assert_eq!(
            (self.reply.status, self.code()),
            (status, code.to_owned()),
            "{case}: {}",
            brief(&self.reply)
        );
    }

    fn code(&self) -> String {
        error_code(&self.reply)
    }
}

/// `error.code`, or "" for an answer that is not an error document.
fn error_code(reply: &Reply) -> String {
    serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|j| j["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Lab {
    fn start(runtime: Runtime) -> Lab {
        Lab::start_with(runtime, None)
    }

    /// With `chaos` instead of the fixture as the chaos function.
    fn start_with(runtime: Runtime, chaos: Option<&FnDir>) -> Lab {
        Lab::open(runtime, chaos, Start::Generic)
    }

    fn open(runtime: Runtime, chaos: Option<&FnDir>, start: Start) -> Lab {
        let d = match start {
            Start::Generic => Daemon::start_with(&["--drain-grace", "1"], &[]),
            Start::Fresh => {
                Daemon::start_with(&["--drain-grace", "1", "--generic-workers", "0"], &[])
            }
        };
        let census = Census::start(d.pid());
        let hello = FnDir::python("hello", HELLO);
        d.ok(&["deploy", hello.path()]);
        if start == Start::Generic {
            // hello may have taken the pre-started Python interpreter: wait
            // for its replacement, so that the chaos function's first worker
            // surely is one.
            let ready = eventually(20, || !d.generic_pids(runtime.dir()).is_empty());
            assert!(ready, "no pre-started {} interpreter", runtime.dir());
        }
        let fixture = fixture(runtime);
        let path = match chaos {
            Some(dir) => dir.path().to_owned(),
            None => fixture.to_str().expect("utf-8 path").to_owned(),
        };
        d.ok(&["deploy", &path]);
        let name = read_manifest_name(Path::new(&path));
        let mut lab = Lab {
            d,
            census,
            chaos: name,
            baseline_fds: 0,
            baseline_workers: 0,
        };
        // Warm both, and touch every route the checks use, so that the
        // baseline counts what a settled daemon holds.
        let hello = lab.hello();
        assert_eq!(hello.status, 200, "hello: {}", brief(&hello));
        let ok = lab.call(&json!({"mode": "ok"}));
        assert_eq!(ok.status, 200, "chaos ok: {}", brief(&ok));
        let _ = lab.d.get(&format!("/api/v1/functions/{}", lab.chaos));
        lab.settle("baseline");
        lab.baseline_workers = lab.workers().len();
        lab.baseline_fds = fd_count(lab.d.pid());
        lab
    }

    fn pid(&self) -> u32 {
        self.d.pid()
    }

    fn hello(&self) -> Reply {
        self.d.post("/fn/hello", r#"{"name":"neighbour"}"#)
    }

    fn call(&self, event: &Value) -> Reply {
        self.d
            .post(&format!("/fn/{}", self.chaos), &event.to_string())
    }

    /// Pids of every live worker the daemon reports (generic interpreters
    /// and idle workers of every pool).
    fn workers(&self) -> BTreeSet<u32> {
        let w = self.d.get("/api/v1/workers").json();
        ["generic", "pools"]
            .iter()
            .flat_map(|k| w[*k].as_array().cloned().unwrap_or_default())
            .flat_map(|p| p["pids"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p.as_u64())
            .map(|p| p as u32)
            .collect()
    }

    /// Run the fault call `event` while the healthy function is called in a
    /// loop from another thread; then call the chaos function normally until
    /// it answers 200. Prints the case's line of the table.
    fn case(&self, case: &str, event: &Value) -> Outcome {
        self.case_with(case, || self.call(event))
    }

    fn case_with(&self, case: &str, fault: impl FnOnce() -> Reply) -> Outcome {
        let neighbour = Neighbour::start(&self.d.addr);
        neighbour.wait_for_calls(1);
        let reply = fault();
        let answered = Instant::now();
        let status = status_line(&reply);
        let recovered = self.recover(answered);
        neighbour.wait_for_calls(neighbour.calls() + 1);
        let failures = neighbour.finish();
        match recovered {
            Some(took) => println!(
                "FAULT | {case} | {status} | recovered in {} ms",
                took.as_millis()
            ),
            None => println!("FAULT | {case} | {status} | not recovered"),
        }
        assert!(
            failures.is_empty(),
            "{case}: the healthy function failed during the fault: {failures:?}"
        );
        assert!(
            recovered.is_some(),
            "{case}: {} never answered a normal call again after the fault",
            self.chaos
        );
        Outcome { reply, answered }
    }

    /// Time from `since` until a normal call succeeds (none within 30 s:
    /// None).
    fn recover(&self, since: Instant) -> Option<Duration> {
        let deadline = since + Duration::from_secs(30);
        while Instant::now() < deadline {
            let reply = self.call(&json!({"mode": "ok"}));
            if reply.status == 200 {
                return Some(since.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// What is off compared with a settled daemon, if anything.
    fn unsettled(&self) -> Option<String> {
        let workers = self.workers();
        let under = descendants(self.pid());
        let mut problems = Vec::new();
        // The daemon's own processes: its workers and its cgroup reaper.
        let mut expected = workers.clone();
        expected.extend(under.iter().copied().filter(|&p| is_reaper(p, self.pid())));
        let strays: Vec<String> = self
            .census
            .running_except(&expected)
            .into_iter()
            .map(describe)
            .collect();
        if !strays.is_empty() || under.len() != expected.len() || expected.len() > workers.len() + 1
        {
            problems.push(format!(
                "{} processes under the daemon for {} live workers {workers:?} (and at most one reaper); running and not expected: {strays:?}",
                under.len(),
                workers.len()
            ));
        }
        if self.baseline_workers > 0 {
            let fds = fd_count(self.pid());
            let allowed = self.baseline_fds
                + FD_SLACK
                + FDS_PER_WORKER * workers.len().saturating_sub(self.baseline_workers);
            if fds > allowed {
                problems.push(format!(
                    "the daemon holds {fds} descriptors (baseline {} with {} workers, now {} workers)",
                    self.baseline_fds,
                    self.baseline_workers,
                    workers.len()
                ));
            }
        }
        let tmp = self.d.data.join("tmp");
        let tmp_entries: Vec<String> = std::fs::read_dir(&tmp)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if tmp_entries.len() > workers.len() {
            problems.push(format!(
                "{} has {} entries for {} live workers: {tmp_entries:?}",
                tmp.display(),
                tmp_entries.len(),
                workers.len()
            ));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// Wait up to 15 s for the daemon to settle; panic naming what leaked.
    fn settle(&self, case: &str) {
        let settled = eventually(15, || self.unsettled().is_none());
        if !settled {
            panic!(
                "{case}: not settled within 15 s: {}",
                self.unsettled().unwrap_or_default()
            );
        }
    }

    /// Stop the daemon and check that it leaves no process and no cgroup.
    fn finish(mut self, case: &str) {
        let pid = self.pid();
        assert!(self.d.stop(), "{case}: the daemon did not stop cleanly");
        let none = BTreeSet::new();
        assert!(
            eventually(5, || self.census.running_except(&none).is_empty()),
            "{case}: processes outlived the daemon: {:?}",
            self.census
                .running_except(&none)
                .into_iter()
                .map(describe)
                .collect::<Vec<_>>()
        );
        let left = hearth_cgroups(pid);
        assert!(
            left.is_empty(),
            "{case}: cgroups left after the daemon stopped: {left:?}"
        );
    }
}

/// `text` with `from` replaced by `to`; `from` must be there.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in:\n{text}");
    text.replacen(from, to, 1)
}

impl Drop for Lab {
    /// A failed case may leave processes behind (that is what it found):
    /// end those the census saw under this lab's daemon, so they do not
    /// outlive the test. The reaper is spared: it empties the daemon's
    /// cgroups once the daemon is gone.
    fn drop(&mut self) {
        let daemon = self.pid();
        for pid in self.census.running_except(&BTreeSet::new()) {
            if pid != daemon && !is_reaper(pid, daemon) {
                // SAFETY: kill has no memory-safety preconditions; the pid
                // was checked to be the process the census saw.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
        }
    }
}

fn read_manifest_name(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("hearth.toml")).expect("read hearth.toml");
    let table: toml::Table = text.parse().expect("hearth.toml is TOML");
    table["name"].as_str().expect("name").to_owned()
}

/// Calls the healthy function in a loop from its own thread.
struct Neighbour {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Neighbour {
    fn start(addr: &str) -> Neighbour {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let (addr, stop2, calls2) = (addr.to_owned(), stop.clone(), calls.clone());
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                let started = Instant::now();
                let reply = http(&addr, "POST", "/fn/hello", br#"{"name":"neighbour"}"#);
                if reply.status != 200 {
                    failures.push(format!(
                        "{} after {} ms: {}",
                        reply.status,
                        started.elapsed().as_millis(),
                        brief(&reply)
                    ));
                }
                calls2.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            }
            failures
        });
        Neighbour {
            stop,
            calls,
            thread,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn wait_for_calls(&self, n: usize) {
        assert!(
            eventually(30, || self.calls() >= n),
            "the healthy function did not answer within 30 s"
        );
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("neighbour thread")
    }
}

/// The body of `reply`, cut to 400 characters for a failure message.
fn brief(reply: &Reply) -> String {
    let text = reply.text();
    match text.char_indices().nth(400) {
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
        None => text,
    }
}

/// `502 worker_died`, or `200 -` for an answer that is not an error.
fn status_line(reply: &Reply) -> String {
    let code = error_code(reply);
    format!(
        "{} {}",
        reply.status,
        if code.is_empty() { "-" } else { code.as_str() }
    )
}

fn message_of(reply: &Reply) -> String {
    serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|j| j["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

// ---- cases: time ----------------------------------------------------------

/// A call past `timeout_ms` (2000) is 504 soon after the deadline, and the
/// worker is replaced.
fn timeout_case(runtime: Runtime, event: Value) {
    let case = format!("{}/timeout", runtime.dir());
    let lab = Lab::start(runtime);
    let started = Instant::now();
    let out = lab.case(&case, &event);
    out.expect(&case, 504, "timeout");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2000 + 2500),
        "{case}: the 504 came {} ms after the call (timeout_ms is 2000)",
        took.as_millis()
    );
    let msg = message_of(&out.reply);
    assert!(msg.contains("2000 ms"), "{case}: {msg}");
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_busy_loop_past_the_timeout_is_504() {
    timeout_case(Runtime::Python, json!({"mode": "loop"}));
}

#[test]
fn node_idle_wait_past_the_timeout_is_504() {
    timeout_case(Runtime::Node, json!({"mode": "sleep", "seconds": 60}));
}

/// The same with a worker that ignores SIGTERM and has started a child in
/// a session of its own: SIGTERM first (the Python worker notes it in a
/// file of its temp dir), SIGKILL after the 1 s grace, and the child is
/// killed with it.
fn kill_tree_case(runtime: Runtime) {
    let case = format!("{}/timeout_tree", runtime.dir());
    needs_isolation!(case);
    let lab = Lab::start(runtime);
    // The idle worker that will take the call.
    let worker = lab.call(&json!({"mode": "ok"})).json()["pid"]
        .as_u64()
        .expect("pid") as u32;
    let tmp_root = lab.d.data.join("tmp");
    // Watch for the SIGTERM note and for the worker's end.
    let watcher = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(15);
        let mut noted = false;
        while Instant::now() < end {
            noted = noted
                || std::fs::read_dir(&tmp_root).is_ok_and(|d| {
                    d.flatten()
                        .any(|e| e.path().join("chaos-got-sigterm").exists())
                });
            if !alive(worker) {
                return (Some(Instant::now()), noted);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (None, noted)
    });
    let out = lab.case(
        &case,
        &json!({"mode": "loop", "ignore_term": true, "child": true, "linger": 60}),
    );
    out.expect(&case, 504, "timeout");
    let (ended, noted) = watcher.join().expect("watcher");
    let ended = ended.unwrap_or_else(|| panic!("{case}: worker {worker} still runs"));
    let after = ended.saturating_duration_since(out.answered);
    assert!(
        after >= Duration::from_millis(700) && after < Duration::from_secs(5),
        "{case}: the worker, which ignores SIGTERM, ended {} ms after the 504 (the grace is 1 s){}",
        after.as_millis(),
        match (runtime, noted) {
            (Runtime::Python, true) => "; it noted SIGTERM",
            (Runtime::Python, false) => "; it did not note a SIGTERM",
            _ => "",
        }
    );
    if runtime == Runtime::Python {
        // (Node's listener cannot run during its busy loop.)
        assert!(
            noted,
            "{case}: the worker was not sent SIGTERM before SIGKILL"
        );
    }
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_timeout_sigterm_then_sigkill_of_the_whole_tree() {
    kill_tree_case(Runtime::Python);
}

#[test]
fn node_timeout_sigkill_of_the_whole_tree() {
    kill_tree_case(Runtime::Node);
}

// ---- cases: memory --------------------------------------------------------

fn oom_case(runtime: Runtime, limit_mb: u64) {
    let case = format!("{}/oom", runtime.dir());
    needs_isolation!(case);
    let lab = Lab::start(runtime);
    let out = lab.case(&case, &json!({"mode": "alloc", "mb": 512}));
    out.expect(&case, 502, "out_of_memory");
    let msg = out.message();
    assert!(
        msg.contains(&format!("{limit_mb} MB")) && msg.contains("limits.memory_mb"),
        "{case}: the message should name the {limit_mb} MB limit and limits.memory_mb: {msg}"
    );
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_oom_is_502_out_of_memory() {
    oom_case(Runtime::Python, 64);
}

#[test]
fn node_oom_is_502_out_of_memory() {
    oom_case(Runtime::Node, 128);
}

// ---- cases: processes and threads -----------------------------------------

/// A bomb under `max_processes` fails the call by itself (500) or runs
/// into the timeout (504); the daemon and the neighbour keep serving, and
/// whatever the bomb started is gone once things settle.
fn bomb_case(runtime: Runtime, mode: &str) {
    let case = format!("{}/{mode}", runtime.dir());
    needs_isolation!(case);
    let lab = Lab::start(runtime);
    let out = lab.case(&case, &json!({"mode": mode, "max": 256, "linger": 30}));
    let got = (out.reply.status, out.code());
    assert!(
        got == (500, "function_error".to_owned()) || got == (504, "timeout".to_owned()),
        "{case}: expected 500 function_error or 504 timeout, got {got:?}: {}",
        brief(&out.reply)
    );
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_forkbomb_is_contained() {
    bomb_case(Runtime::Python, "forkbomb");
}

#[test]
fn python_threadbomb_is_contained() {
    bomb_case(Runtime::Python, "threadbomb");
}

#[test]
fn node_forkbomb_is_contained() {
    bomb_case(Runtime::Node, "forkbomb");
}

// ---- cases: crashes and the protocol --------------------------------------

fn died_case(runtime: Runtime, mode: &str, how: &str) {
    let case = format!("{}/{mode}", runtime.dir());
    let lab = Lab::start(runtime);
    let out = lab.case(&case, &json!({"mode": mode}));
    out.expect(&case, 502, "worker_died");
    let msg = message_of(&out.reply);
    assert!(
        msg.contains(&format!("{}@1", lab.chaos)) && msg.contains(how),
        "{case}: the message should name the function and say {how:?}: {msg}"
    );
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_segfault_is_502_worker_died() {
    died_case(Runtime::Python, "segv", "SIGSEGV");
}

#[test]
fn node_abort_is_502_worker_died() {
    died_case(Runtime::Node, "segv", "SIGABRT");
}

#[test]
fn python_exit_mid_call_is_502_worker_died() {
    died_case(Runtime::Python, "exit", "status 3");
}

#[test]
fn node_exit_mid_call_is_502_worker_died() {
    died_case(Runtime::Node, "exit", "status 3");
}

fn garbage_case(runtime: Runtime) {
    let case = format!("{}/garbage", runtime.dir());
    let lab = Lab::start(runtime);
    let out = lab.case(&case, &json!({"mode": "garbage"}));
    out.expect(&case, 502, "protocol_error");
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_garbage_on_the_protocol_pipe_is_502_protocol_error() {
    garbage_case(Runtime::Python);
}

#[test]
fn node_garbage_on_the_protocol_pipe_is_502_protocol_error() {
    garbage_case(Runtime::Node);
}

fn closefds_case(runtime: Runtime) {
    let case = format!("{}/closefds", runtime.dir());
    let lab = Lab::start(runtime);
    let out = lab.case(&case, &json!({"mode": "closefds"}));
    let got = (out.reply.status, out.code());
    assert!(
        got == (502, "worker_died".to_owned()) || got == (502, "protocol_error".to_owned()),
        "{case}: expected 502 worker_died or protocol_error, got {got:?}: {}",
        brief(&out.reply)
    );
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_closing_the_protocol_fds_is_502() {
    closefds_case(Runtime::Python);
}

#[test]
fn node_closing_the_protocol_fds_is_502() {
    closefds_case(Runtime::Node);
}

// ---- cases: output and sizes ----------------------------------------------

/// 100 MB on stdout during a call: the call still answers with its value
/// and the daemon's memory stays bounded.
fn stdout_case(runtime: Runtime) {
    let case = format!("{}/stdout100mb", runtime.dir());
    // Draining 100 MB of log lines takes the daemon seconds in a debug
    // build: this case is about memory, not time.
    let patient = chaos_copy(
        runtime,
        |m| edit(&m, "timeout_ms = 2000", "timeout_ms = 30000"),
        "patient",
    );
    let lab = Lab::start_with(runtime, Some(&patient));
    let pid = lab.pid();
    let peak = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(status_kb(pid, "VmRSS:") as usize, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = lab.case(&case, &json!({"mode": "stdout100mb", "mb": 100}));
    stop.store(true, Ordering::SeqCst);
    sampler.join().expect("sampler");
    assert_eq!(out.reply.status, 200, "{case}: {}", brief(&out.reply));
    assert_eq!(out.reply.json()["printed_mb"], 100, "{case}");
    let hwm_mb = status_kb(pid, "VmHWM:") / 1024;
    let peak_mb = peak.load(Ordering::SeqCst) / 1024;
    assert!(
        hwm_mb < 200 && peak_mb < 200,
        "{case}: the daemon's RSS reached {peak_mb} MB (high-water mark {hwm_mb} MB)"
    );
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_100mb_of_stdout_keeps_the_daemon_bounded() {
    stdout_case(Runtime::Python);
}

#[test]
fn node_100mb_of_stdout_keeps_the_daemon_bounded() {
    stdout_case(Runtime::Node);
}

/// A body over `max_request_kb` (64) is 413 naming the limit.
fn request_case(runtime: Runtime) {
    let case = format!("{}/request_too_large", runtime.dir());
    let lab = Lab::start(runtime);
    let body = json!({"mode": "ok", "pad": "x".repeat(100 * 1024)});
    let out = lab.case(&case, &body);
    out.expect(&case, 413, "body_too_large");
    let msg = out.message();
    assert!(
        msg.contains("64") && msg.contains("max_request_kb"),
        "{case}: the error should name the 64 KB limit and limits.max_request_kb: {msg}"
    );
    // Just under the limit is fine.
    let fits = json!({"mode": "ok", "pad": "x".repeat(60 * 1024)});
    let reply = lab.call(&fits);
    assert_eq!(reply.status, 200, "{case}: 60 KB: {}", brief(&reply));
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_request_over_max_request_kb_is_413() {
    request_case(Runtime::Python);
}

#[test]
fn node_request_over_max_request_kb_is_413() {
    request_case(Runtime::Node);
}

/// An answer over `max_response_kb` (1024) is 502 response_too_large.
fn response_case(runtime: Runtime) {
    let case = format!("{}/response_too_large", runtime.dir());
    let lab = Lab::start(runtime);
    let out = lab.case(&case, &json!({"mode": "big_response", "kb": 2048}));
    out.expect(&case, 502, "response_too_large");
    let reply = lab.call(&json!({"mode": "big_response", "kb": 512}));
    assert_eq!(reply.status, 200, "{case}: 512 KB answer: {}", reply.status);
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_response_over_max_response_kb_is_502() {
    response_case(Runtime::Python);
}

#[test]
fn node_response_over_max_response_kb_is_502() {
    response_case(Runtime::Node);
}

// ---- cases: confinement ---------------------------------------------------

/// The credentials of `pid` as the kernel has them: real, effective, saved
/// and filesystem uid and gid all one user other than root, no
/// supplementary group root, no effective capability.
fn assert_unprivileged(case: &str, pid: u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for key in ["Uid:", "Gid:"] {
        let ids = field(key);
        assert!(
            ids.len() == 4 && ids.iter().all(|id| id != "0" && *id == ids[0]),
            "{case}: worker {pid} has {key} {ids:?} (real, effective, saved, fs)"
        );
    }
    let groups = field("Groups:");
    assert!(
        !groups.iter().any(|g| g == "0"),
        "{case}: worker {pid} keeps supplementary group 0: {groups:?}"
    );
    let caps = field("CapEff:");
    assert!(
        caps.first()
            .is_some_and(|c| c.trim_start_matches('0').is_empty()),
        "{case}: worker {pid} has effective capabilities {caps:?}"
    );
}

/// The worker runs as a user of its own, in a cgroup of its own under the
/// daemon's with the manifest's limits, with the default rlimits and
/// network; whether it was pre-started as root or started for its function.
fn confinement_case(start: Start) {
    let case = format!("python/confinement/{start:?}").to_lowercase();
    needs_isolation!(case);
    let lab = Lab::open(Runtime::Python, None, start);
    let out = lab.case(&case, &json!({"mode": "probe"}));
    assert_eq!(out.reply.status, 200, "{case}: {}", brief(&out.reply));
    let id = &out.reply.json()["identity"];
    let worker = id["pid"].as_u64().expect("pid") as u32;
    assert_unprivileged(&case, worker);
    let cgroup = id["cgroup"].as_str().unwrap_or("");
    let mine = format!("hearth-{}/app-faults/w-", lab.pid());
    assert!(
        cgroup.contains(&mine),
        "{case}: the worker's cgroups do not contain {mine}: {cgroup}"
    );
    assert_eq!(id["nofile"], 256, "{case}: RLIMIT_NOFILE");
    assert_eq!(id["fsize"], 64 * 1024 * 1024, "{case}: RLIMIT_FSIZE");
    if let Some(dir) = cgroup_dir(worker, "memory") {
        let limit = std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
            .or_else(|_| std::fs::read_to_string(dir.join("memory.max")))
            .unwrap_or_default();
        assert_eq!(
            limit.trim(),
            (64u64 << 20).to_string(),
            "{case}: memory limit of {}",
            dir.display()
        );
    }
    if let Some(dir) = cgroup_dir(worker, "pids") {
        let max = std::fs::read_to_string(dir.join("pids.max")).unwrap_or_default();
        assert_eq!(max.trim(), "16", "{case}: pids.max of {}", dir.display());
    }
    let (host, port) = lab.d.addr.rsplit_once(':').expect("host:port");
    let port: u16 = port.parse().expect("port");
    let reached = lab.call(&json!({"mode": "connect", "host": host, "port": port}));
    assert_eq!(
        reached.json(),
        "connected",
        "{case}: with network left at its default the worker reaches the daemon"
    );
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_worker_from_a_pre_started_interpreter_is_confined() {
    confinement_case(Start::Generic);
}

#[test]
fn python_worker_started_for_its_function_is_confined() {
    confinement_case(Start::Fresh);
}

/// Paths the worker must not read, list or write, and a /tmp that is its
/// own; the handler catches each error and says what happened.
fn probe_case(runtime: Runtime) {
    let case = format!("{}/probe", runtime.dir());
    needs_isolation!(case);
    let lab = Lab::start(runtime);
    let data = lab.d.data.clone();
    let other = std::fs::read_dir(data.join("code/hello"))
        .expect("hello's code directory")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a version directory of hello");
    let own = std::fs::read_dir(data.join(format!("code/{}", lab.chaos)))
        .expect("the chaos function's code directory")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a version directory of chaos");
    let s = |p: PathBuf| p.to_string_lossy().into_owned();
    let tmp_name = format!("hearth-fault-{}-{}", std::process::id(), lab.pid());
    let event = json!({
        "mode": "probe",
        "read": ["/etc/shadow", s(data.join("hearth.db")), s(other.join("main.py"))],
        "list": [s(data.clone()), s(other.clone())],
        "write": [
            s(own.join("written-by-chaos")),
            s(data.join("written-by-chaos")),
            "/etc/written-by-chaos",
        ],
        "tmp_name": tmp_name,
    });
    let out = lab.case(&case, &event);
    assert_eq!(out.reply.status, 200, "{case}: {}", brief(&out.reply));
    let got = out.reply.json();
    assert_unprivileged(&case, got["identity"]["pid"].as_u64().expect("pid") as u32);
    for kind in ["read", "list", "write"] {
        let probes = got[kind].as_object().cloned().unwrap_or_default();
        assert_eq!(
            probes.len(),
            event[kind].as_array().map(Vec::len).unwrap_or(0),
            "{case}: {got}"
        );
        for (path, what) in probes {
            assert_eq!(what, "denied", "{case}: {kind} {path}");
        }
    }
    // Files written in TMPDIR and in /tmp both land in the worker's own
    // directory under <data>/tmp, not in the host's /tmp.
    let labels = ["tmpdir", "slash_tmp"];
    assert_eq!(
        got["tmp_write"],
        json!({"tmpdir": "private", "slash_tmp": "private"}),
        "{case}: writing in the temp dir: {got}"
    );
    for label in labels {
        let host = Path::new("/tmp").join(format!("{tmp_name}-{label}"));
        assert!(
            !host.exists(),
            "{case}: the worker's {label} is the host's /tmp ({} exists; TMPDIR was {})",
            host.display(),
            got["identity"]["tmpdir"]
        );
    }
    let tmp_root = data.join("tmp");
    let homes: Vec<PathBuf> = std::fs::read_dir(&tmp_root)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let home = homes.iter().find(|dir| {
        labels
            .iter()
            .all(|label| dir.join(format!("{tmp_name}-{label}")).is_file())
    });
    let home = home.unwrap_or_else(|| {
        panic!(
            "{case}: no directory of {} holds both files the worker wrote (TMPDIR was {}): {homes:?}",
            tmp_root.display(),
            got["identity"]["tmpdir"]
        )
    });
    let home = home.clone();
    lab.settle(&case);
    lab.finish(&case);
    assert!(
        !home.exists(),
        "{case}: the worker's temporary directory {} outlived it",
        home.display()
    );
}

#[test]
fn python_probes_are_denied_and_tmp_is_private() {
    probe_case(Runtime::Python);
}

#[test]
fn node_probes_are_denied_and_tmp_is_private() {
    probe_case(Runtime::Node);
}

/// `network = false`, `cpu_percent` and `max_file_size_mb` on a copy of
/// the Python chaos function.
#[test]
fn python_network_cpu_and_file_size_limits() {
    let case = "python/network_cpu_fsize";
    needs_isolation!(case);
    let confined = chaos_copy(
        Runtime::Python,
        |m| {
            let m = edit(&m, "name = \"chaos\"", "name = \"chaos-confined\"");
            edit(
                &m,
                "[limits]\n",
                "[limits]\nnetwork = false\ncpu_percent = 50\nmax_file_size_mb = 1\n",
            )
        },
        "confined",
    );
    let lab = Lab::start_with(Runtime::Python, Some(&confined));
    let (host, port) = lab.d.addr.rsplit_once(':').expect("host:port");
    let port: u16 = port.parse().expect("port");
    let out = lab.case(
        case,
        &json!({"mode": "connect", "host": host, "port": port}),
    );
    assert_eq!(out.reply.status, 200, "{case}: {}", brief(&out.reply));
    assert_ne!(
        out.reply.json(),
        "connected",
        "{case}: a network = false worker reached the daemon at {}",
        lab.d.addr
    );
    let burn = lab.call(&json!({"mode": "burn", "seconds": 1}));
    assert_eq!(burn.status, 200, "{case}: {}", brief(&burn));
    let cpu = burn.json()["cpu"].as_f64().unwrap_or(0.0);
    assert!(
        cpu < 0.7,
        "{case}: a cpu_percent = 50 worker used {cpu:.2} s of CPU in 1 s"
    );
    let big = lab.call(&json!({"mode": "bigfile", "mb": 2}));
    assert_eq!(big.status, 200, "{case}: {}", brief(&big));
    assert_eq!(
        big.json()["errno"],
        27,
        "{case}: writing 2 MB with max_file_size_mb = 1 should fail with EFBIG: {}",
        brief(&big)
    );
    lab.settle(case);
    lab.finish(case);
}

// ---- cases: what a worker leaves behind -----------------------------------

/// A child left running after the call goes when its worker goes: here when
/// a new version is published and the old one's workers are retired after
/// the drain grace (1 s).
fn child_case(runtime: Runtime) {
    let case = format!("{}/child", runtime.dir());
    needs_isolation!(case);
    let lab = Lab::start(runtime);
    let out = lab.case(&case, &json!({"mode": "child", "seconds": 1000}));
    assert_eq!(out.reply.status, 200, "{case}: {}", brief(&out.reply));
    let child = out.reply.json()["child"].as_u64().expect("child pid") as u32;
    let worker = out.reply.json()["pid"].as_u64().expect("worker pid") as u32;
    assert!(
        alive(child),
        "{case}: the child should run while its worker lives"
    );
    let v2 = chaos_copy(runtime, |m| m, "version 2");
    lab.d.ok(&["deploy", v2.path()]);
    assert!(
        eventually(15, || !alive(worker)),
        "{case}: version 1's worker {worker} was not retired"
    );
    assert!(
        eventually(5, || !alive(child)),
        "{case}: the child {} outlived its worker",
        describe(child)
    );
    lab.settle(&case);
    lab.finish(&case);
}

#[test]
fn python_child_left_running_ends_with_its_worker() {
    child_case(Runtime::Python);
}

#[test]
fn node_child_left_running_ends_with_its_worker() {
    child_case(Runtime::Node);
}

/// The same, with the daemon stopping while the worker and its child live.
#[test]
fn python_child_left_running_ends_when_the_daemon_stops() {
    let case = "python/child_at_stop";
    needs_isolation!(case);
    let lab = Lab::start(Runtime::Python);
    let out = lab.case(case, &json!({"mode": "child", "seconds": 1000}));
    assert_eq!(out.reply.status, 200, "{case}: {}", brief(&out.reply));
    let child = out.reply.json()["child"].as_u64().expect("child pid") as u32;
    assert!(
        alive(child),
        "{case}: the child should run while its worker lives"
    );
    lab.finish(case);
    assert!(
        eventually(5, || !alive(child)),
        "{case}: the child {} outlived the daemon",
        describe(child)
    );
}

// ---- cases: crash loop ----------------------------------------------------

/// A function whose worker dies on every call: 502 worker_died at first,
/// then 503 crash_loop with Retry-After, visible in the API and `hearth
/// list`, without the daemon burning CPU on restarts; it serves again once
/// the back-off is over.
#[test]
fn python_crash_loop_backs_off() {
    let case = "python/crash_loop";
    let lab = Lab::start(Runtime::Python);
    let pid = lab.pid();
    let neighbour = Neighbour::start(&lab.d.addr);
    neighbour.wait_for_calls(1);
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let mut answers = Vec::new();
    let mut last = None;
    while answers.len() < 20 || started.elapsed() < Duration::from_secs(2) {
        let reply = lab.call(&json!({"mode": "exit", "status": 1}));
        answers.push((
            reply.status,
            error_code(&reply),
            reply.header("retry-after").map(str::to_owned),
        ));
        last = Some(reply);
        if answers.len() >= 20 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let wall = started.elapsed();
    eprintln!(
        "{case}: {} calls in {} ms; the daemon used {} ms of CPU",
        answers.len(),
        wall.as_millis(),
        cpu.as_millis()
    );
    let answered = Instant::now();
    let state = lab
        .d
        .get(&format!("/api/v1/functions/{}", lab.chaos))
        .json();
    let list = lab.d.ok(&["list"]);
    let recovered = lab.recover(answered);
    neighbour.wait_for_calls(neighbour.calls() + 1);
    let failures = neighbour.finish();
    let last = last.expect("at least one call");
    println!(
        "FAULT | {case} | {} | {}",
        status_line(&last),
        match recovered {
            Some(t) => format!("recovered in {} ms", t.as_millis()),
            None => "not recovered".into(),
        }
    );
    // Runs of equal answers, as "N × answer".
    let mut summary: Vec<(usize, String)> = Vec::new();
    for (s, c, r) in &answers {
        let text = format!(
            "{s} {c}{}",
            r.as_deref()
                .map(|r| format!(" retry-after {r}"))
                .unwrap_or_default()
        );
        match summary.last_mut() {
            Some((n, last)) if *last == text => *n += 1,
            _ => summary.push((1, text)),
        }
    }
    let summary: Vec<String> = summary
        .into_iter()
        .map(|(n, text)| format!("{n} × {text}"))
        .collect();
    assert_eq!(
        (answers[0].0, answers[0].1.as_str()),
        (502, "worker_died"),
        "{case}: the first crash: {summary:?}"
    );
    for (status, code, retry) in &answers {
        assert!(
            (*status, code.as_str()) == (502, "worker_died")
                || ((*status, code.as_str()) == (503, "crash_loop") && retry.is_some()),
            "{case}: every answer is 502 worker_died or 503 crash_loop with Retry-After: {summary:?}"
        );
    }
    let first_503 = answers
        .iter()
        .position(|(s, c, _)| (*s, c.as_str()) == (503, "crash_loop"));
    assert!(
        first_503.is_some_and(|i| i < 20),
        "{case}: no 503 crash_loop within 20 calls: {summary:?}"
    );
    assert!(
        cpu < Duration::from_secs(1),
        "{case}: the daemon used {} ms of CPU in {} ms of crash-looping calls",
        cpu.as_millis(),
        wall.as_millis()
    );
    let state_text = state["state"].to_string();
    assert!(
        state_text.contains("crash")
            || state["backoff"].is_object()
            || state["state"]["backoff"].is_object(),
        "{case}: the function's state does not show the crash loop: {state}"
    );
    let row = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(lab.chaos.as_str()))
        .unwrap_or("");
    assert!(
        row.contains("crash"),
        "{case}: `hearth list` does not show the crash loop:\n{list}"
    );
    assert!(
        failures.is_empty(),
        "{case}: the healthy function failed during the crash loop: {failures:?}"
    );
    assert!(
        recovered.is_some(),
        "{case}: the function never served a normal call again"
    );
    lab.settle(case);
    lab.finish(case);
}
