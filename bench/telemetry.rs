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

/// CPU seconds each thread group of process `pid` has used so far (user +
/// system, from /proc/PID/task/*/stat), by thread name with its trailing
/// digits and dashes dropped (`tokio-runtime-w`, `sqlx-sqlite-wor`, ...).
fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by = std::collections::BTreeMap::new();
    let tick = 100.0; // USER_HZ on Linux
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close]
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_owned();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // After the name: state is field 0, utime 11, stime 12.
        *by.entry(name).or_insert(0.0) += (ticks(11) + ticks(12)) / tick;
    }
    by
}

/// Microseconds of CPU per call of each thread group between two readings.
fn per_call(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    calls: f64,
) -> String {
    after
        .iter()
        .map(|(name, secs)| {
            let used = secs - before.get(name).copied().unwrap_or(0.0);
            format!("{name} {:.1}", used / calls.max(1.0) * 1e6)
        })
        .collect::<Vec<_>>()
        .join(", ")
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

/// CPU seconds this process has used (user + system, every thread).
fn process_cpu() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The record writer alone: `count` records like a warm hello call's
/// through a `Recorder` into a fresh calls.db; CPU µs per record (every
/// thread of this process: encoding, SQLite, the queue) and records/s.
fn writer_cost(count: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = hearth_records::SqliteCallStore::open(&dir.path().join("calls.db"))
            .await
            .expect("calls.db");
        let settings = hearth_records::RecorderSettings {
            queue_size: count + 1,
            ..Default::default()
        };
        let recorder = hearth_records::Recorder::start(Arc::new(store), settings).await;
        let record = |i: usize| hearth_api::CallRecord {
            request_id: format!("0cd1837b{i:08x}"),
            function: "hello".into(),
            version: 1,
            app: "examples".into(),
            caller: "http".into(),
            started_at_ms: 1_796_126_456_690 + i as u64 / 10,
            duration_ms: 4.274605,
            outcome: "ok".into(),
            code: "ok".into(),
            status: 200,
            pid: Some(4903),
            peak_memory_kb: Some(10992),
            cpu_ms: Some(0.1239),
            bytes_in: 14,
            bytes_out: 26,
            ..Default::default()
        };
        let (cpu, began) = (process_cpu(), Instant::now());
        // Offered at about 20,000 a second, as calls would.
        for chunk in 0..count / 200 {
            for i in 0..200 {
                recorder.offer(&record(chunk * 200 + i));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        recorder.finish().await;
        let (cpu, wall) = (process_cpu() - cpu, began.elapsed().as_secs_f64());
        (cpu / count as f64 * 1e6, count as f64 / wall)
    })
}

fn main() {
    let a = args();
    if std::env::args().any(|x| x == "--in-process") {
        in_process();
        return;
    }
    if std::env::args().any(|x| x == "--writer-only") {
        let (us, rate) = writer_cost(200_000);
        println!(
            "record writer: {us:.2} µs of CPU per record ({rate:.0} records/s offered and written)"
        );
        return;
    }
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
    let (cpu_on, cpu_off) = (thread_cpu(on.pid()), thread_cpu(off.pid()));
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
    let calls_on: f64 = on_rates.iter().sum::<f64>() * a.seconds;
    let calls_off: f64 = off_rates.iter().sum::<f64>() * a.seconds;
    println!(
        "daemon CPU per call by thread (µs): on: {}; off: {}",
        per_call(&cpu_on, &thread_cpu(on.pid()), calls_on),
        per_call(&cpu_off, &thread_cpu(off.pid()), calls_off)
    );
    // Each round's on/off (the two ran back to back): their median is less
    // moved by the VM's drift than the ratio of the two medians.
    let paired = median(
        on_rates
            .iter()
            .zip(&off_rates)
            .map(|(on, off)| on / off)
            .collect(),
    );
    println!(
        "median of the rounds' on/off: {paired:.3} ({:+.1}% lost)",
        (1.0 - paired) * 100.0
    );
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
    let page = Conn::open(&on.addr).get("/api/v1/functions/hello/calls?limit=1");
    let dropped = serde_json::from_slice::<serde_json::Value>(&page)
        .ok()
        .and_then(|v| v["dropped"].as_u64());
    match dropped {
        Some(n) => println!("call records dropped by the \"on\" daemon (full queue): {n}"),
        None => println!("call records dropped by the \"on\" daemon: not known (records off)"),
    }

    if a.soak > 0.0 {
        soak(&on, a.conns, a.soak);
    }

    let (us, rate) = writer_cost(200_000);
    println!(
        "record writer: {us:.2} µs of CPU per record ({rate:.0} records/s offered and written)"
    );

    in_process();
}

/// In-process costs: a call's events with and without each sink.
/// Every sink the daemon has (metrics, statistics, call records with a
/// real recorder and calls.db), fed by `threads` threads at once as the
/// daemon's two tokio threads do: CPU of the whole process per call.
fn sinks_together(threads: usize, calls: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let recorder = rt.block_on(async {
        let store = hearth_records::SqliteCallStore::open(&dir.path().join("calls.db"))
            .await
            .expect("calls.db");
        Arc::new(hearth_records::Recorder::start(Arc::new(store), Default::default()).await)
    });
    let events = Events::new();
    events.subscribe(hearth::metrics::Metrics::new().expect("metrics"));
    let stats = Arc::new(hearth_engine::stats::Stats::default());
    events.subscribe(stats.clone() as Arc<dyn hearth_engine::EventSink>);
    events.subscribe(Arc::new(hearth::records::RecordSink(recorder.clone())));
    let cpu = process_cpu();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let per = calls / threads;
                for chunk in 0..per / 100 {
                    for _ in 0..100 {
                        let busy = stats.enter("examples", "hello", 1);
                        events_ns(&events, 1);
                        drop(busy);
                    }
                    // About 12,000 calls a second per thread, as at full
                    // speed (the queue would fill at full tilt).
                    if chunk % 10 == 9 {
                        std::thread::sleep(Duration::from_millis(80));
                    }
                }
            });
        }
    });
    rt.block_on(recorder.finish());
    (process_cpu() - cpu) / calls as f64 * 1e6
}

