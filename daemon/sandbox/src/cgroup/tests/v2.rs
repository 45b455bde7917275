//! The v2 back end on a fixture tree ([`Fixture::v2`]), as an ordinary
//! user: delegation out of the daemon's own cgroup, which values land in
//! which files, how events are read, and that groups are removed.

use std::path::PathBuf;

use super::fixture::{read, write, Fixture};
use crate::cgroup::{AppBudget, CgroupError, Cgroups, WorkerLimits};

fn detect(fixture: &Fixture, name: &str) -> Cgroups {
    fixture.detect(name).expect("usable cgroups on the fixture")
}

/// Group `rel` of hearth's tree `name`.
fn group(fixture: &Fixture, name: &str, rel: &str) -> PathBuf {
    let root = fixture.own("").join(name);
    if rel.is_empty() {
        root
    } else {
        root.join(rel)
    }
}

#[test]
fn detection_delegates_out_of_the_daemons_cgroup() {
    let fixture = Fixture::v2();
    let own = fixture.own("");
    let cg = detect(&fixture, "hearth-1");
    assert_eq!(cg.describe(), "cgroup v2 (memory, cpu, pids) in hearth-1");
    // The daemon moved into its leaf, then the controllers were handed down.
    assert_eq!(
        read(&own.join("daemon/cgroup.procs")),
        std::process::id().to_string()
    );
    assert_eq!(
        read(&own.join("cgroup.subtree_control")),
        "+memory +cpu +pids"
    );
    let root = group(&fixture, "hearth-1", "");
    assert_eq!(cg.root_dirs(), std::slice::from_ref(&root));
    assert_eq!(
        read(&root.join("cgroup.subtree_control")),
        "+memory +cpu +pids"
    );
    assert_eq!(read(&root.join("cgroup.controllers")), "memory cpu pids");
    cg.cleanup();
    assert!(!root.exists());
    assert!(own.join("daemon").is_dir(), "the daemon's leaf stays");
}

#[test]
fn delegated_controllers_are_not_delegated_again() {
    let fixture = Fixture::v2();
    let own = fixture.own("");
    write(&own.join("cgroup.subtree_control"), "cpu memory pids io\n");
    let cg = detect(&fixture, "hearth-2");
    assert!(
        !own.join("daemon").exists(),
        "nothing to move out of the way"
    );
    assert_eq!(
        read(&own.join("cgroup.subtree_control")),
        "cpu memory pids io"
    );
    drop(cg);
}

#[test]
fn without_controllers_there_are_no_cgroups() {
    let fixture = Fixture::v2();
    write(&fixture.own("").join("cgroup.controllers"), "cpuset io\n");
    assert!(fixture.detect("hearth-3").is_none());
    assert!(!group(&fixture, "hearth-3", "").exists());
    // Nor when /proc/self/cgroup has no v2 line, or one outside the mount.
    let mut fixture = Fixture::v2();
    fixture.proc_cgroup = "4:memory:/x\n".into();
    assert!(fixture.detect("hearth-4").is_none());
    fixture.proc_cgroup = "0::/../outside\n".into();
    assert!(fixture.detect("hearth-5").is_none());
}

#[test]
fn worker_limits_land_in_their_files() {
    let fixture = Fixture::v2();
    let cg = detect(&fixture, "hearth-6");
    let limits = WorkerLimits {
        memory_mb: 64,
        cpu_millicores: 250,
        pids: 7,
    };
    let worker = cg.worker("shop", &limits).expect("worker");
    let dir = group(&fixture, "hearth-6", "app-shop/w-0");
    assert_eq!(worker.dirs(), std::slice::from_ref(&dir));
    assert_eq!(worker.path_label(), dir.display().to_string());
    let app = group(&fixture, "hearth-6", "app-shop");
    assert_eq!(
        read(&app.join("cgroup.subtree_control")),
        "+memory +cpu +pids"
    );
    assert_eq!(read(&dir.join("memory.oom.group")), "1");
    assert_eq!(read(&dir.join("memory.max")), "67108864");
    assert_eq!(read(&dir.join("memory.swap.max")), "0");
    assert_eq!(read(&dir.join("cpu.max")), "25000 100000");
    assert_eq!(read(&dir.join("pids.max")), "7");
    worker.set_limits(&WorkerLimits::default()).expect("lift");
    assert_eq!(read(&dir.join("memory.max")), "max");
    assert_eq!(read(&dir.join("memory.swap.max")), "max");
    assert_eq!(read(&dir.join("cpu.max")), "max 100000");
    assert_eq!(read(&dir.join("pids.max")), "max");
    // The smallest quota the kernel takes.
    worker
        .set_limits(&WorkerLimits {
            cpu_millicores: 1,
            ..WorkerLimits::default()
        })
        .expect("tiny");
    assert_eq!(read(&dir.join("cpu.max")), "1000 100000");
}

