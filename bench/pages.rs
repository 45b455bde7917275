//! What a page costs over its critical path, and against the same page
//! written by hand as one function that calls the others with invoke_many.
//!
//!     cargo bench --bench pages
//!     cargo bench --bench pages -- --rounds 10 --calls 50 --seconds 10 --clients 4
//!
//! The page has 20 fields: 8 data sources (Python, hidden) that sleep 5 to
//! 20 ms each, and 12 field functions (Python, no sleep), each made from
//! two sources. On a real `hearth serve` (release build):
//!
//! 1. Latency: `--rounds` rounds, alternating the page (POST /page/bench-home)
//!    and the hand-written function (POST /fn/bench-by-hand), each `--calls`
//!    sequential calls on one keep-alive connection. For the page, each
//!    call's latency is set against its critical path as its Server-Timing
//!    reports it (`critical;dur=`: the sum of the member calls on the chain
//!    of needs that ended last): the overhead is latency − critical path.
//! 2. Throughput: `--clients` connections calling the page for `--seconds`,
//!    then the hand-written function the same way: calls per second.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{deploy, stats, Conn};
use hearth::bundle::{Bundle, BundleFile};

/// How long each data source sleeps, in ms.
const SOURCES: [u64; 8] = [5, 7, 9, 11, 13, 15, 18, 20];
/// Field k is made from sources k % 8 and (k + 3) % 8.
const FIELDS: usize = 12;

struct Args {
    rounds: usize,
    calls: usize,
    seconds: u64,
    clients: usize,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 8,
        calls: 40,
        seconds: 8,
        clients: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |d: usize| it.next().and_then(|v| v.parse().ok()).unwrap_or(d);
        match arg.as_str() {
            "--rounds" => a.rounds = num(a.rounds),
            "--calls" => a.calls = num(a.calls),
            "--seconds" => a.seconds = num(a.seconds as usize) as u64,
            "--clients" => a.clients = num(a.clients),
            _ => {}
        }
    }
    a
}

fn file(path: &str, data: String) -> BundleFile {
    BundleFile {
        path: path.into(),
        executable: false,
        data: data.into_bytes(),
    }
}

fn function(name: &str, code: &str, workers: usize) -> Bundle {
    Bundle {
        files: vec![
            file(
                "hearth.toml",
                format!(
                    "name = \"{name}\"\nruntime = \"python\"\nentry = \"main.handler\"\napp = \"bench\"\n[limits]\nmax_workers = {workers}\nmax_nested_calls = 100\n"
                ),
            ),
            file("main.py", code.to_owned()),
        ],
    }
}

fn source_code(ms: u64) -> String {
    format!(
        "import time\ndef handler(event):\n    time.sleep({ms} / 1000)\n    return {{\"user\": event.get(\"user\"), \"items\": [{{\"id\": i, \"title\": \"program %d\" % i}} for i in range(10)], \"ms\": {ms}}}\n"
    )
}

const FIELD_CODE: &str = "def handler(event):\n    a, b = event.get(\"a\") or {}, event.get(\"b\") or {}\n    items = (a.get(\"items\") or [])[:3] + (b.get(\"items\") or [])[:3]\n    return {\"title\": \"row\", \"items\": [i[\"title\"] for i in items]}\n";

const BY_HAND: &str = r#"
SOURCES = 8
FIELDS = 12
def handler(event, context):
    user = event.get("user")
    srcs = context.invoke_many([("bench-src-%d" % i, {"user": user}) for i in range(SOURCES)])
    outs = context.invoke_many([
        ("bench-field-%d" % k, {"a": srcs[k % SOURCES], "b": srcs[(k + 3) % SOURCES]})
        for k in range(FIELDS)
    ])
    return {"data": {"f%d" % k: outs[k] for k in range(FIELDS)}, "errors": []}
"#;

fn page() -> Bundle {
    let mut toml = String::from(
        "name = \"bench-home\"\ntype = \"page\"\napp = \"bench\"\ntimeout_ms = 2000\n",
    );
    for (i, _) in SOURCES.iter().enumerate() {
        toml.push_str(&format!(
            "\n[fields.src{i}]\nfn = \"bench-src-{i}\"\ninput = {{ user = \"$request.user\" }}\nhidden = true\n"
        ));
    }
    for k in 0..FIELDS {
        let (a, b) = (k % SOURCES.len(), (k + 3) % SOURCES.len());
        toml.push_str(&format!(
            "\n[fields.rows.f{k}]\nfn = \"bench-field-{k}\"\ninput = {{ a = \"$fields.src{a}\", b = \"$fields.src{b}\" }}\nfallback = {{ title = \"row\", items = [] }}\n"
        ));
    }
    Bundle {
        files: vec![file("hearth.toml", toml)],
    }
}

