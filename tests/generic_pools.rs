//! Generic pools: interpreters started ahead of need take on a function's
//! code when it needs a worker, with that function's directory and
//! environment, and the pool is refilled behind them.

mod common;

use common::{eventually, Daemon, FnDir};

fn check(d: &Daemon, runtime: &str, manifest_runtime: &str, file: &str, code: &str) {
    assert!(
        eventually(20, || d.generic_pids(runtime).len() == 2),
        "{runtime} generic pool never filled"
    );
    let before = d.generic_pids(runtime);
    let name = format!("gen-{runtime}");
    let f = FnDir::new(
        &format!("name = \"{name}\"\nruntime = \"{manifest_runtime}\"\nentry = \"main.handler\"\n"),
        &[(file, code)],
    );
    d.ok(&["deploy", f.path()]);
    let got = d.post(&format!("/fn/{name}"), "{}").json();
    let pid = got["pid"].as_u64().expect("pid");
    assert!(
        before.contains(&pid),
        "{runtime}: the function's worker {pid} was not one of the generic ones {before:?}"
    );
    assert_eq!(
        got["fn"],
        name.as_str(),
        "{runtime}: the function's environment is set at load"
    );
    assert_eq!(got["v"], "1");
    let cwd = got["cwd"].as_str().unwrap_or("");
    assert!(
        cwd.contains(&format!("/code/{name}/v1-")),
        "{runtime}: working directory {cwd}"
    );
    // The generic pool is refilled, without the worker that left it.
    assert!(
        eventually(20, || {
            let now = d.generic_pids(runtime);
            now.len() == 2 && !now.contains(&pid)
        }),
        "{runtime} generic pool was not refilled"
    );
}

#[test]
fn python_and_node_functions_start_on_pre_started_interpreters() {
    let d = Daemon::start_with(&["--generic-workers", "2"], &[]);
    check(
        &d,
        "python",
        "python",
        "main.py",
        "import os\n\ndef handler(event):\n    return {'pid': os.getpid(), 'fn': os.environ.get('HEARTH_FUNCTION'), 'v': os.environ.get('HEARTH_VERSION'), 'cwd': os.getcwd()}\n",
    );
    check(
        &d,
        "node",
        "node",
        "main.js",
        "exports.handler = () => ({ pid: process.pid, fn: process.env.HEARTH_FUNCTION, v: process.env.HEARTH_VERSION, cwd: process.cwd() });\n",
    );
}

#[test]
fn without_generic_workers_functions_still_start() {
    let d = Daemon::start_with(&["--generic-workers", "0"], &[]);
    let f = FnDir::python(
        "plain",
        "import os\n\ndef handler(event):\n    return os.environ.get('HEARTH_FUNCTION')\n",
    );
    d.ok(&["deploy", f.path()]);
    assert_eq!(d.post("/fn/plain", "{}").json(), "plain");
    assert!(d.generic_pids("python").is_empty());
}

#[test]
fn a_cold_call_reports_its_phases_and_a_warm_one_only_queue_and_run() {
    let tmp = common::reachable_tempdir();
    let data = tmp.path().join("data");
    let f = FnDir::python("phases", "def handler(event):\n    return 1\n");
    {
        let mut d = Daemon::start_in(&data, &[], &[]);
        d.ok(&["deploy", f.path()]);
        d.stop();
    }
    // After a restart the function has never been called: its first call
    // takes a pre-started interpreter and loads the code.
    let d = Daemon::start_in(&data, &[], &[]);
    assert!(eventually(20, || d.generic_pids("python").len() == 1));
    let first = d.post("/fn/phases", "{}");
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-hearth-start"), Some("generic"));
    let timing = first.header("server-timing").unwrap_or("").to_owned();
    for phase in ["queue;dur=", "spawn;dur=", "load;dur=", "run;dur="] {
        assert!(timing.contains(phase), "{timing}");
    }
    let second = d.post("/fn/phases", "{}");
    assert_eq!(second.header("x-hearth-start"), Some("warm"));
    let timing = second.header("server-timing").unwrap_or("");
    assert!(
        timing.starts_with("queue;dur=") && timing.contains("run;dur=") && !timing.contains("load"),
        "{timing}"
    );
    // The pool keeps the last cold start's phases.
    let workers = d.get("/api/v1/workers").json();
    let pool = workers["pools"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["function"] == "phases"))
        .cloned()
        .expect("pool");
    assert_eq!(pool["cold_starts"], 1, "{pool}");
    assert_eq!(pool["last_cold_start"]["start"], "generic", "{pool}");
    assert!(
        pool["last_cold_start"]["load_ms"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0),
        "{pool}"
    );
}

#[test]
fn python_code_is_compiled_at_deploy_and_tracebacks_name_the_version_directory() {
    let d = Daemon::start();
    // A module in a package, and one that raises: a version's directory is
    // read-only to its workers, so a `.pyc` next to the source was written
    // by the deploy, not by the worker.
    let f = FnDir::new(
        "name = \"compiled\"\nruntime = \"python\"\nentry = \"main.handler\"\n",
        &[
            (
                "main.py",
                "import os, sys\nfrom lib import util\n\ndef handler(event):\n    if event.get('fail'):\n        util.fail()\n    cached = [sys.modules[m].__spec__.cached for m in ('main', 'lib.util')]\n    return {'cached': cached, 'there': [os.path.exists(c) for c in cached]}\n",
            ),
            ("lib/__init__.py", ""),
            (
                "lib/util.py",
                "def fail():\n    raise RuntimeError('from util')\n",
            ),
        ],
    );
    d.ok(&["deploy", f.path()]);
    let got = d.post("/fn/compiled", "{}").json();
    assert_eq!(got["there"], serde_json::json!([true, true]), "{got}");
    let reply = d.post("/fn/compiled", r#"{"fail": true}"#);
    assert_eq!(reply.status, 500, "{}", reply.text());
    let tb = reply.json()["error"]["details"]["traceback"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        tb.contains("/code/compiled/v1-") && tb.contains("lib/util.py\", line 2, in fail"),
        "the traceback names the version's own files: {tb}"
    );
    assert!(!tb.contains(".staging"), "{tb}");

    // Code that does not compile is still reported by its load, with the
    // runtime's own error.
    let bad = FnDir::python("uncompiled", "def handler(event)\n    return 1\n");
    let out = d.fails(&["deploy", bad.path()]);
    assert!(out.contains("SyntaxError"), "{out}");
}
