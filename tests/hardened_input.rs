//! Hostile or broken input and interrupted writes: every bundle path is
//! checked by the API itself, code is private from its first byte, what a
//! killed daemon leaves is cleaned up, deploy bodies in memory are bounded,
//! and kill -9 at any moment leaves a store that opens and is consistent.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{deploy_body, Daemon, FnDir};

const MANIFEST: &str = "name = \"paths\"\nruntime = \"python\"\nentry = \"main.handler\"\n";
const CODE: &[u8] = b"def handler(event):\n    return 'ok'\n";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A pid no process has: above the largest pid_max Linux allows (2^22).
const GONE_PID: u32 = 4_194_304 + 11;

fn versions_of(d: &Daemon, name: &str) -> Option<u64> {
    let reply = d.get(&format!("/api/v1/functions/{name}"));
    (reply.status == 200).then(|| reply.json()["versions"].as_u64().unwrap_or(0))
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// The one version directory of `function` on disk.
fn version_dir(d: &Daemon, function: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(d.data.join("code").join(function))
        .expect("function's code directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn every_bad_bundle_path_is_a_400_naming_it_and_nothing_is_stored() {
    let d = Daemon::start();
    let good = deploy_body(&[("hearth.toml", MANIFEST.as_bytes()), ("main.py", CODE)]);
    let reply = d.post("/api/v1/deploy", &good);
    assert_eq!(reply.status, 201, "{}", reply.text());

    let long_name = "n".repeat(300);
    let long_path = ["d"; 600].join("/");
    let empty: &[u8] = b"";
    // (the bundle's extra files, the path the error must name)
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["a", "a/b"], "a/b".into()),
        (vec!["main.py/x"], "main.py/x".into()),
        (vec![long_name.as_str()], long_name.clone()),
        (vec![long_path.as_str()], long_path.clone()),
        (vec!["../escape.py"], "../escape.py".into()),
        (vec!["lib/../../escape.py"], "lib/../../escape.py".into()),
        (vec!["/etc/cron.d/x"], "/etc/cron.d/x".into()),
        (vec!["a\\b"], "a\\\\b".into()),
        (vec!["a\0b"], "a\\0b".into()),
        (vec!["a\nb"], "a\\nb".into()),
        (vec!["a//b"], "a//b".into()),
        (vec!["./a"], "./a".into()),
        (vec!["a/"], "a/".into()),
        (vec![""], "\"\"".into()),
        (vec!["node_modules/evil.js"], "node_modules/evil.js".into()),
        (vec!["main.py"], "main.py".into()),
    ];
    for (extra, named) in &cases {
        let mut files: Vec<(&str, &[u8])> = vec![
            ("hearth.toml", MANIFEST.as_bytes()),
            ("main.py", b"# new\n"),
        ];
        files.extend(extra.iter().map(|p| (*p, empty)));
        let reply = d.post("/api/v1/deploy", &deploy_body(&files));
        assert_eq!(
            (reply.status, reply.code()),
            (400, "bad_bundle".to_owned()),
            "{extra:?}: {}",
            reply.text()
        );
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(message.contains(named.as_str()), "{extra:?}: {message}");
        assert!(!reply.json()["error"]["hint"]
            .as_str()
            .unwrap_or("")
            .is_empty());
        assert_eq!(
            versions_of(&d, "paths"),
            Some(1),
            "{extra:?} stored a version"
        );
    }

    // Too many files, the same.
    let names: Vec<String> = (0..5_001).map(|i| format!("f/{i}.txt")).collect();
    let mut files: Vec<(&str, &[u8])> = vec![
        ("hearth.toml", MANIFEST.as_bytes()),
        ("main.py", b"# new\n"),
    ];
    files.extend(names.iter().map(|n| (n.as_str(), empty)));
    let reply = d.post("/api/v1/deploy", &deploy_body(&files));
    assert_eq!((reply.status, reply.code()), (400, "bad_bundle".to_owned()));
    assert!(reply.text().contains("5000"), "{}", reply.text());
    assert_eq!(versions_of(&d, "paths"), Some(1));

    // A new function with a bad path is not created at all.
    let fresh = "name = \"fresh\"\nruntime = \"python\"\nentry = \"main.handler\"\n";
    let reply = d.post(
        "/api/v1/deploy",
        &deploy_body(&[
            ("hearth.toml", fresh.as_bytes()),
            ("main.py", CODE),
            ("main.py/x", b""),
        ]),
    );
    assert_eq!(reply.code(), "bad_bundle");
    assert_eq!(versions_of(&d, "fresh"), None);
    assert_eq!(d.get("/api/v1/functions/fresh").status, 404);

    // The stored version still serves.
    assert_eq!(d.post("/fn/paths", "{}").json(), "ok");
}

