//! The walking skeleton end to end: a real daemon, real Python workers, a real
//! SQLite file, real HTTP on loopback, and the real CLI.

mod common;

use common::{alive, eventually, Daemon, FnDir};

const HELLO_V2: &str = "def handler(event, context):\n    return {\"greeting\": \"Hi, \" + event.get(\"name\", \"world\") + \"!\"}\n";

fn example(name: &str) -> String {
    common::repo()
        .join("examples/python")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn the_four_user_steps_through_the_cli_and_http() {
    let d = Daemon::start();

    // Step 2: deploy the example.
    let out = d.ok(&["deploy", &example("hello")]);
    assert!(
        out.contains("hello") && out.contains("version 1") && out.contains("live"),
        "{out}"
    );

    // Step 3: call it over HTTP and through the CLI.
    let reply = d.post("/fn/hello", r#"{"name":"Ada"}"#);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-hearth-version"), Some("1"));
    assert_eq!(reply.json(), serde_json::json!({"greeting": "Hello, Ada!"}));
    let printed = d.ok(&["invoke", "hello", "--data", r#"{"name":"Ada"}"#]);
    assert_eq!(printed.trim(), reply.text());

    // Step 4: change the code, deploy again: version 2 answers the next call.
    let changed = tempfile::tempdir().expect("tempdir");
    for f in ["hearth.toml", "main.py"] {
        std::fs::copy(
            common::repo().join("examples/python/hello").join(f),
            changed.path().join(f),
        )
        .expect("copy");
    }
    std::fs::write(changed.path().join("main.py"), HELLO_V2).expect("write");
    let out = d.ok(&[
        "deploy",
        changed.path().to_str().expect("path"),
        "-m",
        "say hi",
    ]);
    assert!(
        out.contains("version 2") && out.contains("was version 1"),
        "{out}"
    );
    let reply = d.post("/fn/hello", r#"{"name":"Ada"}"#);
    assert_eq!(reply.json(), serde_json::json!({"greeting": "Hi, Ada!"}));
    assert_eq!(reply.header("x-hearth-version"), Some("2"));

    // Both versions are listed, the live one marked.
    let versions = d.ok(&["versions", "hello"]);
    let live_rows: Vec<&str> = versions.lines().filter(|l| l.contains("* live")).collect();
    assert_eq!(live_rows.len(), 1, "{versions}");
    assert!(live_rows[0].trim_start().starts_with('2'), "{versions}");
    assert!(
        versions.lines().any(|l| l.trim_start().starts_with("1 ")),
        "{versions}"
    );
    assert!(versions.contains("say hi"), "{versions}");

    // Rollback makes 1 live again; publish --version 2 makes 2 live again.
    let out = d.ok(&["rollback", "hello"]);
    assert!(out.contains("version 1 is live"), "{out}");
    let reply = d.post("/fn/hello", r#"{"name":"Ada"}"#);
    assert_eq!(reply.json()["greeting"], "Hello, Ada!");
    assert_eq!(reply.header("x-hearth-version"), Some("1"));
    let out = d.ok(&["publish", "hello", "--version", "2"]);
    assert!(out.contains("version 2 is live"), "{out}");
    assert_eq!(
        d.post("/fn/hello", r#"{"name":"Ada"}"#).json()["greeting"],
        "Hi, Ada!"
    );

    // A given version can still be called directly.
    assert_eq!(
        d.post("/fn/hello@1", r#"{"name":"Ada"}"#).json()["greeting"],
        "Hello, Ada!"
    );

    // `hearth list` shows runtime, type, application, live version and state.
    let list = d.ok(&["list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("hello "))
        .unwrap_or_else(|| panic!("{list}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..6],
        &["hello", "python", "function", "examples", "2", "live"],
        "{list}"
    );

    // The release history records all of it.
    let history = d.get("/api/v1/functions/hello/releases").json();
    let actions: Vec<(String, u64)> = history["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("").to_owned(),
                r["version"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("publish".into(), 2),
            ("rollback".into(), 1),
            ("publish".into(), 2),
            ("publish".into(), 1)
        ]
    );
}

#[test]
fn identical_code_does_not_make_a_new_version() {
    let d = Daemon::start();
    d.ok(&["deploy", &example("hello")]);
    let out = d.ok(&["deploy", &example("hello")]);
    assert!(
        out.contains("unchanged") && out.contains("version 1"),
        "{out}"
    );
    let versions = d.get("/api/v1/functions/hello/versions").json();
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1));
}

#[test]
fn rollback_walks_back_and_stops_at_the_first_release() {
    let d = Daemon::start();
    let f = FnDir::python("steps", "def handler(e):\n    return 1\n");
    d.ok(&["deploy", f.path()]);
    f.write("main.py", "def handler(e):\n    return 2\n");
    d.ok(&["deploy", f.path()]);
    f.write("main.py", "def handler(e):\n    return 3\n");
    d.ok(&["deploy", f.path()]);
    assert_eq!(d.post("/fn/steps", "{}").json(), 3);
    d.ok(&["rollback", "steps"]);
    assert_eq!(d.post("/fn/steps", "{}").json(), 2);
    d.ok(&["rollback", "steps"]);
    assert_eq!(d.post("/fn/steps", "{}").json(), 1);
    let err = d.fails(&["rollback", "steps"]);
    assert!(
        err.contains("no earlier version") && err.contains("hearth publish steps --version"),
        "{err}"
    );
    assert_eq!(d.post("/fn/steps", "{}").json(), 1);
}

#[test]
fn a_restarted_daemon_serves_what_it_stored() {
    let tmp = common::reachable_tempdir();
    let data = tmp.path().join("data");
    let mut d = Daemon::start_in(&data, &[], &[]);
    d.ok(&["deploy", &example("hello")]);
    assert!(d.stop(), "daemon did not stop cleanly");
    assert!(data.join("hearth.db").is_file());

    let d = Daemon::start_in(&data, &[], &[]);
    let reply = d.post("/fn/hello", r#"{"name":"again"}"#);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["greeting"], "Hello, again!");
}

#[test]
fn handlers_lambda_style_plain_async_and_with_files() {
    let d = Daemon::start();
    let lambda = FnDir::python(
        "ctx",
        "def handler(event, context):\n    return {\"id\": context.request_id, \"aws\": context.aws_request_id,\n            \"fn\": context.function_name, \"v\": context.function_version,\n            \"left\": context.get_remaining_time_in_millis() > 0}\n",
    );
    d.ok(&["deploy", lambda.path()]);
    let reply = common::http(&d.addr, "POST", "/fn/ctx", b"{}");
    let body = reply.json();
    assert_eq!(body["fn"], "ctx");
    assert_eq!(body["v"], 1);
    assert_eq!(body["left"], true);
    assert_eq!(body["id"], body["aws"]);
    assert_eq!(
        Some(body["id"].as_str().unwrap_or("")),
        reply.header("x-request-id")
    );

    let one = FnDir::python("one", "def handler(event):\n    return event\n");
    d.ok(&["deploy", one.path()]);
    // Object keys keep the order the function gave them.
    assert_eq!(
        d.post("/fn/one", r#"{"z":1,"a":{"y":2,"b":3}}"#).text(),
        r#"{"z":1,"a":{"y":2,"b":3}}"#
    );
    assert_eq!(
        d.post("/fn/one", r#"{"a":[1,2.5,null,true,"é"]}"#).json(),
        serde_json::json!({"a":[1,2.5,null,true,"é"]})
    );
    // An empty body is the empty event; GET passes the query string.
    assert_eq!(d.post("/fn/one", "").json(), serde_json::json!({}));
    assert_eq!(
        d.get("/fn/one?name=Ada%20L&x=1").json(),
        serde_json::json!({"name": "Ada L", "x": "1"})
    );

    let asynchronous = FnDir::python(
        "later",
        "import asyncio\n\nasync def handler(event, context):\n    await asyncio.sleep(0.01)\n    return {\"waited\": True}\n",
    );
    d.ok(&["deploy", asynchronous.path()]);
    assert_eq!(
        d.post("/fn/later", "{}").json(),
        serde_json::json!({"waited": true})
    );
    assert_eq!(
        d.post("/fn/later", "{}").json(),
        serde_json::json!({"waited": true})
    );

    let files = FnDir::new(
        "name = \"data\"\nruntime = \"python\"\nentry = \"pkg.lookup.handler\"\n",
        &[
            ("pkg/__init__.py", ""),
            (
                "pkg/lookup.py",
                "import json, os\nHERE = os.path.dirname(__file__)\n\ndef handler(event):\n    with open(os.path.join(HERE, 'table.json')) as f:\n        table = json.load(f)\n    with open('top.txt') as f:\n        top = f.read().strip()\n    return {\"value\": table[event['key']], \"top\": top}\n",
            ),
            ("pkg/table.json", "{\"a\": \"apple\"}"),
            ("top.txt", "from the version directory\n"),
        ],
    );
    d.ok(&["deploy", files.path()]);
    assert_eq!(
        d.post("/fn/data", r#"{"key":"a"}"#).json(),
        serde_json::json!({"value": "apple", "top": "from the version directory"})
    );
}

#[test]
fn a_worker_is_reused_and_the_pool_respects_max_workers() {
    let d = Daemon::start();
    let f = FnDir::python_with(
        "pids",
        "import os, time\n\ndef handler(event):\n    time.sleep(event.get('sleep', 0))\n    return os.getpid()\n",
        "[limits]\nmax_workers = 2\ntimeout_ms = 10000",
    );
    d.ok(&["deploy", f.path()]);
    let first = d.post("/fn/pids", "{}").json();
    for _ in 0..5 {
        assert_eq!(
            d.post("/fn/pids", "{}").json(),
            first,
            "sequential calls should reuse the warm worker"
        );
    }
    // Six concurrent calls on at most two workers: all answer, from ≤ 2 processes.
    let addr = d.addr.clone();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || common::http(&addr, "POST", "/fn/pids", br#"{"sleep":0.3}"#))
        })
        .collect();
    let mut pids = std::collections::HashSet::new();
    for h in handles {
        let reply = h.join().expect("thread");
        assert_eq!(reply.status, 200, "{}", reply.text());
        pids.insert(reply.json().as_u64().expect("pid"));
    }
    assert!(pids.len() <= 2, "more workers than max_workers: {pids:?}");
}

#[test]
fn output_on_stdout_and_stderr_is_logged_and_does_not_disturb_results() {
    let d = Daemon::start();
    let f = FnDir::python(
        "chatty",
        "import sys\n\ndef handler(event):\n    print('marker-out ' + 'x' * 100000)\n    for i in range(2000):\n        print('line', i)\n    sys.stderr.write('marker-err\\n')\n    return {'ok': True, 'n': event['n']}\n",
    );
    d.ok(&["deploy", f.path()]);
    for n in 0..3 {
        let reply = d.post("/fn/chatty", &format!("{{\"n\":{n}}}"));
        assert_eq!(reply.json(), serde_json::json!({"ok": true, "n": n}));
    }
    assert!(eventually(10, || d.log().contains("marker-err")
        && d.log().contains("marker-out")));
}

#[test]
fn the_daemon_stopping_ends_its_workers() {
    let mut d = Daemon::start();
    let f = FnDir::python(
        "pid",
        "import os\n\ndef handler(event):\n    return os.getpid()\n",
    );
    d.ok(&["deploy", f.path()]);
    let pid = d.post("/fn/pid", "{}").json().as_u64().expect("pid") as u32;
    assert!(alive(pid));
    assert!(d.stop());
    assert!(
        eventually(5, || !alive(pid)),
        "worker {pid} outlived the daemon"
    );
}

#[test]
fn each_call_gets_exactly_its_own_output_as_its_log() {
    let d = Daemon::start();
    let f = FnDir::python(
        "logs",
        "import sys\n\ndef handler(event):\n    n = event['n']\n    for i in range(event.get('lines', 3)):\n        print(f'call {n} line {i}')\n    sys.stderr.write(f'call {n} on stderr')\n    if event.get('fail'):\n        raise ValueError(f'call {n} failed')\n    return n\n",
    );
    d.ok(&["deploy", f.path()]);
    for n in 0..20 {
        let (reply, log) = d.post_logged("/fn/logs", &format!("{{\"n\":{n}}}"));
        assert_eq!(reply.json(), n);
        let expected = format!(
            "[stdout] call {n} line 0\n[stdout] call {n} line 1\n[stdout] call {n} line 2\n[stderr] call {n} on stderr\n"
        );
        assert_eq!(log, expected, "call {n}");
    }
    // A failing call's log comes with its error; a big log keeps its tail.
    let (reply, log) = d.post_logged("/fn/logs", r#"{"n":99,"fail":true}"#);
    assert_eq!(reply.status, 500);
    assert!(
        log.contains("call 99 line 2") && log.contains("[stderr] call 99 on stderr"),
        "{log}"
    );
    let (reply, log) = d.post_logged("/fn/logs", r#"{"n":7,"lines":20000}"#);
    assert_eq!(reply.json(), 7);
    assert!(
        log.len() <= 4096 && log.contains("more bytes not kept"),
        "{log}"
    );
    // Without the header, no log travels.
    assert!(d
        .post("/fn/logs", r#"{"n":1}"#)
        .header("x-hearth-log")
        .is_none());
    let out = d.cli(&["invoke", "logs", "--data", r#"{"n":5}"#, "--log"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    assert!(String::from_utf8_lossy(&out.stderr).contains("[stdout] call 5 line 1"));
}