fn in_process() {
    for threads in [1, 2, 1, 2] {
        println!(
            "in-process: every sink, {threads} thread(s) at once: {:.2} µs of CPU per call (records written)",
            sinks_together(threads, 200_000)
        );
    }
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
    // Statistics: a call's entry and exit (calls in flight, peaks) and its
    // CallFinished added to the minute's aggregate.
    let stats = Arc::new(hearth_engine::stats::Stats::default());
    let counted = Events::new();
    counted.subscribe(stats.clone() as Arc<dyn hearth_engine::EventSink>);
    let stats_ns = |n: u32| {
        let began = Instant::now();
        for _ in 0..n {
            let busy = stats.enter("examples", "hello", 1);
            events_ns(&counted, 1);
            drop(busy);
        }
        began.elapsed().as_nanos() as f64 / f64::from(n)
    };
    stats_ns(calls / 10);
    let ns_stats = stats_ns(calls);
    println!(
        "in-process: statistics (entry, exit, aggregate) cost {:.3} µs per call",
        (ns_stats - ns_bare) / 1000.0
    );
    struct Build;
    impl hearth_engine::EventSink for Build {
        fn on_event(&self, event: &Event<'_>) {
            std::hint::black_box(hearth::records::record_of(event));
        }
    }
    let rec = Events::new();
    rec.subscribe(Arc::new(Build));
    events_ns(&rec, calls / 10);
    let ns_rec = events_ns(&rec, calls);
    println!(
        "in-process: making a call's record takes {:.3} µs",
        (ns_rec - ns_bare) / 1000.0
    );
}