#[test]
fn a_deploy_whose_code_cannot_be_written_stores_nothing() {
    let d = Daemon::start();
    // Where the function's code directory would go, a file.
    std::fs::write(d.data.join("code/blocked"), b"in the way").expect("write");
    let f = FnDir::python("blocked", "def handler(event):\n    return 'written'\n");
    let err = d.fails(&["deploy", f.path()]);
    assert!(
        err.contains("cannot write the code of blocked version 1")
            && err.contains(&d.data.join("code/blocked").display().to_string())
            && err.contains("stored nothing"),
        "{err}"
    );
    assert_eq!(d.get("/api/v1/functions/blocked").status, 404);
    assert_eq!(d.post("/fn/blocked@1", "{}").status, 404);

    std::fs::remove_file(d.data.join("code/blocked")).expect("remove");
    let out = d.ok(&["deploy", f.path()]);
    assert!(out.contains("stored as version 1"), "{out}");
    assert_eq!(d.post("/fn/blocked", "{}").json(), "written");
}

#[test]
fn code_is_private_to_its_version_from_the_first_byte() {
    if !is_root() {
        eprintln!("skipped: not running as root (workers cannot get users of their own)");
        return;
    }
    let d = Daemon::start();
    let own = FnDir::python(
        "private",
        "import os\ndef handler(event):\n    return {'gid': os.getgid(), 'mine': len(open(__file__).read())}\n",
    );
    d.ok(&["deploy", own.path()]);
    let snoop = FnDir::python(
        "snoop",
        "import os\ndef handler(event):\n    out = {}\n    for p in event['paths']:\n        try:\n            out[p] = os.listdir(p) if os.path.isdir(p) else open(p).read()\n        except OSError as e:\n            out[p] = type(e).__name__\n    return out\n",
    );
    d.ok(&["deploy", snoop.path()]);
    let me = d.post("/fn/private", "{}").json();
    let gid = me["gid"].as_u64().expect("gid") as u32;
    assert!(gid != 0 && me["mine"].as_u64().unwrap_or(0) > 0, "{me}");

    let code = d.data.join("code");
    let staging = code.join(".staging");
    let dir = version_dir(&d, "private");
    // Where every version is written: the daemon's alone.
    assert_eq!(
        (
            mode(&staging),
            std::fs::metadata(&staging).expect("stat").uid()
        ),
        (0o700, 0)
    );
    // The function's directory can be passed through, not listed.
    assert_eq!(mode(&code.join("private")), 0o711);
    // The version's directory: root and the version's own group only.
    let meta = std::fs::metadata(&dir).expect("stat");
    assert_eq!((meta.uid(), meta.gid(), mode(&dir)), (0, gid, 0o750));
    assert_eq!(mode(&dir.join("main.py")), 0o444);

    let paths = [
        staging.clone(),
        code.join("private"),
        dir.clone(),
        dir.join("main.py"),
        dir.join("hearth.toml"),
    ];
    let event = serde_json::json!({
        "paths": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()
    });
    let seen = d.post("/fn/snoop", &event.to_string()).json();
    for p in &paths {
        assert_eq!(
            seen[p.display().to_string()],
            "PermissionError",
            "another function's worker got at {}: {seen}",
            p.display()
        );
    }
}

