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
//! the client times each call to B on one keep-alive connection. A bare
//! pipe round trip between a tokio process and a Python process, measured
//! in the same run, is the floor a nested call cannot go under (it adds
//! one: A to the daemon and back).

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

/// A Python process that sends back every frame it reads (4-byte length,
/// then the bytes), through os.read and os.write as the shim does.
const ECHO: &str = "import os\nwhile True:\n    h = os.read(0, 4)\n    if len(h) < 4:\n        break\n    n = int.from_bytes(h, 'big')\n    b = b''\n    while len(b) < n:\n        b += os.read(0, n - len(b))\n    os.write(1, h + b)\n";

/// The floor under any call through a worker's pipes on this machine: one
/// round trip from a tokio process (two worker threads, as the daemon's)
/// to a Python process and back, both asleep in `read` in between. A
/// nested call adds one such round trip (A to the daemon and back) to its
/// callee's run; what it adds beyond is hearth's own work (the shim's
/// encoding, the engine's routing, admission, record and events).
fn pipe_round_trip(calls: usize) -> (f64, f64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let mut child = tokio::process::Command::new("/usr/bin/python3")
            .args(["-S", "-c", ECHO])
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3");
        let mut to = child.stdin.take().expect("stdin");
        let mut from = child.stdout.take().expect("stdout");
        let payload = [0x81u8, 0xa4, b'n', b'a', b'm', b'e', 0xa3, b'A', b'd', b'a'];
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        let mut back = vec![0u8; frame.len()];
        let mut times = Vec::with_capacity(calls);
        for i in 0..calls + 200 {
            let t = Instant::now();
            to.write_all(&frame).await.expect("write");
            from.read_exact(&mut back).await.expect("read");
            if i >= 200 {
                times.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        drop(to);
        let _ = child.wait().await;
        us(&mut times)
    })
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
    let (f50, f99) = pipe_round_trip(calls);
    println!("  a bare pipe round trip (tokio <-> python) p50 {f50:>8.1} µs  p99 {f99:>8.1} µs");
    println!(
        "  nested call over B's run: {:+.1} µs at p50 (target: at most 50); beyond one bare round trip: {:+.1} µs",
        n50 - r50,
        n50 - r50 - f50
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
