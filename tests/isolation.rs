//! Isolation that a user sees directly: application budgets, the user a
//! worker runs as, and the limits a manifest may set. (Misbehaving
//! functions are in tests/faults.rs.)

mod common;

use common::{Daemon, FnDir};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn in_app(name: &str, app: &str, code: &str) -> FnDir {
    let manifest = format!(
        "name = \"{name}\"\nruntime = \"python\"\nentry = \"main.handler\"\napp = \"{app}\"\n[limits]\nmax_workers = 2\n"
    );
    FnDir::new(&manifest, &[("main.py", code)])
}

#[test]
fn an_application_at_its_budget_is_refused_alone() {
    let d = Daemon::start();
    let slow =
        "import time\ndef handler(event):\n    time.sleep(event.get('s', 0))\n    return 'slow'\n";
    let a = in_app("budget-a", "small", slow);
    let b = in_app("budget-b", "small", "def handler(event):\n    return 'b'\n");
    let other = in_app(
        "budget-other",
        "big",
        "def handler(event):\n    return 'other'\n",
    );
    let out = d.ok(&["app", "small", "--max-workers", "1"]);
    assert!(out.contains("max_workers 1"), "{out}");
    for dir in [&a, &b, &other] {
        d.ok(&["deploy", dir.path()]);
    }
    // budget-a takes the application's only worker for a while.
    let addr = d.addr.clone();
    let busy =
        std::thread::spawn(move || common::http(&addr, "POST", "/fn/budget-a", br#"{"s": 1.5}"#));
    assert!(common::eventually(5, || {
        let apps = d.get("/api/v1/apps").json();
        apps["apps"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "small"))
            .is_some_and(|x| x["workers"] == 1)
            && d.get("/api/v1/workers").json()["pools"]
                .as_array()
                .is_some_and(|p| {
                    p.iter()
                        .any(|p| p["function"] == "budget-a" && p["busy"] == 1)
                })
    }));
    let refused = d.post("/fn/budget-b", "{}");
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.code(), "app_over_budget");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.text().contains("small"), "{}", refused.text());
    // Another application is not affected.
    let fine = d.post("/fn/budget-other", "{}");
    assert_eq!(fine.status, 200, "{}", fine.text());
    let done = busy.join().expect("slow call");
    assert_eq!(done.status, 200, "{}", done.text());
    // With the worker free again, budget-b gets it (budget-a's idle worker
    // makes room within the application).
    let after = d.post("/fn/budget-b", "{}");
    assert_eq!(after.status, 200, "{}", after.text());
    let listing = d.ok(&["app"]);
    assert!(
        listing.contains("small") && listing.contains("1/1"),
        "{listing}"
    );
}