#[test]
fn leftovers_of_an_interrupted_daemon_are_removed_at_start() {
    let mut d = Daemon::start();
    let hello = common::repo().join("examples/python/hello");
    d.ok(&["deploy", hello.to_str().expect("path")]);
    let data = d.data.clone();
    assert!(d.stop());

    let gone = GONE_PID;
    let leftovers = [
        data.join(format!("code/.staging/hello-v2-{gone}-0000abcd")),
        data.join(format!("code/hello/.tmp-v3-{gone}")),
        data.join(format!("deps/python/0123456789abcdef.tmp{gone}")),
        data.join(format!("tmp/w-{gone}-0123456789abcdef")),
        data.join("tmp/w-fedcba9876543210"),
    ];
    for dir in &leftovers {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("main.py"), CODE).expect("write");
    }
    // A write of a daemon that is still running (this test's own pid)
    // sharing the data directory is left alone.
    let running = data.join(format!(
        "code/.staging/hello-v4-{}-0000abcd",
        std::process::id()
    ));
    std::fs::create_dir_all(&running).expect("mkdir");

    let d = Daemon::start_in(&data, &[], &[]);
    for dir in &leftovers {
        assert!(!dir.exists(), "{} is still there", dir.display());
    }
    assert!(running.exists());
    assert!(d.wait_log(5, "removed a leftover"), "{}", d.log());
    assert_eq!(d.post("/fn/hello", "{}").status, 200);
    std::fs::remove_dir_all(&running).expect("clean up");
}

#[test]
fn the_management_api_413_names_the_setting_that_raises_it() {
    let d = Daemon::start_with(&["--max-api-body", "4096"], &[]);
    let big = vec![b'#'; 8192];
    let body = deploy_body(&[
        ("hearth.toml", MANIFEST.as_bytes()),
        ("main.py", CODE),
        ("big.txt", &big),
    ]);
    let reply = d.post("/api/v1/deploy", &body);
    assert_eq!(
        (reply.status, reply.code()),
        (413, "body_too_large".to_owned())
    );
    let error = &reply.json()["error"];
    let text = format!("{} {}", error["message"], error["hint"]);
    assert!(
        text.contains("4096") && text.contains("--max-api-body") && !text.contains("--max-body "),
        "{text}"
    );

    let f = FnDir::python("small", "def handler(event):\n    return 1\n");
    f.write("big.txt", &"#".repeat(8192));
    let err = d.fails(&["deploy", f.path()]);
    assert!(err.contains("--max-api-body"), "{err}");
    std::fs::remove_file(f.dir.path().join("big.txt")).expect("remove");
    d.ok(&["deploy", f.path()]);
}

#[test]
fn deploys_over_the_limit_wait_their_turn_then_get_a_503_naming_the_setting() {
    let d = Daemon::start_with(
        &["--max-concurrent-deploys", "1", "--deploy-wait", "1"],
        &[],
    );
    let first = deploy_body(&[("hearth.toml", MANIFEST.as_bytes()), ("main.py", CODE)]);
    let (start, rest) = first.as_bytes().split_at(10);
    // The first deploy takes the one slot: the daemon asks for its body
    // (100 Continue) once it holds the slot, and the body is slow to come.
    let mut held = common::start_request(
        &d.addr,
        "POST",
        "/api/v1/deploy",
        first.len(),
        &[("Expect", "100-continue")],
        b"",
    );
    assert!(common::read_continue(&mut held), "no 100 Continue");
    std::io::Write::write_all(&mut held, start).expect("write");

    let other = FnDir::python("other", "def handler(event):\n    return 2\n");
    let body = deploy_body(&[
        (
            "hearth.toml",
            b"name = \"other\"\nruntime = \"python\"\nentry = \"main.handler\"\n",
        ),
        ("main.py", b"def handler(event):\n    return 2\n"),
    ]);
    let refused = d.post("/api/v1/deploy", &body);
    assert_eq!(
        (refused.status, refused.code()),
        (503, "overloaded".to_owned()),
        "{}",
        refused.text()
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused.text().contains("--max-concurrent-deploys"),
        "{}",
        refused.text()
    );
    assert_eq!(versions_of(&d, "other"), None);

    // The first deploy finishes; then the next one gets its turn.
    std::io::Write::write_all(&mut held, rest).expect("write");
    let done = common::read_reply(held);
    assert_eq!(done.status, 201, "{}", done.text());
    d.ok(&["deploy", other.path()]);
    assert_eq!(d.post("/fn/other", "{}").json(), 2);
}

