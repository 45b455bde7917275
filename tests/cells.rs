//! Cells (`server.cells`): one async thread per CPU, each serving its
//! connections with workers pinned to its CPU. What a user sees must not
//! change: `max_workers` calls still run at once however the connections
//! fall into cells; workers of a pool spread over the CPUs; `cells = 0`
//! floats everything; a bad value is refused with its key.

mod common;

use std::net::TcpStream;
use std::process::Command;

use common::{read_reply, start_request, Daemon, FnDir, BIN};

/// Where the function ran: its pid, the CPUs it may use and when it ran.
const WHERE: &str = r#"
import os, time

def handler(event, context):
    start = time.time()
    time.sleep(event.get("sleep", 0))
    return {
        "pid": os.getpid(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "start": start,
        "end": time.time(),
    }
"#;

/// The CPUs this test may run on (as the daemon it starts will).
fn allowed_cpus() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim()
        .to_owned();
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|range| match range.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
                b.saturating_sub(a) + 1
            }
            None => 1,
        })
        .sum()
}

fn call_body(sleep: f64) -> String {
    format!("{{\"sleep\": {sleep}}}")
}

#[test]
fn calls_of_one_cell_still_get_every_worker_and_workers_spread_over_the_cpus() {
    let d = Daemon::start_with(&["--cells", "2"], &[]);
    let f = FnDir::python_with(
        "where",
        WHERE,
        "[limits]\nmax_workers = 2\ntimeout_ms = 10000",
    );
    d.ok(&["deploy", f.path()]);
    let (a, c) = two_calls_in_one_cell(&d);
    let t = |v: &serde_json::Value, k: &str| v[k].as_f64().expect("a time");
    // Both ran at once: the second call took the other cell's free share
    // rather than waiting for its own cell's busy worker.
    assert!(
        t(&c, "start") < t(&a, "end") && t(&a, "start") < t(&c, "end"),
        "the calls of one cell ran one after the other: {a} then {c}"
    );
    assert_ne!(a["pid"], c["pid"], "two calls at once need two workers");
    if allowed_cpus() < 2 {
        eprintln!("skipping the pinning check: this machine lets the test use one CPU");
        return;
    }
    // Calls from both cells move a worker to a cell short of its share;
    // then each worker is pinned to the CPU of its cell, and they are
    // not the same.
    for _ in 0..4 {
        let r = d.post("/fn/where", &call_body(0.0));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let (a, c) = two_calls_in_one_cell(&d);
    let cpus = |v: &serde_json::Value| v["cpus"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        cpus(&a).len(),
        1,
        "a worker in a cell runs on its cell's CPU: {a}"
    );
    assert_eq!(
        cpus(&c).len(),
        1,
        "a worker in a cell runs on its cell's CPU: {c}"
    );
    assert_ne!(
        cpus(&a),
        cpus(&c),
        "the pool's two workers are in different cells: {a} {c}"
    );
}

/// Two calls at once on connections of one cell. Connections go to the
/// cells in turn: the first and the third of three connections opened one
/// after the other share a cell, whose share of max_workers = 2 is one
/// worker.
fn two_calls_in_one_cell(d: &Daemon) -> (serde_json::Value, serde_json::Value) {
    let body = call_body(0.8);
    let start = || {
        start_request(
            &d.addr,
            "POST",
            "/fn/where",
            body.len(),
            &[],
            body.as_bytes(),
        )
    };
    let a = start();
    let between = TcpStream::connect(&d.addr).expect("connect");
    let c = start();
    let (a, c) = (read_reply(a), read_reply(c));
    drop(between);
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(c.status, 200, "{}", c.text());
    (a.json(), c.json())
}

#[test]
fn without_cells_workers_float_over_every_cpu() {
    let d = Daemon::start_with(&["--cells", "0"], &[]);
    let f = FnDir::python("where", WHERE);
    d.ok(&["deploy", f.path()]);
    let r = d.post("/fn/where", &call_body(0.0));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["cpus"].as_array().map(Vec::len),
        Some(allowed_cpus()),
        "with server.cells = 0 a worker may run on every CPU: {v}"
    );
    assert!(d.log().contains("cells: none"), "{}", d.log());
}

#[test]
fn too_many_cells_are_refused_naming_the_key() {
    let out = Command::new(BIN)
        .args(["serve", "--check-config", "--cells", "5000"])
        .env("HEARTH_LOG", "warn")
        .output()
        .expect("run hearth serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "5000 cells were accepted: {err}");
    assert!(err.contains("server.cells"), "{err}");
    assert!(err.contains("0 for none"), "{err}");
}
