//! The v1 back end on a fixture tree ([`Fixture::v1`]), as an ordinary
//! user: which values land in which hierarchy's files, how CPU quotas nest
//! under the app's, how events are read, and that groups are removed.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::fixture::{read, write, Fixture};
use crate::cgroup::{AppBudget, CgroupError, Cgroups, WorkerLimits};

const HIERARCHIES: [&str; 4] = ["memory", "cpu,cpuacct", "pids", "freezer"];

/// Group `rel` (below hearth's tree `name`) in hierarchy `mount`.
fn group(fixture: &Fixture, mount: &str, name: &str, rel: &str) -> PathBuf {
    let root = fixture.own(mount).join(name);
    if rel.is_empty() {
        root
    } else {
        root.join(rel)
    }
}

fn detect(fixture: &Fixture, name: &str) -> Cgroups {
    fixture.detect(name).expect("usable cgroups on the fixture")
}

#[test]
fn detection_makes_the_tree_in_every_hierarchy() {
    let fixture = Fixture::v1();
    let cg = detect(&fixture, "hearth-1");
    assert_eq!(
        cg.describe(),
        "cgroup v1 (memory, cpu, pids, freezer) in hearth-1"
    );
    let roots = cg.root_dirs();
    let want: Vec<PathBuf> = HIERARCHIES
        .iter()
        .map(|h| group(&fixture, h, "hearth-1", ""))
        .collect();
    assert_eq!(roots, want);
    assert!(roots.iter().all(|r| r.is_dir()));
    assert_eq!(read(&roots[0].join("memory.use_hierarchy")), "1");
    assert!(
        !fixture.own("systemd").join("hearth-1").exists(),
        "name=systemd is no controller of hearth's"
    );
    cg.cleanup();
    assert!(roots.iter().all(|r| !r.exists()), "{roots:?}");
}

#[test]
fn worker_limits_land_in_their_hierarchies() {
    let fixture = Fixture::v1();
    let cg = detect(&fixture, "hearth-2");
    let limits = WorkerLimits {
        memory_mb: 64,
        cpu_millicores: 250,
        pids: 7,
    };
    let worker = cg.worker("shop", &limits).expect("worker");
    assert_eq!(
        worker.dirs(),
        HIERARCHIES
            .map(|h| group(&fixture, h, "hearth-2", "app-shop/w-0"))
            .to_vec()
    );
    let memory = group(&fixture, "memory", "hearth-2", "app-shop/w-0");
    let cpu = group(&fixture, "cpu,cpuacct", "hearth-2", "app-shop/w-0");
    let pids = group(&fixture, "pids", "hearth-2", "app-shop/w-0");
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(
        read(&memory.join("memory.memsw.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "25000");
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(&pids.join("pids.max")), "7");
    assert!(
        !memory.join("cpu.cfs_quota_us").exists(),
        "nothing lands in another controller's hierarchy"
    );
    assert_eq!(worker.path_label(), memory.display().to_string());
    // Lowered (memsw after the limit), then lifted.
    worker
        .set_limits(&WorkerLimits {
            memory_mb: 16,
            ..limits
        })
        .expect("lower");
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "16777216");
    assert_eq!(
        read(&memory.join("memory.memsw.limit_in_bytes")),
        "16777216"
    );
    worker.set_limits(&WorkerLimits::default()).expect("lift");
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "-1");
    assert_eq!(read(&memory.join("memory.memsw.limit_in_bytes")), "-1");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "-1");
    assert_eq!(read(&pids.join("pids.max")), "max");
    // A second worker gets the next name.
    let second = cg.worker("shop", &limits).expect("worker");
    assert!(second.path_label().ends_with("app-shop/w-1"));
}