/// `critical;dur=X` of a Server-Timing header, in ms.
fn critical_ms(timing: &str) -> Option<f64> {
    timing
        .split(", ")
        .find_map(|part| part.strip_prefix("critical;dur="))
        .and_then(|rest| rest.split(';').next())
        .and_then(|v| v.parse().ok())
}

const BODY: &[u8] = br#"{"user": "u1"}"#;

struct Round {
    latency: Vec<Duration>,
    overhead: Vec<Duration>,
    critical: Vec<Duration>,
}

fn round(conn: &mut Conn, path: &str, calls: usize) -> Round {
    let mut r = Round {
        latency: Vec::with_capacity(calls),
        overhead: Vec::with_capacity(calls),
        critical: Vec::with_capacity(calls),
    };
    for _ in 0..calls {
        let t = Instant::now();
        let (status, body) = conn.post(path, BODY);
        let took = t.elapsed();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(answer["errors"], serde_json::json!([]), "{answer}");
        r.latency.push(took);
        if let Some(c) = critical_ms(&conn.server_timing) {
            let c = Duration::from_secs_f64(c / 1000.0);
            r.critical.push(c);
            r.overhead.push(took.saturating_sub(c));
        }
    }
    r
}

fn throughput(addr: &str, path: &str, clients: usize, seconds: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, path, done, stop) =
                (addr.to_owned(), path.to_owned(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = conn.post(&path, BODY);
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        let _ = th.join();
    }
    done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
}

fn ms(d: &[Duration]) -> String {
    let s = stats(d.to_vec());
    format!("p50 {:7.2} ms   p99 {:7.2} ms", s.p50, s.p99)
}

fn main() {
    let a = args();
    let daemon = common::Daemon::start();
    let mut conn = Conn::open(&daemon.addr);
    let workers = a.clients.max(1);
    println!(
        "deploying 8 sources ({:?} ms), {FIELDS} field functions, the page and the hand-written function…",
        SOURCES
    );
    for (i, ms) in SOURCES.iter().enumerate() {
        deploy(
            &mut conn,
            &function(&format!("bench-src-{i}"), &source_code(*ms), workers),
            true,
        );
    }
    for k in 0..FIELDS {
        deploy(
            &mut conn,
            &function(&format!("bench-field-{k}"), FIELD_CODE, workers),
            true,
        );
    }
    deploy(
        &mut conn,
        &function("bench-by-hand", BY_HAND, workers),
        true,
    );
    deploy(&mut conn, &page(), true);
    // Warm everything (and, with several clients, enough workers).
    round(&mut conn, "/page/bench-home", 20);
    round(&mut conn, "/fn/bench-by-hand", 20);
    if a.clients > 1 {
        throughput(&daemon.addr, "/page/bench-home", a.clients, 2);
        throughput(&daemon.addr, "/fn/bench-by-hand", a.clients, 2);
    }

    let (mut page_lat, mut page_over, mut page_crit, mut hand_lat) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..a.rounds {
        let (p, h) = if r % 2 == 0 {
            let p = round(&mut conn, "/page/bench-home", a.calls);
            (p, round(&mut conn, "/fn/bench-by-hand", a.calls))
        } else {
            let h = round(&mut conn, "/fn/bench-by-hand", a.calls);
            (round(&mut conn, "/page/bench-home", a.calls), h)
        };
        page_lat.extend(p.latency);
        page_over.extend(p.overhead);
        page_crit.extend(p.critical);
        hand_lat.extend(h.latency);
    }
    let nominal = (0..FIELDS)
        .map(|k| SOURCES[k % 8].max(SOURCES[(k + 3) % 8]))
        .max()
        .unwrap_or(0);
    println!(
        "\nlatency ({} rounds × {} sequential calls each; the slowest source sleeps {nominal} ms):",
        a.rounds, a.calls
    );
    println!("  page (20 fields)                      {}", ms(&page_lat));
    println!("  its critical path (Server-Timing)     {}", ms(&page_crit));
    println!("  page − its critical path, per call    {}", ms(&page_over));
    println!("  one function with invoke_many         {}", ms(&hand_lat));

    println!(
        "\nthroughput ({} connections, {} s each):",
        a.clients, a.seconds
    );
    let page_rps = throughput(&daemon.addr, "/page/bench-home", a.clients, a.seconds);
    let hand_rps = throughput(&daemon.addr, "/fn/bench-by-hand", a.clients, a.seconds);
    println!("  page                                  {page_rps:8.1} calls/s");
    println!("  one function with invoke_many         {hand_rps:8.1} calls/s");
}
