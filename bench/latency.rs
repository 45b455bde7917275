//! Call latency per runtime: cold start (a new version's first worker: spawn,
//! imports, code load), deploy to first answer, and warm calls.
//!
//!     cargo bench --bench latency
//!     cargo bench --bench latency -- --warm 5000 --cold 100 --first 50 --examples python/hello,lua/hello
//!
//! Starts a real `hearth serve` (release build) on a free loopback port with a
//! temporary data directory. For each example: deploys `--cold` new versions
//! (each starts a worker and loads its code before going live; the daemon
//! reports that time as `load_ms`) and times the first call after each; then
//! times `--warm` sequential calls to the live version on one keep-alive
//! HTTP/1.1 connection. Prints one table. Then the first call of functions
//! never called (`--first` per runtime, deployed without publishing so that
//! nothing keeps them warm, the daemon restarted, each version called once
//! with the generic pool warm), and the resident memory of the idle loaded
//! workers.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{deploy, stats, Conn};
use hearth::bundle::{Bundle, BundleFile};

struct Args {
    warm: usize,
    cold: usize,
    /// Never-called functions deployed per runtime for the first-call row.
    first: usize,
    examples: Vec<String>,
}

fn args() -> Args {
    let mut a = Args {
        warm: 1000,
        cold: 50,
        first: 30,
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
            "--first" => a.first = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.first),
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

        eprintln!("{example}: {} deploys of new code…", a.cold);
        let (mut start, mut deployed, mut first) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..a.cold {
            let mut b = bundle.clone();
            b.files.push(BundleFile {
                path: "bench-nonce.txt".into(),
                data: format!("{i}").into_bytes(),
                executable: false,
            });
            let t = Instant::now();
            let out = deploy(&mut conn, &b, true);
            let load_ms = out["load_ms"]
                .as_f64()
                .expect("a new version starts a worker");
            start.push(Duration::from_secs_f64(load_ms / 1000.0));
            let t1 = Instant::now();
            let (status, out) = conn.post(&format!("/fn/{name}"), body);
            first.push(t1.elapsed());
            deployed.push(t.elapsed());
            assert_eq!(
                status,
                200,
                "first call failed: {}",
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
        rows.push((
            example.clone(),
            [stats(start), stats(deployed), stats(first), stats(warm)],
            rate,
        ));
    }

    println!();
    println!(
        "{:<14} {:>21} {:>21} {:>21} {:>21} {:>9}",
        "", "worker start+load", "deploy to answer", "first call", "warm call", ""
    );
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "example", "p50", "p99", "p50", "p99", "p50", "p99", "p50", "p99", "calls/s"
    );
    for (example, s, rate) in rows {
        println!(
            "{:<14} {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.3}ms {:>8.3}ms {:>9.0}",
            example, s[0].p50, s[0].p99, s[1].p50, s[1].p99, s[2].p50, s[2].p99, s[3].p50, s[3].p99, rate
        );
    }
    println!(
        "({} deploys of new code and {} sequential warm calls per example, one keep-alive connection)",
        a.cold, a.warm
    );
    println!("worker start+load: spawn, imports and code load (the deploy's load_ms); deploy to answer: from sending");
    println!("the deploy to the answer of the first call after it; first call: that call alone (the deploy leaves a warm worker)");

    // Idle workers' resident memory (each runtime's hello, loaded, idle).
    let mut conn = Conn::open(&addr);
    let workers: serde_json::Value =
        serde_json::from_slice(&conn.get("/api/v1/workers")).expect("workers");
    let mut rss_rows = Vec::new();
    for pool in workers["pools"].as_array().into_iter().flatten() {
        for pid in pool["pids"].as_array().into_iter().flatten() {
            if let Some(kb) = pid.as_u64().and_then(rss_kb) {
                rss_rows.push((pool["function"].as_str().unwrap_or("").to_owned(), kb));
            }
        }
    }
    drop(conn);

    // First call of functions never called: deployed, then the daemon is
    // restarted (no worker of theirs is left), and each is called once with
    // the generic pool warm.
    eprintln!("first calls: deploying {} functions per runtime…", a.first);
    let mut conn = Conn::open(&addr);
    let mut names = Vec::new();
    for example in &a.examples {
        let dir = Path::new(repo).join("examples").join(example);
        let bundle = Bundle::from_dir(&dir).expect("example");
        for i in 0..a.first {
            let mut b = bundle.clone();
            let name = format!("first-{}-{i}", example.replace('/', "-"));
            for f in b.files.iter_mut().filter(|f| f.path == "hearth.toml") {
                let text = String::from_utf8_lossy(&f.data).into_owned();
                let renamed: Vec<String> = text
                    .lines()
                    .map(|l| {
                        if l.starts_with("name") {
                            format!("name = \"{name}\"")
                        } else {
                            l.to_owned()
                        }
                    })
                    .collect();
                f.data = renamed.join("\n").into_bytes();
            }
            // Not published: after the restart nothing keeps it warm (a
            // live version always keeps one worker started).
            deploy(&mut conn, &b, false);
            names.push((example.clone(), name));
        }
    }
    drop(conn);
    let data = daemon.data.clone();
    let mut daemon = daemon;
    daemon.remove_data = false;
    drop(daemon);
    let daemon = common::Daemon::start_in(data);
    let addr = daemon.addr.clone();
    let mut conn = Conn::open(&addr);
    let mut first_rows: Vec<(String, Vec<Duration>)> = Vec::new();
    for (example, name) in &names {
        wait_generic_full(&mut conn);
        let t = Instant::now();
        let (status, out) = conn.post(&format!("/fn/{name}@1"), br#"{"name":"Ada"}"#);
        let took = t.elapsed();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
        match first_rows.iter_mut().find(|(e, _)| e == example) {
            Some((_, v)) => v.push(took),
            None => first_rows.push((example.clone(), vec![took])),
        }
    }
    println!();
    println!(
        "first call of a never-called function (generic pool warm; {} functions each):",
        a.first
    );
    println!(
        "{:<14} {:>10} {:>10} {:>10}",
        "example", "p50", "p99", "max"
    );
    for (example, times) in first_rows {
        let s = stats(times);
        println!(
            "{:<14} {:>8.2}ms {:>8.2}ms {:>8.2}ms",
            example, s.p50, s.p99, s.max
        );
    }
    println!();
    println!("idle loaded workers, resident memory (VmRSS), per function:");
    let mut functions: Vec<&str> = rss_rows.iter().map(|(f, _)| f.as_str()).collect();
    functions.sort();
    functions.dedup();
    for function in functions {
        let mut kbs: Vec<u64> = rss_rows
            .iter()
            .filter(|(f, _)| f == function)
            .map(|(_, kb)| *kb)
            .collect();
        kbs.sort();
        let mb = |kb: u64| kb as f64 / 1024.0;
        println!(
            "{function:<14} {} workers: median {:.1} MB, max {:.1} MB",
            kbs.len(),
            mb(kbs[kbs.len() / 2]),
            mb(kbs[kbs.len() - 1])
        );
    }
    drop(daemon);
}

/// VmRSS of a process, in KiB.
fn rss_kb(pid: u64) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Wait until every generic pool holds its target of idle interpreters.
fn wait_generic_full(conn: &mut Conn) {
    for _ in 0..2000 {
        let w: serde_json::Value =
            serde_json::from_slice(&conn.get("/api/v1/workers")).expect("workers");
        let full = w["generic"]
            .as_array()
            .is_some_and(|g| g.iter().all(|g| g["idle"] == g["target"]));
        if full {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