#[test]
fn without_swap_accounting_only_the_limit_is_written() {
    let fixture = Fixture::v1();
    std::fs::remove_file(fixture.own("memory").join("memory.memsw.limit_in_bytes")).expect("rm");
    let cg = detect(&fixture, "hearth-3");
    let worker = cg
        .worker(
            "x",
            &WorkerLimits {
                memory_mb: 1,
                ..WorkerLimits::default()
            },
        )
        .expect("worker");
    let memory = group(&fixture, "memory", "hearth-3", "app-x/w-0");
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "1048576");
    assert!(!memory.join("memory.memsw.limit_in_bytes").exists());
    drop(worker);
}

#[test]
fn app_budget_caps_worker_quotas() {
    let fixture = Fixture::v1();
    let cg = detect(&fixture, "hearth-4");
    let budget = |mc| AppBudget {
        memory_mb: 32,
        cpu_millicores: mc,
    };
    cg.app("budget", &budget(500)).expect("app");
    let app_mem = group(&fixture, "memory", "hearth-4", "app-budget");
    assert_eq!(read(&app_mem.join("memory.limit_in_bytes")), "33554432");
    let app = group(&fixture, "cpu,cpuacct", "hearth-4", "app-budget");
    let wants_a_core = WorkerLimits {
        cpu_millicores: 1000,
        ..WorkerLimits::default()
    };
    let w0 = cg.worker("budget", &wants_a_core).expect("worker");
    let w1 = cg
        .worker("budget", &WorkerLimits::default())
        .expect("worker");
    let quota = |d: &Path| read(&d.join("cpu.cfs_quota_us"));
    let d0 = app.join("w-0");
    let d1 = app.join("w-1");
    assert_eq!(
        (quota(&app), quota(&d0), quota(&d1)),
        ("50000".into(), "50000".into(), "50000".into())
    );
    cg.app("budget", &budget(200)).expect("lower");
    assert_eq!(
        (quota(&app), quota(&d0), quota(&d1)),
        ("20000".into(), "20000".into(), "20000".into())
    );
    cg.app("budget", &budget(2000)).expect("raise");
    assert_eq!(
        (quota(&app), quota(&d0), quota(&d1)),
        ("200000".into(), "100000".into(), "200000".into())
    );
    cg.app("budget", &budget(0)).expect("lift");
    assert_eq!(
        (quota(&app), quota(&d0), quota(&d1)),
        ("-1".into(), "100000".into(), "-1".into())
    );
    // A dropped worker's request is forgotten: it no longer steers quotas.
    drop(w1);
    cg.app("budget", &budget(300)).expect("lower again");
    assert_eq!((quota(&app), quota(&d0)), ("30000".into(), "30000".into()));
    assert!(!d1.exists());
    drop(w0);
}

