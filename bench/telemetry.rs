//! What telemetry costs a warm call: throughput of Python hello at full
//! speed on two daemons, one with all telemetry on (metrics, call records,
//! statistics) and one with `--no-metrics --no-records --no-stats`,
//! in alternating rounds of the same run; then the sink's own cost per call
//! measured in-process.
//!
//!     cargo bench --bench telemetry
//!     cargo bench --bench telemetry -- --rounds 8 --seconds 3 --conns 4
//!
//! Each round runs `--conns` keep-alive HTTP/1.1 connections calling
//! `/fn/hello` as fast as they answer for `--seconds` on one daemon, then
//! on the other (which goes first alternates). Prints each round's calls/s,
//! the median of each daemon, their ratio (target: at most 3% lost) and
//! the per-call cost, in µs of the two cores' time, that the difference
//! means. The in-process part feeds a call's events (`Admitted`,
//! `CallFinished`) to the engine's `Events` with and without the metrics
//! sink subscribed, and prints the difference per call.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{deploy, Conn, Daemon};
use hearth::bundle::Bundle;
use hearth_engine::{Caller, Event, Events};

struct Args {
    rounds: usize,
    seconds: f64,
    conns: usize,
    /// Seconds of the full-speed soak with telemetry on (0: none).
    soak: f64,
    /// Flags of the "on" daemon (to tell which part costs what), e.g.
    /// `--on "--no-records"`.
    on: Vec<String>,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 6,
        seconds: 3.0,
        conns: 4,
        soak: 0.0,
        on: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--on" {
            a.on = it
                .next()
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default();
            continue;
        }
        let mut next = || it.next().and_then(|v| v.parse::<f64>().ok());
        match arg.as_str() {
            "--rounds" => a.rounds = next().map_or(a.rounds, |v| v as usize),
            "--seconds" => a.seconds = next().unwrap_or(a.seconds),
            "--conns" => a.conns = next().map_or(a.conns, |v| v as usize),
            "--soak" => a.soak = next().unwrap_or(a.soak),
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// Calls per second over `seconds` with `conns` connections.
fn run(addr: &str, conns: usize, seconds: f64) -> f64 {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let began = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let addr = addr.to_owned();
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                let mut n = 0u64;
                while Instant::now() < until {
                    let (status, _) = conn.post("/fn/hello", br#"{"name":"Ada"}"#);
                    assert_eq!(status, 200, "a call failed");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let calls: u64 = threads.into_iter().map(|t| t.join().expect("client")).sum();
    calls as f64 / began.elapsed().as_secs_f64()
}

/// The daemon's resident memory, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Bytes of the files named `prefix*` in `dir` (a SQLite file, its WAL).
fn size_mib(dir: &Path, prefix: &str) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    bytes as f64 / (1024.0 * 1024.0)
}

/// Full speed for `seconds` on `d`, printing every 10 s the calls/s, the
/// daemon's memory and the size of its stores.
fn soak(d: &Daemon, conns: usize, seconds: f64) {
    println!("soak: full speed for {seconds:.0} s with telemetry on");
    println!("  at s   calls/s   daemon RSS MiB   calls.db MiB   hearth.db MiB");
    let mut at = 0.0;
    while at < seconds {
        let step = (seconds - at).min(10.0);
        let rate = run(&d.addr, conns, step);
        at += step;
        println!(
            "  {at:>4.0}   {rate:>7.0}   {:>14.1}   {:>12.1}   {:>13.1}",
            rss_mib(d.pid()),
            size_mib(&d.data, "calls.db"),
            size_mib(&d.data, "hearth.db")
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn start(name: &str, flags: &[&str]) -> Daemon {
    let data = std::env::temp_dir().join(format!("hearth-bench-{name}-{}", std::process::id()));
    let d = Daemon::start_with(data, flags);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/hello");
    let bundle = Bundle::from_dir(&dir).expect("examples/python/hello");
    deploy(&mut Conn::open(&d.addr), &bundle, true);
    d
}

/// Nanoseconds per call that one call's events take through `events`.
fn events_ns(events: &Events, calls: u32) -> f64 {
    let began = Instant::now();
    for _ in 0..calls {
        events.emit(Event::Admitted {
            function: "hello",
            version: 1,
            queue_ms: 0.002,
        });
        events.emit(Event::CallFinished {
            function: "hello",
            version: 1,
            app: "examples",
            request_id: "0123456789abcdef",
            caller: Caller::Http,
            status: 200,
            outcome: "ok",
            ms: 0.15,
            start: Default::default(),
            error: None,
            detail: Default::default(),
        });
    }
    began.elapsed().as_nanos() as f64 / f64::from(calls)
}

fn main() {
    let a = args();
    eprintln!("starting two daemons (telemetry on, telemetry off) with python/hello…");
    let on_flags: Vec<&str> = a.on.iter().map(String::as_str).collect();
    if !on_flags.is_empty() {
        eprintln!("the \"on\" daemon runs with {on_flags:?}");
    }
    let on = start("on", &on_flags);
    let off = start("off", &["--no-metrics", "--no-records", "--no-stats"]);
    // Warm both (workers started, caches filled).
    run(&on.addr, a.conns, 1.0);
    run(&off.addr, a.conns, 1.0);

    let (mut on_rates, mut off_rates) = (Vec::new(), Vec::new());
    println!("round  telemetry on calls/s  telemetry off calls/s");
    for round in 0..a.rounds {
        let (r_on, r_off) = if round % 2 == 0 {
            let r_on = run(&on.addr, a.conns, a.seconds);
            (r_on, run(&off.addr, a.conns, a.seconds))
        } else {
            let r_off = run(&off.addr, a.conns, a.seconds);
            (run(&on.addr, a.conns, a.seconds), r_off)
        };
        println!("{:>5}  {:>21.0}  {:>22.0}", round + 1, r_on, r_off);
        on_rates.push(r_on);
        off_rates.push(r_off);
    }
    let (m_on, m_off) = (median(on_rates), median(off_rates));
    let lost = (1.0 - m_on / m_off) * 100.0;
    // Both cores serve the calls: a call's share of them is 2 / rate.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cost_us = (cores / m_on - cores / m_off) * 1e6;
    println!(
        "median: on {m_on:.0} calls/s, off {m_off:.0} calls/s; on/off = {:.3} ({lost:+.1}% lost; target at most 3%)",
        m_on / m_off
    );
    println!("call-path cost from throughput: {cost_us:+.1} µs of CPU per call ({cores} cores)");

    if a.soak > 0.0 {
        soak(&on, a.conns, a.soak);
    }

    // In-process: a call's events with and without the metrics sink.
    let calls = 2_000_000;
    let bare = Events::new();
    let with = Events::new();
    let metrics = hearth::metrics::Metrics::new().expect("metrics");
    with.subscribe(Arc::clone(&metrics) as Arc<dyn hearth_engine::EventSink>);
    // Warm-up, then measure.
    events_ns(&bare, calls / 10);
    events_ns(&with, calls / 10);
    let ns_bare = events_ns(&bare, calls);
    let ns_with = events_ns(&with, calls);
    println!(
        "in-process: a call's events take {ns_bare:.0} ns without the metrics sink, {ns_with:.0} ns with it: the sink costs {:.3} µs per call",
        (ns_with - ns_bare) / 1000.0
    );
}
