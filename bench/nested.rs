//! What a nested call costs: Python A calling Python B through its
//! worker's channel, against calling B directly over HTTP and against B's
//! own run time; and a fan-out of 10 nested calls at once against 10 one
//! after another.
//!
//!     cargo bench --bench nested
//!     cargo bench --bench nested -- --calls 2000
//!
//! Starts a real `hearth serve` (release build). B returns its event. A
//! times its `context.invoke` with `time.perf_counter` and returns that
//! time; B's run time is its call records' `timing.run_ms` (from the
//! daemon writing the invoke to reading its result). The nested call's
//! overhead over B's run is the difference of their medians. Over HTTP,
//! the client times each call to B on one keep-alive connection.

mod common;

use std::time::{Duration, Instant};

use common::{deploy, stats, Conn, Daemon};
use hearth::bundle::{Bundle, BundleFile};

fn bundle(name: &str, code: &str, limits: &str) -> Bundle {
    let manifest = format!(
        "name = \"{name}\"\nruntime = \"python\"\nentry = \"main.handler\"\napp = \"bench\"\n\n[limits]\ntimeout_ms = 10000\n{limits}\n"
    );
    Bundle {
        files: vec![
            BundleFile {
                path: "hearth.toml".into(),
                data: manifest.into_bytes(),
                executable: false,
            },
            BundleFile {
                path: "main.py".into(),
                data: code.as_bytes().to_vec(),
                executable: false,
            },
        ],
    }
}

const B: &str = "def handler(event):\n    return event\n";
const A: &str = "import time\n\ndef handler(event, context):\n    began = time.perf_counter()\n    context.invoke('bench-b', event)\n    return (time.perf_counter() - began) * 1e6\n";
const FAN: &str = "import time\n\ndef handler(event, context):\n    n = event['n']\n    began = time.perf_counter()\n    if event['parallel']:\n        context.invoke_many([('bench-b', {'i': i}) for i in range(n)])\n    else:\n        for i in range(n):\n            context.invoke('bench-b', {'i': i})\n    return (time.perf_counter() - began) * 1e6\n";

fn calls_arg() -> usize {
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--calls" {
            if let Some(n) = it.next().and_then(|v| v.parse().ok()) {
                return n;
            }
        }
    }
    1000
}

fn us(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| values[((values.len() as f64 - 1.0) * p).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let calls = calls_arg();
    let d = Daemon::start_with(
        std::env::temp_dir().join(format!("hearth-bench-nested-{}", std::process::id())),
        &["--no-metrics", "--no-stats"],
    );
    let mut conn = Conn::open(&d.addr);
    deploy(
        &mut conn,
        &bundle("bench-b", B, "max_workers = 10\nmin_workers = 10"),
        true,
    );
    deploy(&mut conn, &bundle("bench-a", A, "max_workers = 1"), true);
    deploy(
        &mut conn,
        &bundle("bench-fan", FAN, "max_workers = 1"),
        true,
    );
    let event = br#"{"name":"Ada"}"#;
    // Warm-up: every worker started, caches filled.
    for _ in 0..200 {
        conn.post("/fn/bench-a", event);
        conn.post("/fn/bench-b", event);
    }
    for parallel in [true, false] {
        let body = format!(r#"{{"n": 10, "parallel": {parallel}}}"#);
        for _ in 0..20 {
            conn.post("/fn/bench-fan", body.as_bytes());
        }
    }

    // B over HTTP.
    let mut http = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let (status, _) = conn.post("/fn/bench-b", event);
        http.push(t.elapsed());
        assert_eq!(status, 200);
    }
    // B through A.
    let mut nested = Vec::with_capacity(calls);
    for _ in 0..calls {
        let (status, body) = conn.post("/fn/bench-a", event);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: f64 = serde_json::from_slice(&body).expect("A's time");
        nested.push(v);
    }
    // B's run time in its records (the nested calls' and the HTTP ones').
    std::thread::sleep(Duration::from_millis(500));
    let mut runs = Vec::new();
    let mut after = 0u64;
    loop {
        let page = conn.get(&format!(
            "/api/v1/functions/bench-b/calls?after_seq={after}&limit=1000"
        ));
        let v: serde_json::Value = serde_json::from_slice(&page).expect("records");
        let list = v["calls"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            break;
        }
        for r in &list {
            after = after.max(r["seq"].as_u64().unwrap_or(0));
            if r["caller"] == "nested" {
                if let Some(ms) = r["timing"]["run_ms"].as_f64() {
                    runs.push(ms * 1000.0);
                }
            }
        }
    }
    let h = stats(http);
    let (n50, n99) = us(&mut nested);
    let (r50, r99) = us(&mut runs);
    println!("{calls} calls each, python B returning its event:");
    println!(
        "  B over HTTP (client, keep-alive)     p50 {:>8.1} µs  p99 {:>8.1} µs",
        h.p50 * 1000.0,
        h.p99 * 1000.0
    );
    println!("  B through A (A's context.invoke)     p50 {n50:>8.1} µs  p99 {n99:>8.1} µs");
    println!("  B's own run (its nested records)     p50 {r50:>8.1} µs  p99 {r99:>8.1} µs");
    println!(
        "  nested call over B's run: {:+.1} µs at p50 (target: at most 50)",
        n50 - r50
    );

    let rounds = (calls / 10).max(20);
    for parallel in [true, false] {
        let body = format!(r#"{{"n": 10, "parallel": {parallel}}}"#);
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let (status, body) = conn.post("/fn/bench-fan", body.as_bytes());
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            times.push(serde_json::from_slice::<f64>(&body).expect("time"));
        }
        let (p50, p99) = us(&mut times);
        println!(
            "  10 nested calls {}   p50 {p50:>8.1} µs  p99 {p99:>8.1} µs",
            if parallel {
                "at once (invoke_many)"
            } else {
                "one after another    "
            }
        );
    }
}