/// Each function's versions, checked: every stored version calls (and
/// answers its own number), and the function has one live version that
/// answers too.
fn check_consistent(d: &Daemon) -> usize {
    let mut checked = 0;
    let functions = d.get("/api/v1/functions").json();
    for f in functions["functions"].as_array().expect("functions") {
        let name = f["name"].as_str().expect("name");
        let list = d.get(&format!("/api/v1/functions/{name}/versions")).json();
        for v in list["versions"].as_array().expect("versions") {
            let n = v["version"].as_u64().expect("number");
            let reply = d.post(&format!("/fn/{name}@{n}"), "{}");
            assert_eq!(reply.status, 200, "{name}@{n}: {}", reply.text());
            let answer = reply.json();
            assert_eq!(answer["name"], name, "{name}@{n}: {answer}");
            checked += 1;
        }
        if let Some(live) = f["live_version"].as_u64() {
            let reply = d.post(&format!("/fn/{name}"), "{}");
            assert_eq!(reply.status, 200, "{name}: {}", reply.text());
            assert_eq!(
                reply.header("x-hearth-version"),
                Some(live.to_string().as_str())
            );
        }
    }
    checked
}

#[test]
fn kill_9_in_the_middle_of_deploys_leaves_a_consistent_store() {
    let tmp = common::reachable_tempdir();
    let data = tmp.path().join("data");
    // Different moments of a deploy: before the body is read, while the
    // version is stored, written to disk, loaded, published.
    let delays_ms = [0u64, 15, 40, 80, 150, 300];
    let mut deployed = 0;
    for (round, delay) in delays_ms.iter().enumerate() {
        let mut d = Daemon::start_in(&data, &[], &[]);
        if round > 0 {
            check_consistent(&d);
        }
        let staging = data.join("code/.staging");
        assert!(
            std::fs::read_dir(&staging)
                .map(|mut r| r.next().is_none())
                .unwrap_or(true),
            "a staging directory was left at start"
        );
        // Two functions, each deployed in turn while the daemon is killed.
        let mut children = Vec::new();
        let mut dirs = Vec::new();
        for name in ["crash-a", "crash-b"] {
            let f = FnDir::python(
                name,
                &format!(
                    "def handler(event):\n    return {{'name': '{name}', 'round': {round}}}\n"
                ),
            );
            children.push(d.spawn_cli(&["deploy", f.path()]));
            dirs.push(f);
            deployed += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(*delay));
        d.kill9();
        for mut child in children {
            let _ = child.wait();
        }
    }
    let d = Daemon::start_in(&data, &[], &[]);
    let checked = check_consistent(&d);
    assert!(
        checked <= deployed,
        "{checked} versions from {deployed} deploys"
    );
    // Deploying still works, and numbers go on from what is stored.
    let f = FnDir::python(
        "crash-a",
        "def handler(event):\n    return {'name': 'crash-a', 'round': 'last'}\n",
    );
    d.ok(&["deploy", f.path()]);
    assert_eq!(d.post("/fn/crash-a", "{}").json()["round"], "last");
    check_consistent(&d);
}
