//! The global worker cap: more functions than workers are served by ending
//! the least recently used function's idle workers (a function's spare
//! workers before another's only one), never more workers than the cap,
//! and no call fails for it. A pool grows when its calls wait longer than
//! a start is worth, not at every call that finds its workers busy.

mod common;

use common::{Daemon, FnDir};

#[test]
fn more_functions_than_the_cap_are_all_served_within_it() {
    let d = Daemon::start_with(&["--max-workers-total", "3", "--generic-workers", "0"], &[]);
    let dirs: Vec<FnDir> = (0..6)
        .map(|i| {
            FnDir::python(
                &format!("cap-{i}"),
                &format!("def handler(event):\n    return {i}\n"),
            )
        })
        .collect();
    for dir in &dirs {
        d.ok(&["deploy", dir.path()]);
    }
    let within_cap = |d: &Daemon| {
        let workers = d.get("/api/v1/workers").json();
        let counted = workers["budget"]["workers"].as_u64().unwrap_or(99);
        let idle: usize = workers["pools"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|p| p["pids"].as_array().map_or(0, Vec::len))
                    .sum()
            })
            .unwrap_or(99);
        assert!(counted <= 3 && idle <= 3, "over the cap of 3: {workers}");
    };
    within_cap(&d);
    for round in 0..3 {
        for i in 0..6 {
            let reply = d.post(&format!("/fn/cap-{i}"), "{}");
            assert_eq!(
                reply.status,
                200,
                "round {round}, cap-{i}: {}",
                reply.text()
            );
            assert_eq!(reply.json(), i);
            within_cap(&d);
        }
    }
}

/// The function's workers right now.
fn workers_of(d: &Daemon, function: &str) -> usize {
    let workers = d.get("/api/v1/workers").json();
    workers["pools"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["function"] == function))
        .and_then(|p| p["pids"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// Two calls at once to a function with one worker; returns how each
/// started (x-hearth-start).
fn two_at_once(d: &Daemon, path: &str) -> Vec<String> {
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let r = d.post(path, "{}");
                    assert_eq!(r.status, 200, "{}", r.text());
                    r.header("x-hearth-start").unwrap_or("").to_owned()
                })
            })
            .collect();
        calls
            .into_iter()
            .map(|c| c.join().expect("call thread"))
            .collect()
    })
}

/// A Python function of up to `max_workers` workers that sleeps `sleep`
/// (a Python expression) and answers `answer`.
fn sleeper(name: &str, max_workers: u32, sleep: &str, answer: &str) -> FnDir {
    FnDir::new(
        &format!("name = \"{name}\"\nruntime = \"python\"\nentry = \"main.handler\"\n\n[limits]\nmax_workers = {max_workers}\n"),
        &[(
            "main.py",
            &format!("import time\n\ndef handler(event):\n    time.sleep({sleep})\n    return {answer}\n"),
        )],
    )
}

#[test]
fn a_call_that_finds_its_worker_busy_on_a_short_call_waits_for_it_instead_of_starting_another() {
    let d = Daemon::start();
    let f = sleeper("short", 4, "0.05", "1");
    d.ok(&["deploy", f.path()]);
    for _ in 0..3 {
        assert_eq!(d.post("/fn/short", "{}").status, 200);
    }
    // Calls take 50 ms: the second waits for the first's worker rather
    // than pay a start (the patience is four recent calls' time).
    let starts = two_at_once(&d, "/fn/short");
    assert_eq!(starts, ["warm", "warm"], "both calls took the one worker");
    assert_eq!(workers_of(&d, "short"), 1);
}

#[test]
fn a_call_that_finds_its_worker_busy_on_a_long_call_starts_another() {
    let d = Daemon::start();
    let f = sleeper("long", 4, "event.get('s', 1.5)", "1");
    d.ok(&["deploy", f.path()]);
    assert_eq!(d.post("/fn/long", r#"{"s": 1.5}"#).status, 200);
    // The first call holds the worker for 1.5 s: after its patience
    // (at most 200 ms) the second starts a worker of its own and runs on it.
    let mut starts = two_at_once(&d, "/fn/long");
    starts.sort();
    assert_ne!(starts[0], "warm", "one call started a worker: {starts:?}");
    assert_eq!(starts[1], "warm", "{starts:?}");
    assert_eq!(workers_of(&d, "long"), 2);
}

#[test]
fn at_the_cap_a_functions_spare_worker_goes_before_another_functions_only_one() {
    let d = Daemon::start_with(&["--max-workers-total", "3", "--generic-workers", "0"], &[]);
    let grow = sleeper("grown", 2, "event.get('s', 0)", "'grown'");
    let lone = FnDir::python("lone", "def handler(event):\n    return 'lone'\n");
    let cold = FnDir::python("cold", "def handler(event):\n    return 'cold'\n");
    d.ok(&["deploy", lone.path()]);
    d.ok(&["deploy", grow.path()]);
    // `grown` gets a second worker: two long calls at once.
    assert_eq!(d.post("/fn/grown", r#"{"s": 1}"#).status, 200);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| assert_eq!(d.post("/fn/grown", r#"{"s": 1}"#).status, 200));
        }
    });
    assert_eq!(workers_of(&d, "grown"), 2);
    assert_eq!(workers_of(&d, "lone"), 1);
    // `lone` is the least recently used, but its worker is its only one:
    // the new function's first worker (its deploy proves it loads) ends
    // `grown`'s spare instead.
    d.ok(&["deploy", cold.path()]);
    assert_eq!(d.post("/fn/cold", "{}").json(), "cold");
    assert_eq!(workers_of(&d, "lone"), 1, "lone kept its only worker");
    assert_eq!(workers_of(&d, "grown"), 1);
}
