//! Bad input gets a clear error and loses nothing.

mod common;

use common::{alive, eventually, Daemon, FnDir};

fn deploy_hello(d: &Daemon) {
    let hello = common::repo().join("examples/python/hello");
    d.ok(&["deploy", hello.to_str().expect("path")]);
}

#[test]
fn malformed_json_is_400_and_names_the_problem() {
    let d = Daemon::start();
    deploy_hello(&d);
    let reply = d.post("/fn/hello", "{\"name\": ");
    assert_eq!(reply.status, 400);
    let body = reply.json();
    assert_eq!(body["error"]["code"], "bad_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("not valid JSON"),
        "{body}"
    );
    assert!(!body["error"]["hint"].as_str().unwrap_or("").is_empty());
    assert!(body["error"]["request_id"].is_string());

    let err = d.fails(&["invoke", "hello", "--data", "{nope"]);
    assert!(err.contains("--data is not valid JSON"), "{err}");
    // The function still serves.
    assert_eq!(d.post("/fn/hello", "{}").status, 200);
}

#[test]
fn unknown_functions_versions_and_routes_are_404() {
    let d = Daemon::start();
    deploy_hello(&d);
    let reply = d.post("/fn/nope", "{}");
    assert_eq!(
        (reply.status, reply.code()),
        (404, "function_not_found".to_owned())
    );
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("nope"));
    let reply = d.post("/fn/hello@7", "{}");
    assert_eq!(
        (reply.status, reply.code()),
        (404, "version_not_found".to_owned())
    );
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("latest is 1"));
    assert_eq!(d.post("/fn/hello@latest", "{}").status, 404);
    assert_eq!(d.get("/nowhere").code(), "route_not_found");
    assert_eq!(d.get("/api/v1/functions/nope/versions").status, 404);
    let reply = common::http(&d.addr, "DELETE", "/fn/hello", b"");
    assert_eq!(
        (reply.status, reply.code()),
        (405, "method_not_allowed".to_owned())
    );

    let err = d.fails(&["invoke", "nope"]);
    assert!(
        err.contains("no function named \"nope\"") && err.contains("hearth deploy"),
        "{err}"
    );
    let err = d.fails(&["versions", "nope"]);
    assert!(err.contains("nope"), "{err}");
    let err = d.fails(&["publish", "hello", "--version", "5"]);
    assert!(err.contains("no version 5"), "{err}");
}

