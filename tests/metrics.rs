//! Prometheus metrics at `GET /metrics`: the text passes `promtool check
//! metrics`, its counters match the calls made (by outcome, rejections,
//! cold starts), a function left with no pool loses its series, and the
//! route needs a token with scope `read`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use common::{eventually, http_anon, Daemon, FnDir};

/// `GET /metrics` with the daemon's admin token.
fn scrape(d: &Daemon) -> String {
    let auth = format!("Bearer {}", d.token);
    let r = http_anon(&d.addr, "GET", "/metrics", b"", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.headers
    );
    r.text()
}

/// The labels and value of each sample of `name`.
fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text, name)
        .into_iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

/// `promtool check metrics` on the text; None when promtool is missing.
fn promtool(text: &str) -> Option<(bool, String)> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "skipping the promtool check: cannot run promtool ({e}); install it with `apt-get install prometheus` (scripts/setup --deps does)"
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// A Python function: raises for `fail`, sleeps for `sleep`, and for
/// `hold` connects to that port and answers once the test sends a byte.
const COUNTED: &str = r#"import socket, time

def handler(event):
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("hold"):
        s = socket.create_connection(("127.0.0.1", event["hold"]))
        s.sendall(b"!")
        s.recv(1)
        s.close()
    return "done"
"#;

