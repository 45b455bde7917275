//! Admission: when every worker of a function is busy, calls wait in a
//! bounded queue; a call that finds the queue full gets 429, one that cannot
//! finish before its deadline gets 503, both at once and with Retry-After.

mod common;

use std::time::Instant;

use common::{Daemon, FnDir};

const SLEEPY: &str = "import time\n\ndef handler(event):\n    time.sleep(event.get('sleep', 0))\n    return 'done'\n";

fn call_later(
    addr: &str,
    delay_ms: u64,
    body: &'static str,
) -> std::thread::JoinHandle<(common::Reply, Instant)> {
    let addr = addr.to_owned();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let reply = common::http(&addr, "POST", "/fn/sleepy", body.as_bytes());
        (reply, Instant::now())
    })
}

#[test]
fn a_full_queue_is_429_at_once_with_retry_after() {
    let d = Daemon::start();
    let f = FnDir::python_with(
        "sleepy",
        SLEEPY,
        "[limits]\nmax_workers = 1\nmax_queue = 1\ntimeout_ms = 20000",
    );
    d.ok(&["deploy", f.path()]);
    assert_eq!(d.post("/fn/sleepy", "{}").status, 200);

    let running = call_later(&d.addr, 0, r#"{"sleep":1.5}"#);
    let queued = call_later(&d.addr, 300, "{}");
    let refused: Vec<_> = (0..2).map(|_| call_later(&d.addr, 600, "{}")).collect();
    let (first, first_end) = running.join().expect("thread");
    assert_eq!(first.status, 200);
    assert_eq!(
        queued.join().expect("thread").0.status,
        200,
        "one call may wait"
    );
    for r in refused {
        let (reply, end) = r.join().expect("thread");
        assert_eq!(
            (reply.status, reply.code()),
            (429, "queue_full".to_owned()),
            "{}",
            reply.text()
        );
        assert!(reply
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1));
        assert!(end < first_end, "a 429 must not wait for a worker");
        let msg = reply.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            msg.contains("sleepy@1") && msg.contains("max_queue"),
            "{msg}"
        );
    }
}

#[test]
fn a_call_that_cannot_finish_in_time_is_503_at_once() {
    let d = Daemon::start();
    let f = FnDir::python_with(
        "sleepy",
        SLEEPY,
        "[limits]\nmax_workers = 1\ntimeout_ms = 1500",
    );
    d.ok(&["deploy", f.path()]);
    // Teach the pool how long calls take.
    assert_eq!(d.post("/fn/sleepy", r#"{"sleep":1}"#).status, 200);
    let running = call_later(&d.addr, 0, r#"{"sleep":1}"#);
    let late = call_later(&d.addr, 200, r#"{"sleep":1}"#);
    let (first, first_end) = running.join().expect("thread");
    assert_eq!(first.status, 200);
    let (reply, end) = late.join().expect("thread");
    assert_eq!(
        (reply.status, reply.code()),
        (503, "overloaded".to_owned()),
        "{}",
        reply.text()
    );
    assert!(reply.header("retry-after").is_some());
    assert!(
        end < first_end,
        "a 503 must be answered at once, not after waiting"
    );
    // The function itself is fine: the next call runs.
    assert_eq!(d.post("/fn/sleepy", "{}").status, 200);
    let workers = d.get("/api/v1/workers").json();
    let pool = workers["pools"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["function"] == "sleepy").cloned())
        .expect("pool");
    assert_eq!(pool["waiting"], 0);
}