#[test]
fn workers_run_as_their_versions_own_user_with_a_private_tmp() {
    if !is_root() {
        eprintln!("SKIP: workers change user only when hearth serve runs as root");
        return;
    }
    let d = Daemon::start();
    let code = "import os, tempfile\ndef handler(event):\n    p = os.path.join(tempfile.gettempdir(), 'mine')\n    open(p, 'w').write('x')\n    return {'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups(), 'tmp': tempfile.gettempdir(), 'home': os.environ.get('HOME')}\n";
    let one = FnDir::python("who-one", code);
    let two = FnDir::python("who-two", code);
    d.ok(&["deploy", one.path()]);
    d.ok(&["deploy", two.path()]);
    let a = d.post("/fn/who-one", "{}").json();
    let b = d.post("/fn/who-two", "{}").json();
    let uid_a = a["uid"].as_u64().expect("uid");
    let uid_b = b["uid"].as_u64().expect("uid");
    assert!(uid_a >= 1_500_000 && uid_b >= 1_500_000, "{a} {b}");
    assert_ne!(uid_a, uid_b, "two versions share a user: {a} {b}");
    assert_eq!(a["gid"], a["uid"]);
    assert_eq!(a["groups"], serde_json::json!([]), "{a}");
    assert_eq!(a["tmp"], "/tmp", "{a}");
    // The file written to its /tmp is not in the host's /tmp.
    assert!(!std::path::Path::new("/tmp/mine").exists());
    let lua = FnDir::new(
        "name = \"who-lua\"\nruntime = \"lua\"\nentry = \"main.handler\"\n",
        &[(
            "main.lua",
            "local M = {}\nfunction M.handler(event)\n  local f = io.popen('id -u')\n  local uid = f:read('*l')\n  f:close()\n  local status = io.open('/proc/self/status'):read('a')\n  local w = io.open(os.getenv('TMPDIR') .. '/mine-lua', 'w')\n  w:write('x')\n  w:close()\n  return { uid = tonumber(uid), ids = status:match('Uid:[^\\n]*') .. ' ' .. status:match('Gid:[^\\n]*'), groups = status:match('Groups:([^\\n]*)'), tmp = os.getenv('TMPDIR'), home = os.getenv('HOME'), dir = io.popen('pwd'):read('*l') }\nend\nreturn M\n",
        )],
    );
    d.ok(&["deploy", lua.path()]);
    // Its worker came from the generic pool at deploy (hearth's launcher,
    // which took the function's user, directory and environment, then
    // exec'd Lua).
    let l = d.post("/fn/who-lua", "{}").json();
    let uid = l["uid"].as_u64().unwrap_or(0);
    assert!(uid >= 1_500_000, "{l}");
    // Real, effective, saved and filesystem ids: the function's alone.
    let ids = l["ids"].as_str().unwrap_or("");
    assert_eq!(
        ids.split_whitespace()
            .filter(|t| t.parse::<u64>() == Ok(uid))
            .count(),
        8,
        "{l}"
    );
    assert_eq!(l["groups"].as_str().map(str::trim), Some(""), "{l}");
    assert_eq!(l["tmp"], "/tmp", "{l}");
    assert_eq!(l["home"], "/tmp", "{l}");
    assert!(
        l["dir"].as_str().is_some_and(|p| p.contains("who-lua")),
        "{l}"
    );
    assert!(!std::path::Path::new("/tmp/mine-lua").exists());
}

#[test]
fn limits_in_the_manifest_are_checked_with_clear_errors() {
    let d = Daemon::start();
    let cases = [
        ("concurrency = 0", "limits.concurrency"),
        ("max_processes = 1", "limits.max_processes"),
        ("network = \"no\"", "limits.network"),
        ("max_response_kb = 0", "limits.max_response_kb"),
        ("cpu_percent = -5", "limits.cpu_percent"),
        ("swap_mb = 1", "limits.swap_mb"),
    ];
    for (line, key) in cases {
        let dir = FnDir::python_with(
            "bad-limits",
            "def handler(event):\n    return 1\n",
            &format!("[limits]\n{line}\n"),
        );
        let err = d.fails(&["deploy", dir.path()]);
        assert!(err.contains(key), "{line}: {err}");
    }
    let small = FnDir::python_with(
        "small-body",
        "def handler(event):\n    return 'x' * event.get('n', 1)\n",
        "[limits]\nmax_request_kb = 1\nmax_response_kb = 2\n",
    );
    d.ok(&["deploy", small.path()]);
    let big = format!("{{\"pad\": \"{}\"}}", "y".repeat(2000));
    let reply = d.post("/fn/small-body", &big);
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(
        reply.text().contains("limits.max_request_kb"),
        "{}",
        reply.text()
    );
    let reply = d.post("/fn/small-body", r#"{"n": 5000}"#);
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.code(), "response_too_large");
    // The worker was fine: the next call is served by it.
    let reply = d.post("/fn/small-body", r#"{"n": 5}"#);
    assert_eq!(reply.status, 200, "{}", reply.text());
    // A descriptor limit below what the daemon holds open still starts
    // (the limit is set last, just before exec).
    let few = FnDir::new(
        "name = \"few-files\"\nruntime = \"lua\"\nentry = \"main.handler\"\n[limits]\nmax_open_files = 16\n",
        &[("main.lua", "return { handler = function(e) return 'ok' end }\n")],
    );
    d.ok(&["deploy", few.path()]);
    let reply = d.post("/fn/few-files", "{}");
    assert_eq!(reply.status, 200, "{}", reply.text());
}
