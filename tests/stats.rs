//! Application statistics (`GET /api/v1/apps/{app}/stats`,
//! `GET /api/v1/functions/{name}/stats`, `hearth stats`): what they show
//! is what the calls made came to, by version, across a restart.

mod common;

use std::io::Write;
use std::net::TcpListener;

use common::{http_anon, Daemon, FnDir};
use serde_json::Value;

/// Raises when the event asks it to.
const FLAKY: &str = "def handler(event, context):\n    if event.get('fail'):\n        raise ValueError('asked to fail')\n    return {'ok': True}\n";

fn stats(d: &Daemon, path: &str) -> Value {
    let r = d.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

fn count(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn counts_success_rate_and_errors_match_the_calls_made() {
    let d = Daemon::start();
    let f = FnDir::python("flaky", FLAKY);
    d.ok(&["deploy", f.path()]);
    let mut cold = 0;
    for _ in 0..7 {
        let r = d.post("/fn/flaky", "{}");
        assert_eq!(r.status, 200, "{}", r.text());
        if r.header("x-hearth-start") != Some("warm") {
            cold += 1;
        }
    }
    for _ in 0..3 {
        let r = d.post("/fn/flaky", r#"{"fail": true}"#);
        assert_eq!(r.status, 500, "{}", r.text());
    }

    let s = stats(&d, "/api/v1/functions/flaky/stats?window=1m");
    assert_eq!(s["window"], "1m");
    assert_eq!(count(&s, "calls"), 10);
    assert_eq!(count(&s, "ok"), 7);
    assert_eq!(s["success_rate"].as_f64(), Some(0.7));
    assert_eq!(s["errors"], serde_json::json!({"function_error": 3}));
    assert_eq!(count(&s, "rejected"), 0);
    assert_eq!(s["state"], "live");
    assert_eq!(s["live_version"], 1);
    // Cold starts: every call that ran, ok or not, is counted; those that
    // answered ok told which they were.
    let cold_starts = count(&s, "cold_starts");
    assert!(
        cold_starts >= cold && cold_starts <= cold + 3,
        "{cold_starts} cold starts, {cold} seen among the ok calls: {s}"
    );
    let ratio = s["cold_start_ratio"].as_f64().expect("ratio");
    assert!((ratio - cold_starts as f64 / 10.0).abs() < 1e-9, "{s}");
    let (p50, p90, p99) = (
        s["p50_ms"].as_f64().expect("p50"),
        s["p90_ms"].as_f64().expect("p90"),
        s["p99_ms"].as_f64().expect("p99"),
    );
    let max = s["max_ms"].as_f64().expect("max");
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max, "{s}");
    assert_eq!(
        count(&s, "peak_concurrency"),
        1,
        "the calls came one by one"
    );

    // Every window holds the calls just made; the application's too.
    for window in ["1h", "24h", "7d"] {
        let w = stats(
            &d,
            &format!("/api/v1/functions/flaky/stats?window={window}"),
        );
        assert_eq!(count(&w, "calls"), 10, "{window}: {w}");
    }
    let app = stats(&d, "/api/v1/apps/tests/stats?window=1m");
    assert_eq!(count(&app, "calls"), 10);
    assert_eq!(app["success_rate"].as_f64(), Some(0.7));
    let functions = app["functions"].as_array().expect("functions");
    assert_eq!(functions.len(), 1);
    assert_eq!(functions[0]["function"], "flaky");
    assert_eq!(count(&functions[0], "calls"), 10);

    // What a wrong question gets.
    let r = d.get("/api/v1/functions/flaky/stats?window=2h");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("1m, 1h, 24h or 7d"), "{}", r.text());
    let r = d.get("/api/v1/apps/nosuch/stats");
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "app_not_found");
    let r = d.get("/api/v1/functions/nosuch/stats");
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "function_not_found");
    for path in ["/api/v1/apps/tests/stats", "/api/v1/functions/flaky/stats"] {
        let r = http_anon(&d.addr, "GET", path, b"", &[]);
        assert_eq!(r.status, 401, "{path} without a token: {}", r.text());
    }

    // The command's table has the numbers.
    let out = d.ok(&["stats", "tests", "--window", "1m"]);
    assert!(out.contains("10 calls, 7 ok, success 70.0%"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("flaky"))
        .unwrap_or_else(|| panic!("no row for flaky:\n{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..5], ["flaky", "live", "v1", "10", "70.0%"], "{out}");
    assert!(row.contains("function_error=3"), "{out}");
    let all = d.ok(&["stats"]);
    let row = all
        .lines()
        .find(|l| l.starts_with("tests"))
        .unwrap_or_else(|| panic!("no row for the application:\n{all}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..4], ["tests", "1", "10", "70.0%"], "{all}");
    let err = d.fails(&["stats", "tests", "--window", "2h"]);
    assert!(err.contains("1m, 1h, 24h or 7d"), "{err}");
}

#[test]
fn calls_are_attributed_to_the_version_that_served_them() {
    let d = Daemon::start();
    let f = FnDir::python("split", FLAKY);
    d.ok(&["deploy", f.path()]);
    for _ in 0..3 {
        assert_eq!(d.post("/fn/split", "{}").status, 200);
    }
    assert_eq!(d.post("/fn/split", r#"{"fail": true}"#).status, 500);
    f.write(
        "main.py",
        "def handler(event, context):\n    return {'v': 2}\n",
    );
    d.ok(&["deploy", f.path()]);
    for _ in 0..5 {
        let r = d.post("/fn/split", "{}");
        assert_eq!(r.header("x-hearth-version"), Some("2"), "{}", r.text());
    }

    let s = stats(&d, "/api/v1/functions/split/stats?window=1h");
    assert_eq!(s["live_version"], 2);
    assert_eq!(count(&s, "calls"), 9);
    assert_eq!(count(&s, "ok"), 8);
    let versions = s["versions"].as_array().expect("versions");
    let v: Vec<(u64, u64, u64)> = versions
        .iter()
        .map(|v| (count(v, "version"), count(v, "calls"), count(v, "ok")))
        .collect();
    assert_eq!(v, [(1, 4, 3), (2, 5, 5)], "{s}");
    assert_eq!(versions[0]["success_rate"].as_f64(), Some(0.75));
    assert_eq!(versions[1]["success_rate"].as_f64(), Some(1.0));

    // Several versions: the table shows each.
    let out = d.ok(&["stats", "tests"]);
    let at = |v: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(v))
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no row {v}:\n{out}"))
    };
    assert_eq!(at("@1"), ["@1", "4", "75.0%"], "{out}");
    assert_eq!(at("@2"), ["@2", "5", "100.0%"], "{out}");
}

#[test]
fn rejections_are_counted_as_calls_that_never_ran() {
    let d = Daemon::start();
    let f = FnDir::python_with(
        "limited",
        "def handler(event, context):\n    return 1\n",
        "[limits]\nrate_per_second = 1\nrate_burst = 1\n",
    );
    d.ok(&["deploy", f.path()]);
    let statuses: Vec<u16> = (0..8).map(|_| d.post("/fn/limited", "{}").status).collect();
    let refused = statuses.iter().filter(|&&s| s == 429).count() as u64;
    let answered = statuses.iter().filter(|&&s| s == 200).count() as u64;
    assert!(refused >= 1, "{statuses:?}");
    assert_eq!(refused + answered, 8, "{statuses:?}");

    let s = stats(&d, "/api/v1/functions/limited/stats?window=1m");
    assert_eq!(count(&s, "calls"), 8);
    assert_eq!(count(&s, "ok"), answered);
    assert_eq!(count(&s, "rejected"), refused);
    assert_eq!(s["errors"]["rate_limited"].as_u64(), Some(refused), "{s}");
    let ratio = s["success_rate"].as_f64().expect("rate");
    assert!((ratio - answered as f64 / 8.0).abs() < 1e-9, "{s}");
    // Durations and cold starts are of the calls that ran.
    let cold = count(&s, "cold_starts");
    if let Some(cold_ratio) = s["cold_start_ratio"].as_f64() {
        assert!(
            (cold_ratio - cold as f64 / answered as f64).abs() < 1e-9,
            "{s}"
        );
    }
}

#[test]
fn peak_concurrency_is_the_most_calls_in_flight() {
    let d = Daemon::start();
    // Each call holds until the test answers on a socket: both are in
    // flight at once when the test has accepted both connections.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let code = "import socket\n\ndef handler(event, context):\n    s = socket.create_connection(('127.0.0.1', event['port']))\n    s.recv(1)\n    s.close()\n    return 'done'\n";
    let f = FnDir::python_with("held", code, "[limits]\nmax_workers = 2\n");
    d.ok(&["deploy", f.path()]);
    let body = format!("{{\"port\": {port}}}");
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let (addr, body) = (d.addr.clone(), body.clone());
            std::thread::spawn(move || common::http(&addr, "POST", "/fn/held", body.as_bytes()))
        })
        .collect();
    let held: Vec<_> = (0..2)
        .map(|_| listener.accept().expect("a call connects").0)
        .collect();
    for mut conn in held {
        conn.write_all(b"x").expect("release the call");
    }
    let mut cold = 0;
    for call in calls {
        let r = call.join().expect("call thread");
        assert_eq!(r.status, 200, "{}", r.text());
        if r.header("x-hearth-start") != Some("warm") {
            cold += 1;
        }
    }
    // The deploy leaves at most one worker warm: the second call at once
    // started one.
    assert!(cold >= 1, "two calls at once, both on warm workers?");
    let s = stats(&d, "/api/v1/functions/held/stats?window=1m");
    assert_eq!(count(&s, "calls"), 2);
    assert_eq!(count(&s, "cold_starts"), cold, "{s}");
    assert_eq!(s["cold_start_ratio"].as_f64(), Some(cold as f64 / 2.0));
    assert_eq!(count(&s, "peak_concurrency"), 2, "{s}");
    let app = stats(&d, "/api/v1/apps/tests/stats?window=1m");
    assert_eq!(count(&app, "peak_concurrency"), 2, "{app}");
}

#[test]
fn statistics_survive_a_restart() {
    let tmp = common::reachable_tempdir();
    let data = tmp.path().join("data");
    // No periodic write before the stop: only the one at the stop.
    let mut d = Daemon::start_in(&data, &["--stats-flush-interval", "60"], &[]);
    let f = FnDir::python("kept", FLAKY);
    d.ok(&["deploy", f.path()]);
    for _ in 0..4 {
        assert_eq!(d.post("/fn/kept", "{}").status, 200);
    }
    assert_eq!(d.post("/fn/kept", r#"{"fail": true}"#).status, 500);
    // No question before the stop: what it writes at the stop is all there is.
    assert!(d.stop(), "graceful stop:\n{}", d.log());

    let d = Daemon::start_in(&data, &[], &[]);
    let s = stats(&d, "/api/v1/functions/kept/stats?window=1h");
    assert_eq!(count(&s, "calls"), 5, "{s}");
    assert_eq!(count(&s, "ok"), 4);
    assert_eq!(s["errors"], serde_json::json!({"function_error": 1}));
    assert_eq!(d.post("/fn/kept", "{}").status, 200);
    let s = stats(&d, "/api/v1/functions/kept/stats?window=1h");
    assert_eq!(
        count(&s, "calls"),
        6,
        "calls after the restart add to those before"
    );
}
