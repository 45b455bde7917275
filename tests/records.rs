//! Call records: one per call with exactly its own output, the truncation
//! mark, retention, `hearth logs` / `hearth calls`, the follow stream, a
//! full record queue, and request ids in every error body.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{eventually, Daemon, FnDir};
use serde_json::Value;

/// The record of `request_id`, once written.
fn record(d: &Daemon, request_id: &str) -> Value {
    let mut got = Value::Null;
    let found = eventually(20, || {
        let r = d.get(&format!("/api/v1/calls/{request_id}"));
        if r.status == 200 {
            got = r.json();
            true
        } else {
            false
        }
    });
    assert!(found, "no record of {request_id}:\n{}", d.log());
    got
}

fn lines_of(record: &Value) -> Vec<(String, String)> {
    record["log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|l| {
            (
                l["stream"].as_str().unwrap_or("").to_owned(),
                l["text"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

const PRINTER: &str = "import sys\n\ndef handler(event):\n    tag = event['tag']\n    for i in range(event.get('n', 2)):\n        print(f'out {tag} {i}')\n        print(f'err {tag} {i}', file=sys.stderr)\n    return {'tag': tag}\n";

#[test]
fn each_call_has_exactly_its_own_lines() {
    let d = Daemon::start();
    let f = FnDir::python("printer", PRINTER);
    d.ok(&["deploy", f.path()]);
    let mut ids = Vec::new();
    for tag in ["a", "b", "c"] {
        let r = d.post("/fn/printer", &format!(r#"{{"tag": "{tag}"}}"#));
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push((
            tag,
            r.header("x-request-id").expect("request id").to_owned(),
        ));
    }
    for (tag, id) in &ids {
        let rec = record(&d, id);
        assert_eq!(rec["function"], "printer");
        assert_eq!(rec["version"], 1);
        assert_eq!(rec["outcome"], "ok");
        assert_eq!(rec["status"], 200);
        assert_eq!(rec["caller"], "http");
        assert!(rec["pid"].as_u64().is_some(), "{rec}");
        assert_eq!(rec["bytes_in"], format!(r#"{{"tag": "{tag}"}}"#).len());
        assert_eq!(rec["bytes_out"], format!(r#"{{"tag":"{tag}"}}"#).len());
        assert_eq!(rec["log_truncated"], false);
        let want: Vec<(String, String)> = (0..2)
            .flat_map(|i| {
                [
                    ("stdout".to_owned(), format!("out {tag} {i}")),
                    ("stderr".to_owned(), format!("err {tag} {i}")),
                ]
            })
            .collect();
        let mut got = lines_of(&rec);
        // Each stream in its own order (the two pipes are read apart).
        got.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(got, want_sorted, "{rec}");
        for (stream, text) in &want {
            let lines = lines_of(&rec);
            let per_stream: Vec<_> = lines.iter().filter(|(s, _)| s == stream).collect();
            let wanted: Vec<_> = want.iter().filter(|(s, _)| s == stream).collect();
            assert_eq!(per_stream, wanted, "order of {stream} ({text})");
        }
    }
    // `hearth logs` shows each line with its request id and stream, and a
    // REPORT line per call.
    let text = d.ok(&["logs", "printer"]);
    for (tag, id) in &ids {
        assert!(text.contains(&format!("{id} stdout out {tag} 0")), "{text}");
        assert!(text.contains(&format!("{id} stderr err {tag} 1")), "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("{id} REPORT v1 ok status 200"))),
            "{text}"
        );
    }
    let first = text.lines().find(|l| l.contains("REPORT")).unwrap_or("");
    assert!(first.contains("peak memory"), "{first}");
    // --request and -o json pick one call.
    let one = d.ok(&["logs", "printer", "--request", &ids[1].1, "-o", "json"]);
    let lines: Vec<&str> = one.lines().collect();
    assert_eq!(lines.len(), 1, "{one}");
    let parsed: Value = serde_json::from_str(lines[0]).expect("json record");
    assert_eq!(parsed["request_id"], ids[1].1.as_str());
    // `hearth calls` lists them, newest first.
    let table = d.ok(&["calls", "printer"]);
    let pos = |id: &str| table.find(id).unwrap_or(usize::MAX);
    assert!(
        pos(&ids[2].1) < pos(&ids[1].1) && pos(&ids[1].1) < pos(&ids[0].1),
        "{table}"
    );
}

#[test]
fn errors_are_recorded_with_their_outcome_and_filtered_by_status() {
    let d = Daemon::start();
    let f = FnDir::python(
        "flaky",
        "def handler(event):\n    print('about to', event['what'])\n    if event['what'] == 'fail':\n        raise ValueError('asked to')\n    return 1\n",
    );
    d.ok(&["deploy", f.path()]);
    let ok = d.post("/fn/flaky", r#"{"what": "work"}"#);
    let bad = d.post("/fn/flaky", r#"{"what": "fail"}"#);
    assert_eq!(bad.status, 500);
    let bad_id = bad.header("x-request-id").expect("id").to_owned();
    assert_eq!(bad.json()["error"]["request_id"], bad_id.as_str());
    let rec = record(&d, &bad_id);
    assert_eq!(rec["outcome"], "function_error");
    assert_eq!(rec["error"], "ValueError");
    assert_eq!(lines_of(&rec), [("stdout".into(), "about to fail".into())]);
    record(&d, ok.header("x-request-id").expect("id"));
    let errors = d.get("/api/v1/functions/flaky/calls?status=error").json();
    let calls = errors["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{errors}");
    assert_eq!(calls[0]["request_id"], bad_id.as_str());
    let bad_filter = d.get("/api/v1/functions/flaky/calls?status=maybe");
    assert_eq!(bad_filter.status, 400, "{}", bad_filter.text());
    assert!(bad_filter.json()["error"]["request_id"].is_string());
    let missing = d.get("/api/v1/calls/no-such-call");
    assert_eq!(missing.code(), "call_not_found");
    let nofn = d.get("/api/v1/functions/nothing/calls");
    assert_eq!(nofn.code(), "function_not_found");
}

#[test]
fn every_error_body_names_its_request() {
    let d = Daemon::start();
    for (method, path) in [
        ("POST", "/fn/missing"),
        ("POST", "/fn/bad@@name"),
        ("PUT", "/fn/missing"),
        ("GET", "/nowhere"),
        ("GET", "/api/v1/functions/missing"),
    ] {
        let r = common::http(&d.addr, method, path, b"{}");
        assert!(r.status >= 400, "{method} {path}: {}", r.status);
        let id = r.header("x-request-id").expect("x-request-id").to_owned();
        assert_eq!(
            r.json()["error"]["request_id"],
            id.as_str(),
            "{method} {path}: {}",
            r.text()
        );
    }
}

#[test]
fn output_past_the_cap_is_marked_with_the_bytes_dropped() {
    let d = Daemon::start_with(&["--records-max-output-kb", "1"], &[]);
    let f = FnDir::python(
        "loud",
        "def handler(event):\n    for i in range(100):\n        print('x' * 99)\n    return 0\n",
    );
    d.ok(&["deploy", f.path()]);
    let r = d.post("/fn/loud", "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = record(&d, r.header("x-request-id").expect("id"));
    // 100 lines of 100 bytes; 1 KiB keeps 10 of them.
    assert_eq!(rec["log"].as_array().map(Vec::len), Some(10), "{rec}");
    assert_eq!(rec["log_truncated"], true);
    assert_eq!(rec["log_dropped_bytes"], 90 * 100);
    let text = d.ok(&["logs", "loud"]);
    assert!(
        text.contains("output truncated: 9000 bytes dropped"),
        "{text}"
    );
}

#[test]
fn retention_keeps_the_newest_records_within_the_bytes_per_function() {
    let d = Daemon::start_with(&["--records-max-bytes-per-function", "6000"], &[]);
    let f = FnDir::python(
        "big",
        "def handler(event):\n    print('y' * 1000)\n    return event['i']\n",
    );
    d.ok(&["deploy", f.path()]);
    let mut ids = Vec::new();
    for i in 0..12 {
        let r = d.post("/fn/big", &format!(r#"{{"i": {i}}}"#));
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.header("x-request-id").expect("id").to_owned());
    }
    // The newest is kept, the oldest went.
    record(&d, &ids[11]);
    assert!(
        eventually(20, || d.get(&format!("/api/v1/calls/{}", ids[0])).status
            == 404),
        "the oldest record outlived the size limit"
    );
    let list = d.get("/api/v1/functions/big/calls").json();
    let kept = list["calls"].as_array().expect("calls").len();
    assert!(
        (2..12).contains(&kept),
        "{kept} kept of 12 (~1.3 KB each, 6000 bytes allowed)"
    );
}

#[test]
fn retention_removes_records_past_their_age() {
    let d = Daemon::start_with(&["--records-max-age", "2s"], &[]);
    let f = FnDir::python("brief", "def handler(event):\n    return 1\n");
    d.ok(&["deploy", f.path()]);
    let r = d.post("/fn/brief", "{}");
    let id = r.header("x-request-id").expect("id").to_owned();
    record(&d, &id);
    assert!(
        eventually(30, || d.get(&format!("/api/v1/calls/{id}")).status == 404),
        "a record older than records.max_age stayed"
    );
}

#[test]
fn follow_sees_a_call_made_after_it_started() {
    let d = Daemon::start();
    let f = FnDir::python("printer", PRINTER);
    d.ok(&["deploy", f.path()]);
    let mut follow = Command::new(common::BIN)
        .args(["logs", "printer", "-f", "-o", "json"])
        .env("HEARTH_ADDR", &d.addr)
        .env("HEARTH_DATA", &d.data)
        .env_remove("HEARTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hearth logs -f");
    let mut err = BufReader::new(follow.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    assert!(line.starts_with("following printer"), "{line}");
    let r = d.post("/fn/printer", r#"{"tag": "late", "n": 1}"#);
    let id = r.header("x-request-id").expect("id").to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follow.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("a record on the follow stream");
    let _ = follow.kill();
    let _ = follow.wait();
    let rec: Value = serde_json::from_str(&got).expect("json");
    assert_eq!(rec["request_id"], id.as_str());
    assert_eq!(
        lines_of(&rec).len(),
        2,
        "its two lines, one per stream: {rec}"
    );
}

#[test]
fn a_full_record_queue_drops_and_counts_but_never_fails_a_call() {
    let d = Daemon::start_with(&["--records-queue-size", "1"], &[]);
    let f = FnDir::python("quick", "def handler(event):\n    return event['i']\n");
    d.ok(&["deploy", f.path()]);
    let db = d.data.join("calls.db");
    // Hold the records store's write lock: the writer waits on it, the
    // queue (of one) fills, and further records are dropped.
    let mut lock = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\nsys.stdin.read()\nc.execute('COMMIT')\n",
        ])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = BufReader::new(lock.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "locked");
    let calls = 10;
    for i in 0..calls {
        let r = d.post("/fn/quick", &format!(r#"{{"i": {i}}}"#));
        assert_eq!(
            r.status,
            200,
            "a full record queue failed a call: {}",
            r.text()
        );
        assert_eq!(r.json(), i);
    }
    // Release the lock: what was queued is written.
    drop(lock.stdin.take());
    let _ = lock.wait();
    let mut list = Value::Null;
    // At most two records were in hand (one being written, one queued):
    // once both are written (one after the other), every record is kept or
    // counted.
    let count = |list: &Value| {
        (
            list["calls"].as_array().map_or(0, Vec::len) as u64,
            list["dropped"].as_u64().unwrap_or(0),
        )
    };
    let all_there = eventually(30, || {
        list = d.get("/api/v1/functions/quick/calls").json();
        let (kept, dropped) = count(&list);
        kept + dropped >= calls
    });
    let (kept, dropped) = count(&list);
    assert!(
        all_there,
        "not every record kept or counted: {list}\n{}",
        d.log()
    );
    assert!(kept >= 1, "nothing written after the lock went: {list}");
    assert!(kept <= 2, "{kept} kept with a queue of 1");
    assert_eq!(
        kept + dropped,
        calls,
        "every record kept or counted: {list}"
    );
    assert!(d.log().contains("call record queue full"), "{}", d.log());
}

#[test]
fn concurrent_calls_on_one_node_worker_never_get_each_others_lines() {
    let d = Daemon::start();
    let f = FnDir::new(
        "name = \"chat\"\nruntime = \"node\"\nentry = \"main.handler\"\n[limits]\nmax_workers = 1\nconcurrency = 4\ntimeout_ms = 5000\n",
        &[(
            "main.js",
            "exports.handler = async (e) => {\n  for (let i = 0; i < 3; i++) {\n    console.log(`line ${e.tag} ${i}`);\n    await new Promise((r) => setTimeout(r, 30));\n  }\n  return { tag: e.tag };\n};\n",
        )],
    );
    d.ok(&["deploy", f.path()]);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let addr = d.addr.clone();
            std::thread::spawn(move || {
                let r = common::http(
                    &addr,
                    "POST",
                    "/fn/chat",
                    format!(r#"{{"tag": "t{i}"}}"#).as_bytes(),
                );
                (format!("t{i}"), r)
            })
        })
        .collect();
    for t in threads {
        let (tag, r) = t.join().expect("call");
        assert_eq!(r.status, 200, "{}", r.text());
        let rec = record(&d, r.header("x-request-id").expect("id"));
        for (_, text) in lines_of(&rec) {
            assert!(
                text.starts_with(&format!("line {tag} ")),
                "{tag}'s record holds another call's line: {text}"
            );
        }
        // A line that cannot be told to be this call's is left out, and
        // the record says so.
        if lines_of(&rec).len() < 3 {
            assert_eq!(rec["log_unattributed"], true, "{rec}");
        }
    }
}

/// The phases of a call that reached a worker: it ran, and a cold start
/// says how its worker came.
fn assert_phases(rec: &Value) {
    let timing = &rec["timing"];
    assert!(
        timing["run_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{rec}"
    );
    assert!(timing["queue_ms"].as_f64().is_some(), "{rec}");
    match timing["start"].as_str() {
        Some("warm") => {}
        Some("fresh") => {
            assert!(
                timing["spawn_ms"].as_f64().is_some_and(|ms| ms > 0.0),
                "{rec}"
            );
            assert!(
                timing["load_ms"].as_f64().is_some_and(|ms| ms > 0.0),
                "{rec}"
            );
        }
        Some("generic") => {
            assert!(
                timing["load_ms"].as_f64().is_some_and(|ms| ms > 0.0),
                "{rec}"
            );
        }
        other => panic!("start {other:?}: {rec}"),
    }
}

#[test]
fn a_timed_out_call_keeps_what_it_printed_before_the_deadline() {
    let d = Daemon::start();
    let f = FnDir::python_with(
        "sleepy",
        "import sys, time\n\ndef handler(event):\n    print('first ' + event['tag'])\n    print('second ' + event['tag'], file=sys.stderr)\n    time.sleep(60)\n    return 0\n",
        "[limits]\ntimeout_ms = 2000\n",
    );
    d.ok(&["deploy", f.path()]);
    let r = d.post("/fn/sleepy", r#"{"tag": "t1"}"#);
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.code(), "timeout");
    let rec = record(&d, r.header("x-request-id").expect("id"));
    assert_eq!(rec["outcome"], "timeout", "{rec}");
    assert_eq!(rec["status"], 504, "{rec}");
    assert_eq!(
        lines_of(&rec)
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        [
            ("stderr".to_owned(), "second t1".to_owned()),
            ("stdout".to_owned(), "first t1".to_owned()),
        ]
        .into_iter()
        .collect(),
        "{rec}"
    );
    assert_eq!(rec["log_truncated"], false);
    assert!(rec["pid"].as_u64().is_some_and(|p| p > 0), "{rec}");
    assert_phases(&rec);
}

#[test]
fn a_crashed_python_call_keeps_its_last_lines() {
    let d = Daemon::start();
    let f = FnDir::python(
        "crasher",
        "import os, sys\n\ndef handler(event):\n    print('working on ' + event['tag'])\n    print('Traceback: giving up on ' + event['tag'], file=sys.stderr)\n    sys.stderr.flush()\n    os._exit(3)\n",
    );
    d.ok(&["deploy", f.path()]);
    let r = d.post("/fn/crasher", r#"{"tag": "c1"}"#);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.code(), "worker_died");
    let rec = record(&d, r.header("x-request-id").expect("id"));
    assert_eq!(rec["outcome"], "worker_died", "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .is_some_and(|e| e.contains("exited with status 3")),
        "{rec}"
    );
    let lines = lines_of(&rec);
    assert!(
        lines.contains(&("stderr".into(), "Traceback: giving up on c1".into())),
        "{rec}"
    );
    assert!(
        lines.contains(&("stdout".into(), "working on c1".into())),
        "{rec}"
    );
    assert_eq!(lines.len(), 2, "{rec}");
    assert!(rec["pid"].as_u64().is_some_and(|p| p > 0), "{rec}");
    assert_phases(&rec);
}

#[test]
fn a_crashed_node_call_keeps_what_it_printed_before_exiting() {
    let d = Daemon::start();
    let f = FnDir::new(
        "name = \"quitter\"\nruntime = \"node\"\nentry = \"main.handler\"\n",
        &[(
            "main.js",
            "exports.handler = (e) => {\n  console.log(`leaving ${e.tag}`);\n  console.error(`bye ${e.tag}`);\n  process.exit(4);\n};\n",
        )],
    );
    d.ok(&["deploy", f.path()]);
    let r = d.post("/fn/quitter", r#"{"tag": "n1"}"#);
    assert_eq!(r.code(), "worker_died", "{}", r.text());
    let rec = record(&d, r.header("x-request-id").expect("id"));
    assert_eq!(rec["outcome"], "worker_died", "{rec}");
    let lines = lines_of(&rec);
    assert!(
        lines.contains(&("stdout".into(), "leaving n1".into())),
        "{rec}"
    );
    assert!(lines.contains(&("stderr".into(), "bye n1".into())), "{rec}");
    assert!(rec["pid"].as_u64().is_some(), "{rec}");
    assert_phases(&rec);
}

#[test]
fn pipelined_python_calls_never_get_each_others_lines() {
    let d = Daemon::start();
    let f = FnDir::python_with(
        "piped",
        "import sys, time\n\ndef handler(event):\n    for i in range(3):\n        print('line %s %d' % (event['tag'], i))\n        print('err %s %d' % (event['tag'], i), file=sys.stderr)\n        time.sleep(0.01)\n    return event['tag']\n",
        "[limits]\nmax_workers = 1\nconcurrency = 4\ntimeout_ms = 20000\n",
    );
    d.ok(&["deploy", f.path()]);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let addr = d.addr.clone();
            std::thread::spawn(move || {
                let tag = format!("tok{i}x");
                let r = common::http(
                    &addr,
                    "POST",
                    "/fn/piped",
                    format!(r#"{{"tag": "{tag}"}}"#).as_bytes(),
                );
                (tag, r)
            })
        })
        .collect();
    let mut answered = 0;
    for t in threads {
        let (tag, r) = t.join().expect("call");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json(), tag.as_str());
        answered += 1;
        let rec = record(&d, r.header("x-request-id").expect("id"));
        let lines = lines_of(&rec);
        for (_, text) in &lines {
            // Every line names its call's token, and no other's.
            assert!(
                text.split(' ').nth(1) == Some(tag.as_str()),
                "{tag}'s record holds another call's line: {text}"
            );
        }
        // What is kept is all of it; a call whose lines could not be told
        // apart from another's has none, and says so.
        if lines.len() < 6 {
            assert!(lines.is_empty(), "{rec}");
            assert_eq!(rec["log_unattributed"], true, "{rec}");
        }
    }
    assert_eq!(answered, 8);
}
