//! Several calls in flight on one Node worker (`limits.concurrency`).

mod common;

use common::{Daemon, FnDir};

fn node_fn(name: &str, code: &str, limits: &str) -> FnDir {
    FnDir::new(
        &format!(
            "name = \"{name}\"\nruntime = \"node\"\nentry = \"main.handler\"\n[limits]\n{limits}\n"
        ),
        &[("main.js", code)],
    )
}

#[test]
fn one_node_worker_serves_several_calls_at_once() {
    let d = Daemon::start();
    let f = node_fn(
        "conc",
        "exports.handler = async (e) => {\n  await new Promise((r) => setTimeout(r, e.ms));\n  if (e.fail) throw new Error('failed ' + e.i);\n  return { i: e.i, pid: process.pid };\n};\n",
        "max_workers = 1\nconcurrency = 4\ntimeout_ms = 5000",
    );
    d.ok(&["deploy", f.path()]);
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let addr = d.addr.clone();
            std::thread::spawn(move || {
                let body = format!(
                    r#"{{"i": {i}, "ms": {}, "fail": {}}}"#,
                    800 - i * 100,
                    i == 2
                );
                common::http(&addr, "POST", "/fn/conc", body.as_bytes())
            })
        })
        .collect();
    let replies: Vec<_> = calls.into_iter().map(|c| c.join().expect("call")).collect();
    let elapsed = started.elapsed();
    let mut pids = std::collections::HashSet::new();
    for (i, r) in replies.iter().enumerate() {
        if i == 2 {
            assert_eq!(r.status, 500, "{}", r.text());
            assert!(r.text().contains("failed 2"), "{}", r.text());
        } else {
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["i"], i as u64);
            pids.insert(r.json()["pid"].as_u64().expect("pid"));
        }
    }
    assert_eq!(pids.len(), 1, "one worker served them all: {pids:?}");
    // One at a time they would take 0.8 + 0.7 + 0.6 + 0.5 s.
    assert!(
        elapsed.as_secs_f64() < 2.2,
        "calls ran one after another: {elapsed:?}"
    );
    // A fifth and sixth call beyond the lanes wait for one to free up.
    let again = d.post("/fn/conc", r#"{"i": 9, "ms": 1}"#);
    assert_eq!(again.status, 200, "{}", again.text());
}

