//! Publish-to-live time under load, and calls failed during publishes.
//!
//!     cargo bench --bench publish
//!     cargo bench --bench publish -- --swaps 200 --fresh 30 --clients 4
//!
//! Starts a real `hearth serve` (release build), deploys a Python function
//! whose answer names its version, and keeps `--clients` threads calling it in
//! a loop on keep-alive connections. Then:
//! - `--swaps` publishes alternating between two warm versions (publish and
//!   rollback are the same operation);
//! - `--fresh` publishes of a brand-new version each, deployed just before
//!   without publishing (a deploy proves the code loads and keeps that worker
//!   warm for the grace period, so the publish is a swap);
//! - `--fresh` deploys of new code that publish on deploy: this one includes
//!   storing the version and starting its first worker.
//!
//! Publish-to-live is measured from sending the publish (or deploy) request to the first
//! call, from any client, answered by the new version. Every call's status is
//! checked: the failed-call count must be zero.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{deploy, stats, Conn};
use hearth::bundle::{Bundle, BundleFile};

struct Args {
    swaps: usize,
    fresh: usize,
    clients: usize,
}

fn args() -> Args {
    let mut a = Args {
        swaps: 200,
        fresh: 30,
        clients: 4,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.windows(2) {
        let value = pair[1].parse().ok();
        match (pair[0].as_str(), value) {
            ("--swaps", Some(v)) => a.swaps = v,
            ("--fresh", Some(v)) => a.fresh = v,
            ("--clients", Some(v)) => a.clients = v,
            _ => {}
        }
    }
    a
}

fn bundle(v: u64) -> Bundle {
    let file = |path: &str, text: String| BundleFile {
        path: path.into(),
        data: text.into_bytes(),
        executable: false,
    };
    Bundle {
        files: vec![
            file(
                "hearth.toml",
                "name = \"swap\"\nruntime = \"python\"\nentry = \"main.handler\"\n[limits]\nmax_workers = 4\n".into(),
            ),
            file("main.py", format!("def handler(event):\n    return {{\"v\": {v}}}\n")),
        ],
    }
}

/// (when the answer arrived, the version that gave it)
type Answers = Arc<Mutex<Vec<(Instant, u64)>>>;

fn main() {
    let a = args();
    let daemon = common::Daemon::start();
    let addr = daemon.addr.clone();
    let mut admin = Conn::open(&addr);
    deploy(&mut admin, &bundle(1), true);
    deploy(&mut admin, &bundle(2), true);

    let stop = Arc::new(AtomicBool::new(false));
    let answers: Answers = Arc::new(Mutex::new(Vec::with_capacity(1 << 20)));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clients: Vec<_> = (0..a.clients)
        .map(|_| {
            let (addr, stop, answers, failed) =
                (addr.clone(), stop.clone(), answers.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                let mut calls = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = conn.post("/fn/swap", b"{}");
                    calls += 1;
                    let v = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|b| b["v"].as_u64())
                        .unwrap_or(0);
                    if status != 200 || v == 0 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut a) = answers.lock() {
                        a.push((Instant::now(), v));
                    }
                }
                calls
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // Publish `version`, return when it was sent.
    let publish = |admin: &mut Conn, version: u64| {
        let sent = Instant::now();
        let (status, body) = admin.post(
            "/api/v1/functions/swap/publish",
            format!("{{\"version\":{version}}}").as_bytes(),
        );
        assert_eq!(
            status,
            200,
            "publish failed: {}",
            String::from_utf8_lossy(&body)
        );
        sent
    };
    // Wait until some client has been answered by `version` after `sent`.
    let live_after = |sent: Instant, version: u64| -> Duration {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(a) = answers.lock() {
                if let Some((t, _)) = a
                    .iter()
                    .rev()
                    .take_while(|(t, _)| *t >= sent)
                    .filter(|(_, v)| *v == version)
                    .last()
                {
                    return *t - sent;
                }
            }
            assert!(
                Instant::now() < deadline,
                "version {version} never answered"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    };

    eprintln!(
        "{} publishes alternating between two warm versions, {} clients calling…",
        a.swaps, a.clients
    );
    let mut swaps = Vec::with_capacity(a.swaps);
    for i in 0..a.swaps {
        let version = if i % 2 == 0 { 1 } else { 2 };
        let sent = publish(&mut admin, version);
        swaps.push(live_after(sent, version));
    }

    eprintln!("{} publishes of a new version each…", a.fresh);
    let mut fresh = Vec::with_capacity(a.fresh);
    for i in 0..a.fresh {
        let v = deploy(&mut admin, &bundle(100 + i as u64), false)["version"]
            .as_u64()
            .expect("version");
        let code_v = 100 + i as u64;
        let sent = publish(&mut admin, v);
        fresh.push(live_after(sent, code_v));
    }

    eprintln!("{} deploys of new code, published on deploy…", a.fresh);
    let mut deploys = Vec::with_capacity(a.fresh);
    for i in 0..a.fresh {
        let code_v = 1000 + i as u64;
        let sent = Instant::now();
        deploy(&mut admin, &bundle(code_v), true);
        deploys.push(live_after(sent, code_v));
    }

    stop.store(true, Ordering::Relaxed);
    let calls: u64 = clients.into_iter().map(|c| c.join().unwrap_or(0)).sum();
    let failed = failed.load(Ordering::Relaxed);
    let (s, f, d) = (stats(swaps), stats(fresh), stats(deploys));
    println!();
    println!(
        "{:<34} {:>9} {:>9} {:>9}",
        "publish-to-live", "p50", "p99", "max"
    );
    println!(
        "{:<34} {:>7.2}ms {:>7.2}ms {:>7.2}ms",
        format!("warm version ({} publishes)", a.swaps),
        s.p50,
        s.p99,
        s.max
    );
    println!(
        "{:<34} {:>7.2}ms {:>7.2}ms {:>7.2}ms",
        format!("new version ({} publishes)", a.fresh),
        f.p50,
        f.p99,
        f.max
    );
    println!(
        "{:<34} {:>7.2}ms {:>7.2}ms {:>7.2}ms",
        format!("deploy new code ({} deploys)", a.fresh),
        d.p50,
        d.p99,
        d.max
    );
    println!(
        "calls during publishes: {calls}, failed: {failed} ({} clients)",
        a.clients
    );
    drop(daemon);
    if failed > 0 {
        std::process::exit(1);
    }
}