#[test]
fn events_and_peak_are_read() {
    let fixture = Fixture::v1();
    let cg = detect(&fixture, "hearth-5");
    let worker = cg.worker("ev", &WorkerLimits::default()).expect("worker");
    assert!(!worker.oom_killed());
    assert!(!worker.pids_limit_hit());
    assert_eq!(worker.memory_peak_bytes(), Some(0));
    let memory = group(&fixture, "memory", "hearth-5", "app-ev/w-0");
    let pids = group(&fixture, "pids", "hearth-5", "app-ev/w-0");
    write(
        &memory.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    write(&pids.join("pids.events"), "max 3\n");
    write(&memory.join("memory.max_usage_in_bytes"), "123456789\n");
    assert!(worker.oom_killed());
    assert!(worker.pids_limit_hit());
    assert_eq!(worker.memory_peak_bytes(), Some(123_456_789));
    // Garbage is no event, and no peak.
    write(&memory.join("memory.oom_control"), "oom_kill lots\n");
    write(&memory.join("memory.max_usage_in_bytes"), "?\n");
    assert!(!worker.oom_killed());
    assert_eq!(worker.memory_peak_bytes(), None);
}

#[test]
fn add_kill_and_removal() {
    let fixture = Fixture::v1();
    let cg = detect(&fixture, "hearth-6");
    let worker = cg.worker("life", &WorkerLimits::default()).expect("worker");
    let dirs = worker.dirs();
    let mut child = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    worker.add(child.id()).expect("add");
    for dir in &dirs {
        assert_eq!(read(&dir.join("cgroup.procs")), child.id().to_string());
    }
    assert_eq!(worker.pids(), vec![child.id()]);
    assert!(matches!(worker.add(0), Err(CgroupError::BadPid { .. })));
    assert!(worker.add(std::process::id()).is_err(), "not the daemon");
    // The listed process is killed for real; the fixture keeps listing it
    // (the child is not reaped, so its pid is not reused meanwhile).
    worker.kill_all();
    let freezer = group(&fixture, "freezer", "hearth-6", "app-life/w-0");
    assert_eq!(read(&freezer.join("freezer.state")), "THAWED");
    // Still listed: the removal fails, and is retried at the next worker.
    drop(worker);
    assert!(dirs.iter().all(|d| d.is_dir()));
    for dir in &dirs {
        write(&dir.join("cgroup.procs"), "");
    }
    let next = cg.worker("life", &WorkerLimits::default()).expect("worker");
    assert!(dirs.iter().all(|d| !d.exists()), "left over: {dirs:?}");
    let next_dirs = next.dirs();
    drop(next);
    assert!(next_dirs.iter().all(|d| !d.exists()));
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let roots = cg.root_dirs();
    cg.cleanup();
    assert!(roots.iter().all(|r| !r.exists()));
    assert!(HIERARCHIES.iter().all(|h| fixture.own(h).is_dir()));
    assert!(matches!(
        cg.app("life", &AppBudget::default()),
        Err(CgroupError::Closed { .. })
    ));
}

#[test]
fn a_tree_left_with_the_same_name_is_emptied() {
    let fixture = Fixture::v1();
    for h in HIERARCHIES {
        let old = group(&fixture, h, "hearth-7", "app-old/w-3");
        std::fs::create_dir_all(&old).expect("mkdir");
    }
    let cg = detect(&fixture, "hearth-7");
    for h in HIERARCHIES {
        assert!(group(&fixture, h, "hearth-7", "").is_dir());
        assert!(!group(&fixture, h, "hearth-7", "app-old").exists());
    }
    drop(cg);
    assert!(HIERARCHIES
        .iter()
        .all(|h| !group(&fixture, h, "hearth-7", "").exists()));
}

#[test]
fn missing_or_unreachable_hierarchies_are_skipped() {
    // No freezer line, and the pids cgroup outside every pids mount.
    let mut fixture = Fixture::v1();
    fixture.proc_cgroup = fixture
        .proc_cgroup
        .lines()
        .filter(|l| !l.contains(":freezer:"))
        .map(|l| {
            if l.contains(":pids:") {
                "3:pids:/elsewhere\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let cg = detect(&fixture, "hearth-8");
    assert_eq!(cg.describe(), "cgroup v1 (memory, cpu) in hearth-8");
    let worker = cg
        .worker(
            "x",
            &WorkerLimits {
                pids: 3,
                ..WorkerLimits::default()
            },
        )
        .expect("a limit without its controller is skipped");
    assert!(!worker.pids_limit_hit());
    drop(worker);
    drop(cg);
    // Without any controller that carries limits, no cgroups at all.
    fixture.proc_cgroup = "5:freezer:/hearth.service\n0::/\n".into();
    assert!(fixture.detect("hearth-9").is_none());
    assert!(!fixture.own("freezer").join("hearth-9").exists());
}

#[test]
fn bad_app_names_are_refused() {
    let fixture = Fixture::v1();
    let cg = detect(&fixture, "hearth-10");
    for bad in ["", "..", "a/b"] {
        assert!(matches!(
            cg.worker(bad, &WorkerLimits::default()),
            Err(CgroupError::BadName { .. })
        ));
    }
    assert!(cg.app(".hidden", &AppBudget::default()).is_err());
    assert!(!fixture
        .own("memory")
        .join("hearth-10")
        .join("app-")
        .exists());
}