#[test]
fn counters_match_the_calls_made_and_promtool_accepts_the_text() {
    let d = Daemon::start();
    let f = FnDir::python_with("counted", COUNTED, "[limits]\ntimeout_ms = 1500");
    d.ok(&["deploy", f.path()]);
    // One worker, no queue, all the time it needs.
    let held_fn = FnDir::python_with(
        "held",
        COUNTED,
        "[limits]\nmax_workers = 1\nmax_queue = 0\ntimeout_ms = 120000\nnetwork = true",
    );
    d.ok(&["deploy", held_fn.path()]);
    for _ in 0..5 {
        assert_eq!(d.post("/fn/counted", "{}").status, 200);
    }
    for _ in 0..3 {
        let r = d.post("/fn/counted", r#"{"fail":true}"#);
        assert_eq!(r.code(), "function_error", "{}", r.text());
    }
    let r = d.post("/fn/counted", r#"{"sleep":10}"#);
    assert_eq!(r.code(), "timeout", "{}", r.text());

    // One call holds the only worker (until the test lets it go); with no
    // queue, the next one is refused at admission.
    let hold = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = hold.local_addr().expect("port").port();
    let addr = d.addr.clone();
    let held = std::thread::spawn(move || {
        common::http(
            &addr,
            "POST",
            "/fn/held",
            format!(r#"{{"hold":{port}}}"#).as_bytes(),
        )
    });
    let (mut conn, _) = hold.accept().expect("the held call connects");
    let mut byte = [0u8; 1];
    conn.read_exact(&mut byte)
        .expect("the held call is running");
    let refused = d.post("/fn/held", "{}");
    assert_eq!(
        (refused.status, refused.code()),
        (429, "queue_full".to_owned()),
        "{}",
        refused.text()
    );
    // While it runs: one call in flight, one busy worker.
    let during = scrape(&d);
    assert_eq!(
        value(&during, "hearth_inflight", &[("function", "held")]),
        1.0
    );
    assert_eq!(
        value(
            &during,
            "hearth_workers",
            &[("function", "held"), ("state", "busy")]
        ),
        1.0
    );
    conn.write_all(b"!").expect("let the held call finish");
    assert_eq!(held.join().expect("thread").status, 200);

    let text = scrape(&d);
    let calls = |function: &str, outcome: &str| {
        value(
            &text,
            "hearth_invocations_total",
            &[("function", function), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("counted", "ok"), 5.0, "{text}");
    assert_eq!(calls("counted", "function_error"), 3.0, "{text}");
    assert_eq!(calls("counted", "timeout"), 1.0, "{text}");
    assert_eq!(calls("held", "ok"), 1.0, "{text}");
    assert_eq!(calls("held", "queue_full"), 1.0, "{text}");
    assert_eq!(
        value(
            &text,
            "hearth_invocation_duration_seconds_count",
            &[("function", "counted")]
        ),
        9.0,
        "every call is in the duration histogram: {text}"
    );
    assert_eq!(
        value(
            &text,
            "hearth_rejected_total",
            &[("function", "held"), ("reason", "queue_full")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "hearth_rejected_total", &[("function", "counted")]),
        0.0,
        "{text}"
    );
    // Every call admitted to a worker slot waited (if only 0 s) once; the
    // refused one never was.
    assert_eq!(
        value(
            &text,
            "hearth_queue_wait_seconds_count",
            &[("function", "counted")]
        ),
        9.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "hearth_queue_wait_seconds_count",
            &[("function", "held")]
        ),
        1.0,
        "{text}"
    );
    // The timed-out worker was stopped: one exit, reason timeout.
    assert_eq!(
        value(
            &text,
            "hearth_worker_exits_total",
            &[("runtime", "python"), ("reason", "timeout")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "hearth_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(
        value(&text, "hearth_call_records_dropped_total", &[]),
        0.0,
        "registered at 0: {text}"
    );
    assert!(value(&text, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(value(&text, "process_open_fds", &[]) > 0.0);
    assert!(value(&text, "process_start_time_seconds", &[]) > 0.0);
    let request_id = refused.json()["error"]["request_id"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(!request_id.is_empty(), "{}", refused.text());
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("request_id") && !line.contains(&request_id),
            "no request ids in labels: {line}"
        );
    }
    if let Some((ok, why)) = promtool(&text) {
        assert!(ok, "promtool check metrics refused the text: {why}\n{text}");
    }
}

#[test]
fn cold_starts_are_counted_and_a_function_left_with_no_pool_loses_its_series() {
    // Pools no longer routed end at once; gc keeps one version.
    let d = Daemon::start_with(
        &[
            "--drain-grace",
            "0",
            "--keep-versions",
            "1",
            "--gc-interval",
            "0",
        ],
        &[],
    );
    let stays = FnDir::python("stays", "def handler(event):\n    return 1\n");
    d.ok(&["deploy", stays.path()]);
    assert_eq!(d.post("/fn/stays", "{}").status, 200);

    // A draft: its deploy's worker goes at once, so its first call starts one.
    let draft = |n: u32| FnDir::python("draft", &format!("def handler(event):\n    return {n}\n"));
    let v1 = draft(1);
    d.ok(&["deploy", "--no-publish", v1.path()]);
    let no_pool = |d: &Daemon| {
        d.get("/api/v1/workers").json()["pools"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["function"] != "draft"))
    };
    assert!(
        eventually(20, || no_pool(&d)),
        "the draft's pool is retired"
    );
    for _ in 0..3 {
        assert_eq!(d.post("/fn/draft@1", "{}").json(), 1);
    }
    let text = scrape(&d);
    assert_eq!(
        value(&text, "hearth_cold_starts_total", &[("function", "draft")]),
        1.0,
        "one cold start for three calls: {text}"
    );
    let kinds: Vec<String> = samples(&text, "hearth_cold_starts_total")
        .into_iter()
        .filter(|(l, _)| l.get("function").map(String::as_str) == Some("draft"))
        .filter_map(|(l, _)| Some(format!("{}/{}", l.get("runtime")?, l.get("kind")?)))
        .collect();
    assert!(
        kinds == ["python/generic"] || kinds == ["python/fresh"],
        "{kinds:?}"
    );
    assert!(
        value(
            &text,
            "hearth_cold_start_phase_seconds_count",
            &[("runtime", "python"), ("phase", "load")]
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "hearth_invocations_total",
            &[("function", "draft"), ("outcome", "ok")]
        ),
        3.0
    );

    // A second draft, and gc removes the first with its pool: no pool of
    // `draft` is left, and its series go.
    let v2 = draft(2);
    d.ok(&["deploy", "--no-publish", v2.path()]);
    let gc = d.post("/api/v1/gc", "{}");
    assert_eq!(gc.status, 200, "{}", gc.text());
    assert!(eventually(20, || no_pool(&d)), "no pool of draft is left");
    assert!(
        eventually(20, || !scrape(&d).contains("function=\"draft\"")),
        "the series of a function with no pool go: {}",
        scrape(&d)
    );
    let text = scrape(&d);
    assert_eq!(
        value(
            &text,
            "hearth_invocations_total",
            &[("function", "stays"), ("outcome", "ok")]
        ),
        1.0,
        "a live function keeps its series: {text}"
    );
    if let Some((ok, why)) = promtool(&text) {
        assert!(ok, "promtool check metrics refused the text: {why}\n{text}");
    }
}

#[test]
fn metrics_need_a_token_with_scope_read() {
    let d = Daemon::start();
    let none = http_anon(&d.addr, "GET", "/metrics", b"", &[]);
    assert_eq!((none.status, none.code()), (401, "unauthorized".to_owned()));
    assert!(none.text().contains("scope read"), "{}", none.text());
    let token = |scope: &str| {
        let out = d.ok(&["token", "create", "--name", scope, "--scope", scope]);
        out.lines().last().unwrap_or("").trim().to_owned()
    };
    let read = format!("Bearer {}", token("read"));
    let r = http_anon(&d.addr, "GET", "/metrics", b"", &[("Authorization", &read)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("hearth_build_info"));
    let invoke = format!("Bearer {}", token("invoke"));
    let r = http_anon(
        &d.addr,
        "GET",
        "/metrics",
        b"",
        &[("Authorization", &invoke)],
    );
    assert_eq!(
        (r.status, r.code()),
        (403, "forbidden".to_owned()),
        "{}",
        r.text()
    );
}

#[test]
fn with_metrics_off_the_route_says_how_to_turn_them_on() {
    let d = Daemon::start_with(&["--no-metrics"], &[]);
    let auth = format!("Bearer {}", d.token);
    let r = http_anon(&d.addr, "GET", "/metrics", b"", &[("Authorization", &auth)]);
    assert_eq!((r.status, r.code()), (404, "route_not_found".to_owned()));
    assert!(r.text().contains("[metrics] enabled"), "{}", r.text());
}
