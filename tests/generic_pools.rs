//! Generic pools: interpreters started ahead of need take on a function's
//! code when it needs a worker, with that function's directory and
//! environment, and the pool is refilled behind them.

mod common;

use std::collections::HashSet;

use common::{eventually, Daemon, FnDir};

fn generic_pids(d: &Daemon, runtime: &str) -> HashSet<u64> {
    let workers = d.get("/api/v1/workers").json();
    workers["generic"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["runtime"] == runtime)
        .flat_map(|g| g["pids"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_u64())
        .collect()
}

fn check(d: &Daemon, runtime: &str, manifest_runtime: &str, file: &str, code: &str) {
    assert!(
        eventually(20, || generic_pids(d, runtime).len() == 2),
        "{runtime} generic pool never filled"
    );
    let before = generic_pids(d, runtime);
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
            let now = generic_pids(d, runtime);
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
    assert!(generic_pids(&d, "python").is_empty());
}