#[test]
fn app_budget_is_the_parents_limit() {
    let fixture = Fixture::v2();
    let cg = detect(&fixture, "hearth-7");
    cg.app(
        "budget",
        &AppBudget {
            memory_mb: 32,
            cpu_millicores: 500,
        },
    )
    .expect("app");
    let worker = cg
        .worker(
            "budget",
            &WorkerLimits {
                cpu_millicores: 1000,
                ..WorkerLimits::default()
            },
        )
        .expect("worker");
    let app = group(&fixture, "hearth-7", "app-budget");
    assert_eq!(read(&app.join("memory.max")), "33554432");
    assert_eq!(read(&app.join("memory.swap.max")), "0");
    assert_eq!(read(&app.join("cpu.max")), "50000 100000");
    // v2 caps children by itself: the worker keeps what it asked for.
    assert_eq!(read(&app.join("w-0/cpu.max")), "100000 100000");
    drop(worker);
}

#[test]
fn a_missing_memory_controller_skips_memory() {
    let fixture = Fixture::v2();
    write(&fixture.own("").join("cgroup.controllers"), "cpu pids\n");
    let cg = detect(&fixture, "hearth-8");
    assert_eq!(cg.describe(), "cgroup v2 (cpu, pids) in hearth-8");
    let worker = cg
        .worker(
            "x",
            &WorkerLimits {
                memory_mb: 10,
                ..WorkerLimits::default()
            },
        )
        .expect("worker");
    let dir = group(&fixture, "hearth-8", "app-x/w-0");
    assert!(!dir.join("memory.max").exists());
    assert!(!worker.oom_killed());
    assert_eq!(worker.memory_peak_bytes(), None);
}

#[test]
fn events_and_peak_are_read() {
    let fixture = Fixture::v2();
    let cg = detect(&fixture, "hearth-9");
    let worker = cg.worker("ev", &WorkerLimits::default()).expect("worker");
    let dir = group(&fixture, "hearth-9", "app-ev/w-0");
    assert!(!worker.oom_killed());
    assert!(!worker.pids_limit_hit());
    assert_eq!(worker.memory_peak_bytes(), Some(0));
    write(
        &dir.join("memory.events"),
        "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\noom_group_kill 1\n",
    );
    write(&dir.join("pids.events"), "max 2\n");
    write(&dir.join("memory.peak"), "4096\n");
    assert!(worker.oom_killed());
    assert!(worker.pids_limit_hit());
    assert_eq!(worker.memory_peak_bytes(), Some(4096));
}

#[test]
fn kill_uses_cgroup_kill_and_removal_removes() {
    let fixture = Fixture::v2();
    let cg = detect(&fixture, "hearth-10");
    let worker = cg.worker("life", &WorkerLimits::default()).expect("worker");
    let dir = group(&fixture, "hearth-10", "app-life/w-0");
    worker.kill_all();
    assert_eq!(read(&dir.join("cgroup.kill")), "1");
    drop(worker);
    assert!(!dir.exists());
    let app = group(&fixture, "hearth-10", "app-life");
    assert!(app.is_dir(), "the app's group stays until cleanup");
    cg.cleanup();
    assert!(!app.exists());
    assert!(!group(&fixture, "hearth-10", "").exists());
    assert!(matches!(
        cg.worker("life", &WorkerLimits::default()),
        Err(CgroupError::Closed { .. })
    ));
}

#[test]
fn without_cgroup_kill_the_group_is_frozen_and_thawed() {
    let fixture = Fixture::v2();
    std::fs::remove_file(fixture.own("").join("cgroup.kill")).expect("rm");
    let cg = detect(&fixture, "hearth-11");
    let worker = cg.worker("f", &WorkerLimits::default()).expect("worker");
    let dir = group(&fixture, "hearth-11", "app-f/w-0");
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    worker.add(child.id()).expect("add");
    // The fake kernel reports the freeze done; the child is signalled for
    // real, and the fixture keeps listing it until the test clears it.
    write(&dir.join("cgroup.events"), "populated 1\nfrozen 1\n");
    worker.kill_all();
    assert_eq!(read(&dir.join("cgroup.freeze")), "0");
    // Cleared before the child is reaped, so that no recycled pid is listed.
    write(&dir.join("cgroup.procs"), "");
    drop(worker);
    assert!(!dir.exists());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
}
