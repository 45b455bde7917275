//! Call latency per runtime: cold start (the first call of a version, which
//! starts its worker and loads its code) and warm calls.
//!
//!     cargo bench --bench latency
//!     cargo bench --bench latency -- --warm 5000 --cold 100 --examples python/hello,lua/hello
//!
//! Starts a real `hearth serve` (release build) on a free loopback port with a
//! temporary data directory. For each example: deploys `--cold` distinct
//! versions without publishing them and times the first call to each
//! (`POST /fn/NAME@N`: spawn, imports, code load, call); then times `--warm`
//! sequential calls to the live version on one keep-alive HTTP/1.1
//! connection. Prints one table.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{deploy, stats, Conn};
use hearth::bundle::{Bundle, BundleFile};

struct Args {
    warm: usize,
    cold: usize,
    examples: Vec<String>,
}

fn args() -> Args {
    let mut a = Args {
        warm: 1000,
        cold: 50,
        examples: vec![
            "python/hello".into(),
            "node/hello".into(),
            "lua/hello".into(),
        ],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--warm" => a.warm = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.warm),
            "--cold" => a.cold = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.cold),
            "--examples" => {
                a.examples = it
                    .next()
                    .map(|v| v.split(',').map(str::to_owned).collect())
                    .unwrap_or(a.examples)
            }
            _ => {} // cargo passes --bench
        }
    }
    a
}

fn main() {
    let a = args();
    let repo = env!("CARGO_MANIFEST_DIR");
    let daemon = common::Daemon::start();
    let addr = daemon.addr.clone();

    let mut rows = Vec::new();
    for example in &a.examples {
        let dir = Path::new(repo).join("examples").join(example);
        let bundle = Bundle::from_dir(&dir).expect("example");
        let name = bundle.validate().expect("manifest").name;
        let mut conn = Conn::open(&addr);
        let body = br#"{"name":"Ada"}"#;

        eprintln!("{example}: {} cold starts…", a.cold);
        let mut cold = Vec::with_capacity(a.cold);
        for i in 0..a.cold {
            let mut b = bundle.clone();
            b.files.push(BundleFile {
                path: "bench-nonce.txt".into(),
                data: format!("{i}").into_bytes(),
                executable: false,
            });
            let v = deploy(&mut conn, &b, false)["version"]
                .as_u64()
                .expect("version");
            let t = Instant::now();
            let (status, out) = conn.post(&format!("/fn/{name}@{v}"), body);
            cold.push(t.elapsed());
            assert_eq!(
                status,
                200,
                "cold call failed: {}",
                String::from_utf8_lossy(&out)
            );
        }

        eprintln!("{example}: {} warm calls…", a.warm);
        deploy(&mut conn, &bundle, true);
        let path = format!("/fn/{name}");
        for _ in 0..200 {
            conn.post(&path, body);
        }
        let mut warm = Vec::with_capacity(a.warm);
        let started = Instant::now();
        for _ in 0..a.warm {
            let t = Instant::now();
            let (status, _) = conn.post(&path, body);
            warm.push(t.elapsed());
            assert_eq!(status, 200);
        }
        let rate = a.warm as f64 / started.elapsed().as_secs_f64();
        rows.push((example.clone(), stats(cold), stats(warm), rate));
    }

    println!();
    println!(
        "{:<14} {:>10} {:>10} {:>10}   {:>10} {:>10} {:>10} {:>10}",
        "example",
        "cold p50",
        "cold p99",
        "cold max",
        "warm p50",
        "warm p99",
        "warm max",
        "calls/s"
    );
    for (example, c, w, rate) in rows {
        println!(
            "{:<14} {:>8.2}ms {:>8.2}ms {:>8.2}ms   {:>8.3}ms {:>8.3}ms {:>8.3}ms {:>10.0}",
            example, c.p50, c.p99, c.max, w.p50, w.p99, w.max, rate
        );
    }
    println!(
        "({} cold starts and {} sequential warm calls per example, one keep-alive connection)",
        a.cold, a.warm
    );

    drop(daemon);
}