#[test]
fn a_late_call_stops_its_shared_worker_and_the_pool_recovers() {
    let d = Daemon::start();
    let f = node_fn(
        "conc-late",
        "exports.handler = async (e) => {\n  await new Promise((r) => setTimeout(r, e.ms));\n  return { pid: process.pid };\n};\n",
        "max_workers = 1\nconcurrency = 2\ntimeout_ms = 500",
    );
    d.ok(&["deploy", f.path()]);
    let late = d.post("/fn/conc-late", r#"{"ms": 3000}"#);
    assert_eq!(late.status, 504, "{}", late.text());
    assert!(common::eventually(10, || d
        .post("/fn/conc-late", r#"{"ms": 1}"#)
        .status
        == 200));
}

#[test]
fn python_calls_are_pipelined_one_after_another_on_one_worker() {
    let d = Daemon::start();
    let f = FnDir::python_with(
        "pipelined",
        "import os, time\ndef handler(e):\n    t = time.time()\n    time.sleep(e.get('s', 0))\n    return {'pid': os.getpid(), 'start': t, 'end': time.time()}\n",
        "[limits]\nmax_workers = 1\nconcurrency = 3\ntimeout_ms = 1500\n",
    );
    d.ok(&["deploy", f.path()]);
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let addr = d.addr.clone();
            std::thread::spawn(move || {
                common::http(&addr, "POST", "/fn/pipelined", br#"{"s": 0.3}"#)
            })
        })
        .collect();
    let mut runs: Vec<(f64, f64)> = Vec::new();
    let mut pids = std::collections::HashSet::new();
    for c in calls {
        let r = c.join().expect("call");
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        pids.insert(v["pid"].as_u64().expect("pid"));
        runs.push((
            v["start"].as_f64().expect("start"),
            v["end"].as_f64().expect("end"),
        ));
    }
    assert_eq!(pids.len(), 1, "one worker ran them: {pids:?}");
    // One after another: no two runs overlap.
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in runs.windows(2) {
        assert!(w[1].0 >= w[0].1 - 0.001, "runs overlap: {runs:?}");
    }
    // A call still waiting in the pipe when its deadline passes never ran:
    // 503, while the running one that overran gets 504.
    let addr = d.addr.clone();
    let slow =
        std::thread::spawn(move || common::http(&addr, "POST", "/fn/pipelined", br#"{"s": 3}"#));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let queued = d.post("/fn/pipelined", r#"{"s": 0}"#);
    let slow = slow.join().expect("slow call");
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert_eq!(queued.status, 503, "{}", queued.text());
    assert_eq!(queued.code(), "overloaded");
    assert!(common::eventually(10, || d
        .post("/fn/pipelined", "{}")
        .status
        == 200));
}

#[test]
fn calls_over_http2_share_one_connection() {
    // Node's HTTP/2 client: curl 7.88 on this machine errors ("HTTP2
    // framing layer") on the second request of a reused h2c connection,
    // where Node's client multiplexes without error.
    let d = Daemon::start();
    let f = FnDir::python(
        "h2",
        "def handler(event):\n    return {'n': event.get('n')}\n",
    );
    d.ok(&["deploy", f.path()]);
    let script = r#"
const http2 = require('http2');
const c = http2.connect('http://' + process.argv[1]);
const N = 20; let done = 0; const seen = [];
for (let i = 0; i < N; i++) {
  const req = c.request({ ':method': 'POST', ':path': '/fn/h2', 'content-type': 'application/json' });
  let status = 0, body = '';
  req.on('response', (h) => { status = h[':status']; });
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    seen.push(status + ' ' + body);
    if (++done === N) { console.log(seen.sort().join('\n')); c.close(); }
  });
  req.on('error', (e) => { console.log('error ' + e.message); process.exit(1); });
  req.end(JSON.stringify({ n: i }));
}
"#;
    let out = std::process::Command::new("node")
        .args(["-e", script, &d.addr])
        .env_remove("NODE_EXTRA_CA_CERTS")
        .output()
        .expect("node");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        20,
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..20 {
        assert!(text.contains(&format!("200 {{\"n\":{i}}}")), "{text}");
    }
}

#[test]
fn a_call_alone_on_a_shared_worker_keeps_its_own_log() {
    let d = Daemon::start();
    let f = node_fn(
        "conc-log",
        "exports.handler = async (e) => {\n  console.log('start ' + e.i);\n  await new Promise((r) => setTimeout(r, e.ms));\n  console.log('end ' + e.i);\n  return e.i;\n};\n",
        "max_workers = 1",
    );
    d.ok(&["deploy", f.path()]);
    // Node's default: 4 calls at once per worker.
    for i in 0..3 {
        let (reply, log) = d.post_logged("/fn/conc-log", &format!(r#"{{"i": {i}, "ms": 1}}"#));
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(log, format!("[stdout] start {i}\n[stdout] end {i}\n"));
    }
    // Two at once on the one worker: neither can claim the output.
    let addr = d.addr.clone();
    let other = std::thread::spawn(move || {
        common::http(&addr, "POST", "/fn/conc-log", br#"{"i": 8, "ms": 300}"#)
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (reply, log) = d.post_logged("/fn/conc-log", r#"{"i": 9, "ms": 1}"#);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(log.contains("at the same time"), "{log}");
    assert_eq!(other.join().expect("other").status, 200);
}

#[test]
fn a_client_that_hangs_up_mid_call_does_not_cost_the_worker() {
    use std::io::Write as _;
    let d = Daemon::start();
    let f = FnDir::python_with(
        "hangup",
        "import os, time\ndef handler(e):\n    time.sleep(e.get('s', 0))\n    return os.getpid()\n",
        "[limits]\nmax_workers = 1\n",
    );
    d.ok(&["deploy", f.path()]);
    let pid = d.post("/fn/hangup", "{}").json();
    let started = |d: &Daemon| {
        d.get("/api/v1/workers").json()["pools"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["function"] == "hangup"))
            .map(|p| p["started"].clone())
    };
    let before = started(&d);
    let body = r#"{"s": 0.5}"#;
    let mut s = std::net::TcpStream::connect(&d.addr).expect("connect");
    write!(
        s,
        "POST /fn/hangup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    std::thread::sleep(std::time::Duration::from_millis(100));
    drop(s); // hang up while the function runs
    std::thread::sleep(std::time::Duration::from_millis(600));
    // The same worker answers the next call; none was started meanwhile.
    let again = d.post("/fn/hangup", "{}");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json(), pid);
    assert_eq!(started(&d), before);
}
