//! Worker lifecycle per function: minimum warm workers, idle workers
//! reclaimed, workers recycled after a number of calls or an age, with the
//! replacement ready before the old worker leaves.

mod common;

use std::collections::HashSet;

use common::{alive, eventually, Daemon, FnDir};

const PID: &str = "import os, time\n\ndef handler(event):\n    time.sleep(event.get('sleep', 0))\n    return os.getpid()\n";

fn pool(d: &Daemon, name: &str) -> serde_json::Value {
    let workers = d.get("/api/v1/workers").json();
    workers["pools"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["function"] == name).cloned())
        .unwrap_or(serde_json::Value::Null)
}

fn idle_pids(d: &Daemon, name: &str) -> Vec<u64> {
    pool(d, name)["pids"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_u64()).collect())
        .unwrap_or_default()
}

#[test]
fn workers_are_recycled_after_max_requests_without_failing_a_call() {
    let d = Daemon::start();
    let f = FnDir::python_with(
        "recycle",
        PID,
        "[limits]\nmax_requests = 5\nmax_workers = 2",
    );
    d.ok(&["deploy", f.path()]);
    let mut pids = HashSet::new();
    for _ in 0..300 {
        let reply = d.post("/fn/recycle", "{}");
        assert_eq!(reply.status, 200, "{}", reply.text());
        pids.insert(reply.json().as_u64().expect("pid"));
        if pids.len() >= 3 {
            break;
        }
    }
    assert!(pids.len() >= 3, "workers were not recycled: {pids:?}");
    assert!(pool(&d, "recycle")["recycled"].as_u64().unwrap_or(0) >= 2);
    // Recycled workers are gone (all but the current ones).
    assert!(eventually(10, || pids
        .iter()
        .filter(|p| alive(**p as u32))
        .count()
        <= 2));
}

#[test]
fn idle_workers_are_reclaimed_down_to_the_minimum() {
    let d = Daemon::start();
    let f = FnDir::python_with(
        "idle",
        PID,
        "[limits]\nmax_workers = 3\nmin_workers = 1\nidle_timeout_ms = 1000",
    );
    d.ok(&["deploy", f.path()]);
    let addr = d.addr.clone();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || common::http(&addr, "POST", "/fn/idle", br#"{"sleep":0.5}"#))
        })
        .collect();
    let pids: Vec<u64> = calls
        .into_iter()
        .map(|c| c.join().expect("call").json().as_u64().expect("pid"))
        .collect();
    assert_eq!(
        pids.iter().collect::<HashSet<_>>().len(),
        3,
        "three calls at once need three workers"
    );
    assert!(
        eventually(15, || idle_pids(&d, "idle").len() == 1),
        "idle workers were not reclaimed: {}",
        pool(&d, "idle")
    );
    assert!(pool(&d, "idle")["reclaimed"].as_u64().unwrap_or(0) >= 2);
    assert_eq!(pids.iter().filter(|p| alive(**p as u32)).count(), 1);
    assert_eq!(d.post("/fn/idle", "{}").status, 200);
}

#[test]
fn min_workers_are_started_for_the_live_version() {
    let d = Daemon::start();
    let f = FnDir::python_with("warm", PID, "[limits]\nmax_workers = 4\nmin_workers = 3");
    d.ok(&["deploy", f.path()]);
    assert!(
        eventually(15, || idle_pids(&d, "warm").len() == 3),
        "min_workers not started: {}",
        pool(&d, "warm")
    );
}

#[test]
fn an_idle_worker_past_its_max_age_is_replaced() {
    let d = Daemon::start();
    let f = FnDir::python_with("aging", PID, "[limits]\nmax_age_ms = 1500");
    d.ok(&["deploy", f.path()]);
    let first = d.post("/fn/aging", "{}").json().as_u64().expect("pid");
    assert!(
        eventually(15, || {
            let now = idle_pids(&d, "aging");
            !now.is_empty() && !now.contains(&first)
        }),
        "the old worker was not replaced: {}",
        pool(&d, "aging")
    );
    assert!(eventually(5, || !alive(first as u32)));
    assert_ne!(d.post("/fn/aging", "{}").json().as_u64(), Some(first));
}
