//! Tests against the real cgroupfs. They run when the test runs as root on
//! a machine with cgroups, and skip (printing why) otherwise. Each test
//! uses its own tree, `hearth-<pid>-test-<label>`, so they can run in
//! parallel, and removes it.

use crate::cgroup::fs::{keyed_value, procs_in, under, Cgroupfs};
use crate::cgroup::mount::{parse_mountinfo, parse_proc_cgroup, relative_to};
use crate::cgroup::tree::app_rel;
use crate::cgroup::v2;
use crate::cgroup::*;
use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};

/// hearth's cgroups for one test, or `None` (skip) where unusable.
fn cgroups(label: &str) -> Option<Cgroups> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: cgroup tests need root");
        return None;
    }
    let name = format!("hearth-{}-test-{label}", std::process::id());
    match Cgroups::detect_named(&name) {
        Ok(Some(cg)) => {
            eprintln!("{}", cg.describe());
            Some(cg)
        }
        Ok(None) => {
            eprintln!("skipped: cgroups are not usable here (see the warning)");
            None
        }
        Err(e) => panic!("cgroup detection failed: {e}"),
    }
}

/// `sh -c script`, waiting for a line on stdin before it starts, so that
/// the test can move it into a cgroup first.
fn gated(script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("read _ || exit 1; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

/// A Python in `worker` allocates 200 MB: the OOM killer must end it
/// and the cgroup must say so.
fn allocate_200_mb_and_be_killed(worker: &WorkerCgroup, python: &str) {
    let mut child = gated(&format!(
        "exec {python} -c 'b = bytearray(200 * 1024 * 1024); print(len(b))'"
    ));
    worker.add(child.id()).expect("add");
    go(&mut child);
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(worker.oom_killed());
}

fn go(child: &mut Child) {
    let stdin = child.stdin.as_mut().expect("piped stdin");
    stdin.write_all(b"go\n").expect("write to the child");
    stdin.flush().expect("flush");
}

/// A Python interpreter that starts fast, if there is one.
fn python() -> Option<String> {
    let pinned = "/root/.pyenv/versions/3.11.7/bin/python3.11";
    if Path::new(pinned).exists() {
        return Some(pinned.to_string());
    }
    let ok = Command::new("python3")
        .args(["-c", "pass"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| "python3".to_string())
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn assert_gone(dirs: &[PathBuf]) {
    for dir in dirs {
        assert!(!dir.exists(), "{} should have been removed", dir.display());
    }
}

#[test]
fn detect_is_ok_for_anyone() {
    let name = format!("hearth-{}-test-detect", std::process::id());
    let root = nix::unistd::geteuid().is_root();
    match Cgroups::detect_named(&name) {
        Ok(Some(cg)) => {
            assert!(root, "detected usable cgroups without root");
            let roots = cg.root_dirs();
            assert!(roots.iter().all(|r| r.is_dir()));
            drop(cg);
            assert_gone(&roots);
        }
        Ok(None) => eprintln!("cgroups are not usable here"),
        Err(e) => panic!("unusable cgroups must give Ok(None), not: {e}"),
    }
}

#[test]
fn worker_add_kill_drop() {
    let Some(cg) = cgroups("life") else { return };
    let worker = cg.worker("life", &WorkerLimits::default()).expect("worker");
    let dirs = worker.dirs();
    assert!(dirs.iter().all(|d| d.is_dir()));
    let mut child = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    worker.add(child.id()).expect("add");
    assert_eq!(worker.pids(), vec![child.id()]);
    assert!(worker.add(0).is_err(), "pid 0 would move the test itself");
    worker.kill_all();
    assert!(worker.pids().is_empty(), "still there: {:?}", worker.pids());
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(!worker.oom_killed());
    drop(worker);
    assert_gone(&dirs);
    cg.cleanup();
    assert_gone(&cg.root_dirs());
}

#[test]
fn drop_kills_and_removes_unreaped_processes() {
    let Some(cg) = cgroups("drop") else { return };
    let worker = cg.worker("drop", &WorkerLimits::default()).expect("worker");
    let dirs = worker.dirs();
    let mut child = gated("sleep 30 & sleep 30 & wait");
    worker.add(child.id()).expect("add");
    go(&mut child);
    // The shell and its two sleeps.
    let deadline = Instant::now() + Duration::from_secs(5);
    while worker.pids().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(worker.pids().len(), 3);
    let started = Instant::now();
    drop(worker); // The shell is not reaped yet: a zombie must not hold the cgroup.
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "drop took {:?}",
        started.elapsed()
    );
    assert_gone(&dirs);
    assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
}

#[test]
fn kill_all_outruns_a_forking_loop() {
    let Some(cg) = cgroups("forks") else { return };
    let worker = cg
        .worker("forks", &WorkerLimits::default())
        .expect("worker");
    let mut child = gated("while :; do sleep 10 & done");
    worker.add(child.id()).expect("add");
    go(&mut child);
    std::thread::sleep(Duration::from_millis(100));
    let before = worker.pids().len();
    worker.kill_all();
    // kill_all waits only about 60 ms (the daemon must not stall); on a
    // loaded machine the last ones may still be finishing their exit.
    // What matters is that none escapes and none is made again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !worker.pids().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(worker.pids().is_empty(), "left: {:?}", worker.pids());
    assert!(before > 2, "only {before} processes were running");
    assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
}

#[test]
fn memory_limit_ooms() {
    let Some(cg) = cgroups("oom") else { return };
    if !cg.has(Controller::Memory) {
        eprintln!("skipped: no memory controller");
        return;
    }
    let Some(python) = python() else {
        eprintln!("skipped: no python3");
        return;
    };
    // Limits set after creation, as for a generic worker loading a function.
    let worker = cg.worker("oom", &WorkerLimits::default()).expect("worker");
    worker
        .set_limits(&WorkerLimits {
            memory_mb: 32,
            ..WorkerLimits::default()
        })
        .expect("limit");
    allocate_200_mb_and_be_killed(&worker, &python);
    let peak = worker.memory_peak_bytes().expect("peak");
    assert!(
        peak <= 33 * 1024 * 1024 && peak > 1024 * 1024,
        "peak {peak}"
    );
}

#[test]
fn memory_limit_changes() {
    let Some(cg) = cgroups("memset") else { return };
    if !cg.has(Controller::Memory) {
        eprintln!("skipped: no memory controller");
        return;
    }
    let worker = cg
        .worker("memset", &WorkerLimits::default())
        .expect("worker");
    let dir = worker
        .inner
        .backend
        .dir(Controller::Memory, &worker.rel)
        .expect("memory dir");
    let v2 = cg.inner.backend.version() == "v2";
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    // Lower from unlimited, raise, lower below the first, lift.
    for mb in [32u64, 128, 16, 0] {
        worker
            .set_limits(&WorkerLimits {
                memory_mb: mb,
                ..WorkerLimits::default()
            })
            .unwrap_or_else(|e| panic!("{mb} MB: {e}"));
        if v2 {
            let want = if mb == 0 {
                "max".to_string()
            } else {
                (mb << 20).to_string()
            };
            assert_eq!(read(&dir.join("memory.max")), want);
        } else {
            let got: u64 = read(&dir.join("memory.limit_in_bytes"))
                .parse()
                .expect("number");
            if mb == 0 {
                assert!(got > 1 << 60, "{got}");
            } else {
                assert_eq!(got, mb << 20);
            }
            if memsw.exists() {
                assert_eq!(read(&memsw), got.to_string());
            }
        }
    }
}

#[test]
fn pids_limit_stops_forks() {
    let Some(cg) = cgroups("pids") else { return };
    if !cg.has(Controller::Pids) {
        eprintln!("skipped: no pids controller");
        return;
    }
    let limits = WorkerLimits {
        pids: 5,
        ..WorkerLimits::default()
    };
    let worker = cg.worker("pids", &limits).expect("worker");
    let mut child = gated("for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; wait");
    worker.add(child.id()).expect("add");
    go(&mut child);
    let pids_dir = worker
        .inner
        .backend
        .dir(Controller::Pids, &worker.rel)
        .expect("pids dir");
    // dash gives up at the first fork refused, leaving the sleeps it
    // started; a shell that does not would finish after 5 s.
    child.wait().expect("wait");
    let refused = keyed_value(&read(&pids_dir.join("pids.events")), "max").unwrap_or(0);
    assert!(refused >= 1, "no fork was refused");
    let count = worker.pids().len();
    assert!(count <= 4, "{count} sleeps besides the shell");
    worker.kill_all();
    assert!(worker.pids().is_empty());
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(stderr.to_lowercase().contains("fork"), "stderr: {stderr}");
}

#[test]
fn app_budget_covers_workers() {
    let Some(cg) = cgroups("budget") else { return };
    let v2 = cg.inner.backend.version() == "v2";
    cg.app(
        "budget",
        &AppBudget {
            memory_mb: 32,
            cpu_millicores: 500,
        },
    )
    .expect("app");
    let app = app_rel("budget").expect("name");
    if let Some(dir) = cg.inner.backend.dir(Controller::Cpu, &app) {
        let worker = cg
            .worker(
                "budget",
                &WorkerLimits {
                    cpu_millicores: 1000,
                    ..WorkerLimits::default()
                },
            )
            .expect("worker");
        let wdir = worker
            .inner
            .backend
            .dir(Controller::Cpu, &worker.rel)
            .expect("cpu dir");
        let quota = |d: &Path| {
            if v2 {
                read(&d.join("cpu.max"))
            } else {
                read(&d.join("cpu.cfs_quota_us"))
            }
        };
        if v2 {
            assert_eq!(quota(&dir), "50000 100000");
            assert_eq!(quota(&wdir), "100000 100000");
        } else {
            // v1: capped at the app's, lowered with it, given back when raised.
            assert_eq!(quota(&dir), "50000");
            assert_eq!(quota(&wdir), "50000");
            let budget = |mc| AppBudget {
                memory_mb: 32,
                cpu_millicores: mc,
            };
            cg.app("budget", &budget(200)).expect("lower");
            assert_eq!(
                (quota(&dir), quota(&wdir)),
                ("20000".into(), "20000".into())
            );
            cg.app("budget", &budget(2000)).expect("raise");
            assert_eq!(
                (quota(&dir), quota(&wdir)),
                ("200000".into(), "100000".into())
            );
            cg.app("budget", &budget(0)).expect("lift");
            assert_eq!((quota(&dir), quota(&wdir)), ("-1".into(), "100000".into()));
        }
    }
    if !cg.has(Controller::Memory) {
        eprintln!("skipped the memory half: no memory controller");
        return;
    }
    let Some(python) = python() else {
        eprintln!("skipped the memory half: no python3");
        return;
    };
    // The worker itself is unlimited: only the app's 32 MB stop it.
    let worker = cg
        .worker("budget", &WorkerLimits::default())
        .expect("worker");
    allocate_200_mb_and_be_killed(&worker, &python);
}

#[test]
fn cleanup_removes_everything() {
    let Some(cg) = cgroups("cleanup") else { return };
    cg.app("cleanup", &AppBudget::default()).expect("app");
    let worker = cg
        .worker("cleanup", &WorkerLimits::default())
        .expect("worker");
    let mut child = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    worker.add(child.id()).expect("add");
    let roots = cg.root_dirs();
    cg.cleanup();
    assert_gone(&roots);
    assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
    cg.cleanup();
    assert!(matches!(
        cg.worker("cleanup", &WorkerLimits::default()),
        Err(CgroupError::Closed { .. })
    ));
    drop(worker); // Its directories are gone already: quietly nothing to do.
}

#[test]
fn last_handle_dropped_removes_tree() {
    let Some(cg) = cgroups("lastdrop") else {
        return;
    };
    let worker = cg.worker("x", &WorkerLimits::default()).expect("worker");
    let roots = cg.root_dirs();
    drop(cg);
    assert!(
        roots.iter().all(|r| r.is_dir()),
        "a worker still holds the tree"
    );
    drop(worker);
    assert_gone(&roots);
}

/// The v2 hierarchy the test process sits in, as `(own dir)`, if one is
/// mounted (on hybrid hosts like this one: `/sys/fs/cgroup/unified`,
/// usually without controllers).
fn v2_own_dir() -> Option<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: cgroup tests need root");
        return None;
    }
    let mounts = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").ok()?);
    let own = parse_proc_cgroup(&fs::read_to_string("/proc/self/cgroup").ok()?);
    let line = own.iter().find(|l| l.id == "0")?;
    let found = mounts.iter().filter(|m| m.v2).find_map(|m| {
        let rel = relative_to(&line.path, &m.root)?;
        let dir = under(&m.mount_point, Path::new(rel));
        dir.is_dir().then_some(dir)
    });
    if found.is_none() {
        eprintln!("skipped: no cgroup v2 hierarchy is mounted");
    }
    found
}

#[test]
fn v2_tree_without_controllers() {
    let Some(own) = v2_own_dir() else { return };
    let name = format!("hearth-{}-test-v2", std::process::id());
    let cg = v2::build(&Cgroupfs::host(), &own, &name, Vec::new()).expect("build");
    let worker = cg
        .worker(
            "v2",
            &WorkerLimits {
                memory_mb: 10,
                cpu_millicores: 100,
                pids: 3,
            },
        )
        .expect("worker");
    let dirs = worker.dirs();
    let mut child = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    worker.add(child.id()).expect("add");
    assert_eq!(worker.pids(), vec![child.id()]);
    assert_eq!(worker.memory_peak_bytes(), None);
    worker.kill_all();
    assert!(worker.pids().is_empty());
    assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
    drop(worker);
    assert_gone(&dirs);
    let roots = cg.root_dirs();
    cg.cleanup();
    assert_gone(&roots);
}

#[test]
fn v2_delegation_moves_into_leaf() {
    let Some(own) = v2_own_dir() else { return };
    // A stand-in for the daemon's own cgroup, with a process in it.
    let fake_own = own.join(format!("hearth-{}-test-deleg", std::process::id()));
    Cgroupfs::host().make_dir(&fake_own).expect("mkdir");
    let mut child = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let moved = fs::write(fake_own.join("cgroup.procs"), child.id().to_string())
        .map_err(|e| e.to_string())
        .and_then(|()| {
            v2::move_to_leaf(&Cgroupfs::host(), &fake_own, child.id()).map_err(|e| e.to_string())
        });
    let moved_again =
        v2::move_to_leaf(&Cgroupfs::host(), &fake_own, child.id()).map_err(|e| e.to_string());
    let leaf = fake_own.join(v2::DAEMON_LEAF);
    let in_leaf = procs_in(std::slice::from_ref(&leaf));
    let in_own = procs_in(std::slice::from_ref(&fake_own));
    let _ = child.kill();
    let _ = child.wait();
    let _ = fs::remove_dir(&leaf);
    let _ = fs::remove_dir(&fake_own);
    assert_eq!(moved, Ok(true));
    assert_eq!(moved_again, Ok(false), "nothing left to move");
    assert!(in_leaf.contains(&child.id()), "{in_leaf:?}");
    assert!(in_own.is_empty(), "{in_own:?}");
    assert_gone(&[leaf, fake_own]);
}
