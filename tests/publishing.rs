//! Publishing under load: atomic swaps with no call dropped, batch publish,
//! aliases with canary splits, old versions drained, releases made by another
//! process, and `hearth dev`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{alive, eventually, Daemon, FnDir};

fn versioned(name: &str, v: u32) -> FnDir {
    let f = FnDir::python(name, "");
    set_version(&f, v);
    f
}

fn set_version(f: &FnDir, v: u32) {
    f.write(
        "main.py",
        &format!("import os\n\ndef handler(event):\n    return {{'v': {v}, 'pid': os.getpid()}}\n"),
    );
}

fn version_of(reply: &common::Reply) -> u64 {
    reply
        .header("x-hearth-version")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn publish_and_rollback_under_load_drop_no_call_and_never_answer_from_a_stale_version() {
    let d = Daemon::start();
    let f = versioned("flip", 1);
    d.ok(&["deploy", f.path()]);
    set_version(&f, 2);
    d.ok(&["deploy", f.path(), "--no-publish"]);

    struct CallRecord {
        start: Instant,
        end: Instant,
        version: u64,
        status: u16,
        body_v: u64,
    }
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let addr = d.addr.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut calls = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let reply = common::http(&addr, "POST", "/fn/flip", b"{}");
                    let body_v = if reply.status == 200 {
                        reply.json()["v"].as_u64().unwrap_or(0)
                    } else {
                        0
                    };
                    calls.push(CallRecord {
                        start,
                        end: Instant::now(),
                        version: version_of(&reply),
                        status: reply.status,
                        body_v,
                    });
                }
                calls
            })
        })
        .collect();

    // 100 cycles: publish 2, then roll back to 1. Each entry: (sent, returned, version now live).
    let mut releases: Vec<(Instant, Instant, u64)> = Vec::new();
    for _ in 0..100 {
        for (path, body, v) in [
            ("/api/v1/functions/flip/publish", r#"{"version":2}"#, 2u64),
            ("/api/v1/functions/flip/rollback", "{}", 1),
        ] {
            let sent = Instant::now();
            let reply = d.post(path, body);
            assert_eq!(reply.status, 200, "{}", reply.text());
            releases.push((sent, Instant::now(), v));
            // Leave room for calls between releases, so the check below has some.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let calls: Vec<CallRecord> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();

    assert!(
        calls.len() > 200,
        "too few calls to mean anything: {}",
        calls.len()
    );
    let failed = calls.iter().filter(|c| c.status != 200).count();
    assert_eq!(
        failed,
        0,
        "{failed} of {} calls failed during publishes",
        calls.len()
    );
    let mut checked = 0;
    for c in &calls {
        assert_eq!(
            c.version, c.body_v,
            "the header names the version that answered"
        );
        // A call made wholly between release k returning and release k+1
        // being sent must be answered by release k's version. (A call that
        // overlaps a release may be answered by either side of it: it
        // arrives at the server when it arrives.)
        if let Some(k) = releases
            .iter()
            .rposition(|(_, returned, _)| *returned <= c.start)
        {
            if releases.get(k + 1).is_none_or(|(sent, _, _)| c.end < *sent) {
                assert_eq!(
                    c.version, releases[k].2,
                    "a call made after a release returned was answered by a stale version"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no call fell between releases");
}

#[test]
fn batch_publish_is_all_or_nothing() {
    let d = Daemon::start();
    let a = versioned("batch-a", 1);
    let b = versioned("batch-b", 1);
    d.ok(&["deploy", a.path()]);
    d.ok(&["deploy", b.path()]);
    set_version(&a, 2);
    d.ok(&["deploy", a.path(), "--no-publish"]);
    b.write(
        "main.py",
        "import no_such_module\n\ndef handler(event):\n    return {'v': 2}\n",
    );
    // Even without publishing, a deploy says at once that the code does not load
    // (the version is kept, so a batch can still name it).
    let err = d.fails(&["deploy", b.path(), "--no-publish"]);
    assert!(err.contains("batch-b version 2 failed to load"), "{err}");

    let batch = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(batch.path(), "batch-a = 2\nbatch-b = 2\n").expect("write");
    let err = d.fails(&["publish", "--batch", batch.path().to_str().expect("path")]);
    assert!(
        err.contains("nothing was published")
            && err.contains("batch-b@2")
            && err.contains("no_such_module"),
        "{err}"
    );
    assert_eq!(d.post("/fn/batch-a", "{}").json()["v"], 1);
    assert_eq!(d.post("/fn/batch-b", "{}").json()["v"], 1);

    b.write("main.py", "def handler(event):\n    return {'v': 3}\n");
    d.ok(&["deploy", b.path(), "--no-publish"]);
    std::fs::write(batch.path(), "batch-a = 2\nbatch-b = 3\n").expect("write");
    let out = d.ok(&["publish", "--batch", batch.path().to_str().expect("path")]);
    assert!(
        out.contains("batch-a: version 2 is live") && out.contains("batch-b: version 3 is live"),
        "{out}"
    );
    assert_eq!(d.post("/fn/batch-a", "{}").json()["v"], 2);
    assert_eq!(d.post("/fn/batch-b", "{}").json()["v"], 3);

    // Through the API as well, and the same function twice is refused.
    let reply = d.post(
        "/api/v1/publish",
        r#"{"releases":[{"function":"batch-a","version":1},{"function":"batch-a","version":2}]}"#,
    );
    assert_eq!(reply.status, 400, "{}", reply.text());
}

#[test]
fn aliases_route_and_split_traffic_by_weight() {
    let d = Daemon::start();
    let f = versioned("canary", 1);
    d.ok(&["deploy", f.path()]);
    set_version(&f, 2);
    d.ok(&["deploy", f.path(), "--no-publish"]);

    let out = d.ok(&["alias", "canary", "prod", "--version", "1"]);
    assert!(out.contains("canary@prod -> version 1"), "{out}");
    for _ in 0..20 {
        assert_eq!(version_of(&d.post("/fn/canary@prod", "{}")), 1);
    }
    let out = d.ok(&[
        "alias",
        "canary",
        "prod",
        "--version",
        "1",
        "--split",
        "2",
        "--weight",
        "10",
        "-m",
        "try v2",
    ]);
    assert!(out.contains("10% of calls to version 2"), "{out}");
    let mut v2 = 0;
    for _ in 0..1000 {
        let reply = d.post("/fn/canary@prod", "{}");
        assert_eq!(reply.status, 200);
        if version_of(&reply) == 2 {
            v2 += 1;
        }
    }
    // 10% of 1,000 is 100, with a standard deviation of about 9.5.
    assert!(
        (60..=140).contains(&v2),
        "version 2 answered {v2} of 1000 calls for a 10% split"
    );
    // The live version is untouched by alias moves.
    assert_eq!(version_of(&d.post("/fn/canary", "{}")), 1);

    let history = d.ok(&["history", "canary"]);
    assert!(
        history.contains("alias prod")
            && history.contains("(10% to 2)")
            && history.contains("try v2"),
        "{history}"
    );
    let reply = d.post("/fn/canary@staging", "{}");
    assert_eq!(
        (reply.status, reply.code()),
        (404, "alias_not_found".to_owned())
    );
    let err = d.fails(&["alias", "canary", "prod", "--version", "9"]);
    assert!(err.contains("no version 9"), "{err}");
}

#[test]
fn an_old_version_stays_warm_for_its_grace_period_then_is_reclaimed() {
    let d = Daemon::start_with(&["--drain-grace", "1"], &[]);
    let f = versioned("grace", 1);
    d.ok(&["deploy", f.path()]);
    let v1_pid = d.post("/fn/grace", "{}").json()["pid"]
        .as_u64()
        .expect("pid");
    set_version(&f, 2);
    d.ok(&["deploy", f.path()]);
    // Rolling back within the grace period finds version 1's worker warm.
    d.ok(&["rollback", "grace"]);
    let reply = d.post("/fn/grace", "{}").json();
    assert_eq!(
        (reply["v"].as_u64(), reply["pid"].as_u64()),
        (Some(1), Some(v1_pid))
    );
    // Once version 2 is live again, version 1's worker goes after the grace.
    d.ok(&["publish", "grace", "--version", "2"]);
    assert_eq!(d.post("/fn/grace", "{}").json()["v"], 2);
    assert!(
        eventually(10, || !alive(v1_pid as u32)),
        "version 1's worker was not reclaimed"
    );
    assert_eq!(
        d.post("/fn/grace@1", "{}").json()["v"],
        1,
        "an old version can still be called"
    );
}

#[test]
fn a_release_made_by_another_process_sharing_the_store_is_picked_up() {
    let tmp = common::reachable_tempdir();
    let data = tmp.path().join("data");
    let a = Daemon::start_in(&data, &[], &[]);
    let f = versioned("shared", 1);
    a.ok(&["deploy", f.path()]);
    set_version(&f, 2);
    a.ok(&["deploy", f.path()]);
    let b = Daemon::start_in(&data, &[], &[]);
    assert_eq!(b.post("/fn/shared", "{}").json()["v"], 2);

    let released = Instant::now();
    a.ok(&["rollback", "shared"]);
    assert!(
        eventually(5, || b.post("/fn/shared", "{}").json()["v"] == 1),
        "b never saw the rollback"
    );
    eprintln!(
        "picked up by the other daemon after {:?}",
        released.elapsed()
    );
    a.ok(&["alias", "shared", "prod", "--version", "2"]);
    assert!(eventually(5, || b.post("/fn/shared@prod", "{}").status == 200));
}

#[test]
fn hearth_dev_deploys_every_saved_change_and_keeps_serving_through_broken_code() {
    let d = Daemon::start();
    let f = versioned("devloop", 1);
    let dev = std::process::Command::new(common::BIN)
        .args(["dev", f.path(), "--debounce-ms", "100"])
        .env("HEARTH_ADDR", &d.addr)
        .env("HEARTH_DATA", &d.data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start hearth dev");
    let serving = |v: u64| {
        d.post("/fn/devloop", "{}")
            .json()
            .get("v")
            .and_then(|x| x.as_u64())
            == Some(v)
    };
    assert!(
        eventually(20, || serving(1)),
        "hearth dev did not deploy the directory"
    );
    set_version(&f, 2);
    assert!(
        eventually(20, || serving(2)),
        "a saved change was not deployed"
    );
    f.write("main.py", "def handler(event)\n    return 3\n");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        serving(2),
        "broken code must leave the previous version serving"
    );
    set_version(&f, 4);
    assert!(
        eventually(20, || serving(4)),
        "hearth dev stopped after a broken save"
    );
    unsafe {
        libc::kill(dev.id() as i32, libc::SIGINT);
    }
    let out = dev.wait_with_output().expect("dev output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("SyntaxError") && text.contains("previous version keeps serving"),
        "{text}"
    );
    assert!(text.contains("live (was version"), "{text}");
}
