//! Disk stays bounded: gc deletes the stored versions the retention policy
//! does not keep (never live, aliased, recently released or warm ones) and
//! the directories no kept version needs; `--dry-run` only lists them.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Daemon, FnDir};

/// A daemon that runs gc only when asked.
fn daemon(keep_versions: &str, keep_releases: &str) -> Daemon {
    Daemon::start_with(
        &[
            "--keep-versions",
            keep_versions,
            "--keep-releases",
            keep_releases,
            "--gc-interval",
            "0",
        ],
        &[],
    )
}

fn numbered(name: &str, n: u32) -> FnDir {
    FnDir::python(name, &format!("def handler(event):\n    return {n}\n"))
}

fn stored(d: &Daemon, name: &str) -> Vec<u64> {
    d.get(&format!("/api/v1/functions/{name}/versions")).json()["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version"].as_u64())
        .collect()
}

/// The version numbers whose code directories are on disk.
fn on_disk(data: &Path, name: &str) -> BTreeSet<u64> {
    std::fs::read_dir(data.join("code").join(name))
        .map(|r| {
            r.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix('v')?.split('-').next()?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The versions of `name` that have a pool.
fn pools(d: &Daemon, name: &str) -> BTreeSet<u64> {
    d.get("/api/v1/workers").json()["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["function"] == name)
        .filter_map(|p| p["version"].as_u64())
        .collect()
}

#[test]
fn gc_keeps_live_aliased_recent_and_released_versions_and_a_dry_run_removes_nothing() {
    let d = daemon("2", "3");
    for n in 1..=7 {
        d.ok(&["deploy", numbered("keep", n).path()]);
    }
    // Every version's code is on disk (calling a version writes it).
    for n in 1..=7 {
        assert_eq!(d.post(&format!("/fn/keep@{n}"), "{}").json(), n);
    }
    d.ok(&["alias", "keep", "prod", "--version", "2"]);
    // A second function: one published version, then drafts.
    d.ok(&["deploy", numbered("drafts", 1).path()]);
    for n in 2..=4 {
        d.ok(&["deploy", "--no-publish", numbered("drafts", n).path()]);
    }
    assert_eq!(d.post("/fn/drafts@2", "{}").json(), 2);
    assert_eq!(on_disk(&d.data, "keep"), (1..=7).collect());
    // Warm workers of versions that are not routed do not keep them.
    assert_eq!(pools(&d, "keep"), (1..=7).collect());

    // keep: live 7; last two 6, 7; alias prod 2; the last three releases
    // (alias prod -> 2, publish 6 -> 7, publish 5 -> 6) name 2, 5, 6, 7.
    // drafts: live 1; last two 3, 4.
    let gone = ["keep@1", "keep@3", "keep@4", "drafts@2"];
    let dry = d.post("/api/v1/gc", r#"{"dry_run": true}"#);
    assert_eq!(dry.status, 200, "{}", dry.text());
    let report = dry.json();
    assert_eq!(report["dry_run"], true);
    let listed: BTreeSet<String> = report["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| format!("{}@{}", v["function"].as_str().unwrap_or(""), v["version"]))
        .collect();
    assert_eq!(listed, gone.iter().map(|s| s.to_string()).collect());
    let dirs: Vec<String> = report["dirs"]
        .as_array()
        .expect("dirs")
        .iter()
        .filter(|d| d["kind"] == "code")
        .filter_map(|d| d["path"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    for needle in [
        "/code/keep/v1-",
        "/code/keep/v3-",
        "/code/keep/v4-",
        "/code/drafts/v2-",
    ] {
        assert!(
            dirs.iter().any(|p| p.contains(needle)),
            "{needle}: {dirs:?}"
        );
    }
    // The CLI shows the same, and nothing has gone.
    let out = d.ok(&["gc", "--dry-run"]);
    assert!(out.contains("would remove 4 versions"), "{out}");
    for name in gone {
        assert!(out.contains(name), "{name}: {out}");
    }
    assert_eq!(stored(&d, "keep"), (1..=7).collect::<Vec<_>>());
    assert_eq!(stored(&d, "drafts"), [1, 2, 3, 4]);
    assert_eq!(on_disk(&d.data, "keep"), (1..=7).collect());

    assert_eq!(pools(&d, "keep"), (1..=7).collect());

    let out = d.ok(&["gc"]);
    assert!(out.contains("removed 4 versions"), "{out}");
    assert!(pools(&d, "keep").is_disjoint(&BTreeSet::from([1, 3, 4])));
    assert_eq!(stored(&d, "keep"), [2, 5, 6, 7]);
    assert_eq!(stored(&d, "drafts"), [1, 3, 4]);
    assert_eq!(on_disk(&d.data, "keep"), BTreeSet::from([2, 5, 6, 7]));
    assert_eq!(on_disk(&d.data, "drafts"), BTreeSet::from([1, 3, 4]));
    // Removed versions are gone for callers; kept ones all answer.
    let reply = d.post("/fn/keep@1", "{}");
    assert_eq!(reply.code(), "version_not_found");
    assert_eq!(d.post("/fn/keep", "{}").json(), 7);
    assert_eq!(d.post("/fn/keep@prod", "{}").json(), 2);
    assert_eq!(d.post("/fn/keep@5", "{}").json(), 5);
    assert_eq!(d.post("/fn/drafts", "{}").json(), 1);
    assert_eq!(d.post("/fn/drafts@4", "{}").json(), 4);
    // A rollback still finds the version it goes back to.
    d.ok(&["rollback", "keep"]);
    assert_eq!(d.post("/fn/keep", "{}").json(), 6);
    // New versions are numbered after the last one ever stored.
    let out = d.ok(&["deploy", numbered("drafts", 5).path()]);
    assert!(out.contains("stored as version 5"), "{out}");

    // A second gc removes what the new releases let go of: keep@5 (the
    // last three releases, rollback 7 -> 6, alias prod -> 2 and publish
    // 6 -> 7, no longer name it) and drafts@3 (live 5, last two 4 and 5, the
    // history names 1 and 5).
    let again = d.post("/api/v1/gc", "{}").json();
    let left: BTreeSet<String> = again["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| format!("{}@{}", v["function"].as_str().unwrap_or(""), v["version"]))
        .collect();
    assert_eq!(
        left,
        BTreeSet::from(["keep@5".to_owned(), "drafts@3".to_owned()]),
        "{again}"
    );
    assert_eq!(stored(&d, "keep"), [2, 6, 7]);
}

#[test]
fn gc_removes_dependency_installs_no_kept_version_needs() {
    let d = daemon("1", "1");
    let f = FnDir::new(
        "name = \"pinned\"\nruntime = \"python\"\nentry = \"main.handler\"\n",
        &[
            ("requirements.txt", "six==1.15.0\n"),
            (
                "main.py",
                "import six\n\ndef handler(event):\n    return six.__version__\n",
            ),
        ],
    );
    d.ok(&["deploy", f.path()]);
    f.write("requirements.txt", "six==1.16.0\n");
    d.ok(&["deploy", f.path()]);
    f.write(
        "main.py",
        "import six\n\ndef handler(event):\n    return 'v3 ' + six.__version__\n",
    );
    d.ok(&["deploy", f.path()]);
    let installs = |d: &Daemon| -> usize {
        std::fs::read_dir(d.data.join("deps/python"))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    assert_eq!(installs(&d), 2);

    // Kept: 3 (the newest, live) and 2 (the last release came from it);
    // 1 and its install of six 1.15.0 go.
    let report = d.post("/api/v1/gc", "{}").json();
    let deps: Vec<&serde_json::Value> = report["dirs"]
        .as_array()
        .expect("dirs")
        .iter()
        .filter(|d| d["kind"] == "deps")
        .collect();
    assert_eq!(deps.len(), 1, "{report}");
    assert!(deps[0]["bytes"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(stored(&d, "pinned"), [2, 3]);
    assert_eq!(installs(&d), 1);
    assert_eq!(d.post("/fn/pinned", "{}").json(), "v3 1.16.0");
    assert_eq!(d.post("/fn/pinned@2", "{}").json(), "1.16.0");
}