#[test]
fn a_body_over_the_limit_is_413() {
    let d = Daemon::start_with(&["--max-body", "1024"], &[]);
    deploy_hello(&d);
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(4096));
    let reply = d.post("/fn/hello", &big);
    assert_eq!(
        (reply.status, reply.code()),
        (413, "body_too_large".to_owned())
    );
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("1024"));
    assert_eq!(d.post("/fn/hello", r#"{"name":"small"}"#).status, 200);
}

#[test]
fn bad_manifests_are_refused_naming_file_and_key_and_store_nothing() {
    let d = Daemon::start();
    let no_entry = FnDir::new(
        "name = \"x\"\nruntime = \"python\"\n",
        &[("main.py", "def handler(e): return 1")],
    );
    let err = d.fails(&["deploy", no_entry.path()]);
    assert!(
        err.contains(&format!("{}/hearth.toml", no_entry.path())) && err.contains("`entry`"),
        "{err}"
    );

    let bad_runtime = FnDir::new(
        "name = \"x\"\nruntime = \"ruby\"\nentry = \"main.handler\"\n",
        &[("main.rb", "")],
    );
    let err = d.fails(&["deploy", bad_runtime.path()]);
    assert!(
        err.contains("ruby") && err.contains("python, node, lua"),
        "{err}"
    );

    let missing_file = FnDir::new(
        "name = \"x\"\nruntime = \"python\"\nentry = \"app.handler\"\n",
        &[("main.py", "")],
    );
    let err = d.fails(&["deploy", missing_file.path()]);
    assert!(err.contains("app.py") && err.contains("main.py"), "{err}");

    let no_manifest = tempfile::tempdir().expect("tempdir");
    let err = d.fails(&["deploy", no_manifest.path().to_str().expect("path")]);
    assert!(err.contains("hearth.toml"), "{err}");

    let err = d.fails(&["deploy", "/definitely/not/here"]);
    assert!(err.contains("not a directory"), "{err}");

    // The API refuses the same things on its own (for clients other than the CLI).
    let body = serde_json::json!({"files": [{"path": "hearth.toml", "data": "bmFtZSA9ICJ4Igo="}]});
    let reply = d.post("/api/v1/deploy", &body.to_string());
    assert_eq!(
        (reply.status, reply.code()),
        (400, "bad_manifest".to_owned())
    );
    let reply = d.post("/api/v1/deploy", "{\"files\": 3}");
    assert_eq!((reply.status, reply.code()), (400, "bad_json".to_owned()));

    assert!(d.ok(&["list"]).contains("no functions yet"));
}

#[test]
fn code_that_does_not_import_is_reported_and_not_published() {
    let d = Daemon::start();
    let f = FnDir::python("imp", "def handler(e):\n    return 'v1'\n");
    d.ok(&["deploy", f.path()]);
    f.write(
        "main.py",
        "import json\nimport no_such_module_here\n\ndef handler(e):\n    return 'v2'\n",
    );
    let err = d.fails(&["deploy", f.path()]);
    assert!(err.contains("version 2 failed to load"), "{err}");
    assert!(
        err.contains("ModuleNotFoundError") && err.contains("no_such_module_here"),
        "{err}"
    );
    assert!(
        err.contains("main.py\", line 2"),
        "traceback should point at the user's line: {err}"
    );
    assert!(err.contains("version 1 stays live"), "{err}");
    assert_eq!(d.post("/fn/imp", "{}").json(), "v1");
    let f_json = d.get("/api/v1/functions/imp").json();
    assert_eq!(f_json["live_version"], 1);

    // A syntax error and a missing handler are reported the same way.
    f.write("main.py", "def handler(e)\n    return 1\n");
    let err = d.fails(&["deploy", f.path()]);
    assert!(err.contains("SyntaxError"), "{err}");
    f.write("main.py", "def other(e):\n    return 1\n");
    let err = d.fails(&["deploy", f.path()]);
    assert!(
        err.contains("EntryNotFound") && err.contains("'handler'"),
        "{err}"
    );
    assert_eq!(d.post("/fn/imp", "{}").json(), "v1");

    // A first deploy that fails leaves nothing live, and says so on call.
    let broken = FnDir::python("never", "raise RuntimeError('boom at import')\n");
    let err = d.fails(&["deploy", broken.path()]);
    assert!(
        err.contains("boom at import") && err.contains("nothing is live"),
        "{err}"
    );
    let reply = d.post("/fn/never", "{}");
    assert_eq!(
        (reply.status, reply.code()),
        (404, "not_published".to_owned())
    );
}

#[test]
fn a_raising_function_is_500_with_its_traceback_and_keeps_serving() {
    let d = Daemon::start();
    let f = FnDir::python(
        "raiser",
        "def handler(event):\n    if event.get('fail'):\n        raise ValueError('bad input: ' + event['fail'])\n    return 'fine'\n",
    );
    d.ok(&["deploy", f.path()]);
    let reply = d.post("/fn/raiser", r#"{"fail":"nope"}"#);
    assert_eq!(reply.status, 500);
    let e = &reply.json()["error"];
    assert_eq!(e["code"], "function_error");
    assert_eq!(e["function"], "raiser");
    assert_eq!(e["version"], 1);
    assert_eq!(e["details"]["type"], "ValueError");
    assert_eq!(e["details"]["message"], "bad input: nope");
    let tb = e["details"]["traceback"].as_str().unwrap_or("");
    assert!(
        tb.contains("line 3, in handler") && !tb.contains("hearth_worker"),
        "{tb}"
    );
    assert_eq!(d.post("/fn/raiser", "{}").json(), "fine");

    // Values that cannot travel are the function's error too.
    let odd = FnDir::python(
        "odd",
        "import datetime\n\ndef handler(e):\n    return datetime.datetime.now()\n",
    );
    d.ok(&["deploy", odd.path()]);
    let reply = d.post("/fn/odd", "{}");
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json()["error"]["details"]["type"],
        "ResultNotSerializable"
    );

    let err = d.fails(&["invoke", "raiser", "--data", r#"{"fail":"cli"}"#]);
    assert!(
        err.contains("ValueError") && err.contains("line 3, in handler"),
        "{err}"
    );
}

#[test]
fn a_worker_killed_during_a_call_is_502_and_replaced() {
    let d = Daemon::start();
    let f = FnDir::python(
        "dies",
        "import os, signal\n\ndef handler(event):\n    if event.get('die'):\n        os.kill(os.getpid(), signal.SIGKILL)\n    if event.get('exit'):\n        os._exit(3)\n    return os.getpid()\n",
    );
    d.ok(&["deploy", f.path()]);
    let before = d.post("/fn/dies", "{}").json().as_u64().expect("pid");
    let reply = d.post("/fn/dies", r#"{"die":true}"#);
    assert_eq!(
        (reply.status, reply.code()),
        (502, "worker_died".to_owned())
    );
    let msg = reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(msg.contains("dies@1") && msg.contains("SIGKILL"), "{msg}");
    let after = d.post("/fn/dies", "{}");
    assert_eq!(after.status, 200);
    assert_ne!(after.json().as_u64(), Some(before));

    let reply = d.post("/fn/dies", r#"{"exit":true}"#);
    assert_eq!(reply.status, 502);
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("status 3"));
    assert_eq!(d.post("/fn/dies", "{}").status, 200);

    // A worker killed while idle is noticed before a call is sent to it.
    let pid = d.post("/fn/dies", "{}").json().as_u64().expect("pid") as i32;
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    assert!(eventually(5, || !alive(pid as u32)));
    let reply = d.post("/fn/dies", "{}");
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn a_call_past_its_timeout_is_504_and_the_worker_is_replaced() {
    let d = Daemon::start();
    let f = FnDir::python_with(
        "slow",
        "import os, time\n\ndef handler(event):\n    time.sleep(event.get('sleep', 0))\n    return os.getpid()\n",
        "[limits]\ntimeout_ms = 500",
    );
    d.ok(&["deploy", f.path()]);
    let pid = d.post("/fn/slow", "{}").json().as_u64().expect("pid") as u32;
    let reply = d.post("/fn/slow", r#"{"sleep":30}"#);
    assert_eq!((reply.status, reply.code()), (504, "timeout".to_owned()));
    let msg = reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(msg.contains("slow@1") && msg.contains("500 ms"), "{msg}");
    assert!(
        eventually(5, || !alive(pid)),
        "the timed-out worker is still running"
    );
    assert_eq!(d.post("/fn/slow", "{}").status, 200);
}

#[test]
fn no_worker_outlives_a_daemon_that_is_killed() {
    let d = Daemon::start();
    let f = FnDir::python(
        "orphan",
        "import os\n\ndef handler(event):\n    return os.getpid()\n",
    );
    d.ok(&["deploy", f.path()]);
    let pid = d.post("/fn/orphan", "{}").json().as_u64().expect("pid") as u32;
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGKILL);
    }
    assert!(
        eventually(5, || !alive(pid)),
        "worker {pid} outlived a killed daemon"
    );
}

#[test]
fn a_missing_runtime_is_explained_at_deploy() {
    let d = Daemon::start_with(&[], &[("HEARTH_PYTHON", "/nonexistent/python3")]);
    let hello = common::repo().join("examples/python/hello");
    let err = d.fails(&["deploy", hello.to_str().expect("path")]);
    assert!(
        err.contains("python runtime is not available") && err.contains("/nonexistent/python3"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn the_cli_explains_an_unreachable_daemon() {
    let out = std::process::Command::new(common::BIN)
        .args(["--addr", "127.0.0.1:9", "list"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the hearth daemon at 127.0.0.1:9")
            && err.contains("hearth serve"),
        "{err}"
    );
}
