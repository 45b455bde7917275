//! Fake cgroup filesystems in a temporary directory, for tests that run
//! without root: a v1 host (one hierarchy per controller) or a v2 host
//! (one tree), each with the control files the kernel would show, and a
//! [`FakeKernel`] that does what cgroupfs does on `mkdir` (a new group gets
//! the control files at their defaults) and `rmdir` (refused while the
//! group has processes or children; the control files go with it).
//!
//! Nothing here touches /sys. Control files are plain files: what hearth
//! writes stays there for the test to read, and what the kernel would
//! report (events, peaks, processes) the test writes itself.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cgroup::fs::{Cgroupfs, GroupDirs};
use crate::cgroup::Cgroups;

/// Where the daemon runs in every fixture hierarchy.
const V1_OWN: &str = "hearth.service";
const V2_OWN: &str = "system.slice/hearth.service";

/// A control file and what it holds.
type File = (&'static str, &'static str);

/// The cgroup v1 hierarchies of the fixture: mount directory, mountinfo
/// super options, and the control files of the daemon's own cgroup.
const V1_HIERARCHIES: [(&str, &str, &[File]); 5] = [
    (
        "memory",
        "rw,memory",
        &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory.max_usage_in_bytes", "0\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
            ("memory.use_hierarchy", "1\n"),
        ],
    ),
    (
        "cpu,cpuacct",
        "rw,cpu,cpuacct",
        &[
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.shares", "1024\n"),
            ("cpuacct.usage", "0\n"),
        ],
    ),
    (
        "pids",
        "rw,pids",
        &[
            ("pids.max", "max\n"),
            ("pids.current", "1\n"),
            ("pids.events", "max 0\n"),
        ],
    ),
    ("freezer", "rw,freezer", &[("freezer.state", "THAWED\n")]),
    ("systemd", "rw,xattr,name=systemd", &[]),
];

/// The control files of the daemon's own cgroup on the v2 fixture (the
/// memory, cpu and pids files are there because the parent enables them).
const V2_FILES: [File; 15] = [
    ("cgroup.controllers", "cpuset cpu io memory pids\n"),
    ("cgroup.subtree_control", "\n"),
    ("cgroup.type", "domain\n"),
    ("cgroup.events", "populated 1\nfrozen 0\n"),
    ("cgroup.freeze", "0\n"),
    ("cgroup.kill", ""),
    ("memory.max", "max\n"),
    ("memory.swap.max", "max\n"),
    ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
    ("memory.peak", "0\n"),
    ("memory.oom.group", "0\n"),
    ("cpu.max", "max 100000\n"),
    ("cpu.weight", "100\n"),
    ("pids.max", "max\n"),
    ("pids.events", "max 0\n"),
];

/// What a control file holds in a group just made, as the kernel sets it.
fn default_contents(file: &str) -> &'static str {
    match file {
        "memory.limit_in_bytes" | "memory.memsw.limit_in_bytes" => "9223372036854771712\n",
        "memory.oom_control" => "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.use_hierarchy" => "1\n",
        "cpu.cfs_period_us" => "100000\n",
        "cpu.cfs_quota_us" => "-1\n",
        "cpu.shares" => "1024\n",
        "cpu.max" => "max 100000\n",
        "cpu.weight" => "100\n",
        "memory.max" | "memory.swap.max" | "pids.max" => "max\n",
        "memory.events" => "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
        "pids.events" => "max 0\n",
        "freezer.state" => "THAWED\n",
        "cgroup.type" => "domain\n",
        "cgroup.events" => "populated 0\nfrozen 0\n",
        "cgroup.freeze" | "memory.oom.group" | "memory.peak" | "memory.max_usage_in_bytes" => "0\n",
        "pids.current" | "cpuacct.usage" => "0\n",
        _ => "",
    }
}

/// Does cgroupfs in a fixture tree: `mkdir` fills the new group with the
/// control files its parent has (on v2 only those of the controllers the
/// parent hands down), at their defaults; `rmdir` fails with `EBUSY` while
/// the group lists processes or has child groups, and otherwise takes the
/// control files along.
#[derive(Debug)]
pub(crate) struct FakeKernel;

impl GroupDirs for FakeKernel {
    fn create(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)?;
        let Some(parent) = dir.parent() else {
            return Ok(());
        };
        let subtree = fs::read_to_string(parent.join("cgroup.subtree_control")).ok();
        let handed_down: Vec<String> = subtree
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(|w| w.trim_start_matches('+').to_string())
            .collect();
        for entry in fs::read_dir(parent)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let controller = name.split('.').next().unwrap_or("");
            let contents = match (&subtree, name.as_str()) {
                (Some(_), "cgroup.controllers") => handed_down.join(" ") + "\n",
                // v2: a controller's files appear only where it is enabled.
                (Some(_), _)
                    if controller != "cgroup" && !handed_down.iter().any(|c| c == controller) =>
                {
                    continue
                }
                _ => default_contents(&name).to_string(),
            };
            fs::write(dir.join(&name), contents)?;
        }
        Ok(())
    }

    fn remove(&self, dir: &Path) -> io::Result<()> {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            files.push(entry.path());
        }
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if !procs.trim().is_empty() {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        for file in files {
            fs::remove_file(file)?;
        }
        fs::remove_dir(dir)
    }
}

/// A fake host: a cgroupfs tree under a temporary directory, and the
/// mountinfo and /proc/self/cgroup texts that go with it.
pub(crate) struct Fixture {
    /// Removed when the fixture is dropped (after the handles made from it,
    /// which must be declared after it).
    dir: tempfile::TempDir,
    pub(crate) fs: Cgroupfs,
    pub(crate) mountinfo: String,
    pub(crate) proc_cgroup: String,
    pub(crate) unified: bool,
}

impl Fixture {
    /// A cgroup v1 host: memory, cpu+cpuacct, pids, freezer and systemd's
    /// name hierarchy, and an empty cgroup2 at `unified`; the daemon is in
    /// `/hearth.service` of each.
    pub(crate) fn v1() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut mountinfo =
            String::from("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n");
        let mut proc_cgroup = String::new();
        for (i, (mount, options, files)) in V1_HIERARCHIES.iter().enumerate() {
            mountinfo.push_str(&format!(
                "{} 31 0:{} / /sys/fs/cgroup/{mount} rw,relatime - cgroup cgroup {options}\n",
                32 + i,
                29 + i
            ));
            let controllers = options
                .trim_start_matches("rw,xattr,")
                .trim_start_matches("rw,");
            proc_cgroup.push_str(&format!("{}:{controllers}:/{V1_OWN}\n", i + 1));
            let own = dir.path().join("sys/fs/cgroup").join(mount).join(V1_OWN);
            fs::create_dir_all(&own).expect("mkdir");
            let common = [
                ("cgroup.procs", ""),
                ("tasks", ""),
                ("notify_on_release", "0\n"),
            ];
            for (file, text) in common.iter().chain(files.iter()) {
                fs::write(own.join(file), text).expect("write");
            }
        }
        mountinfo
            .push_str("41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
        proc_cgroup.push_str("0::/\n");
        fs::create_dir_all(dir.path().join("sys/fs/cgroup/unified")).expect("mkdir");
        Fixture::new(dir, mountinfo, proc_cgroup, false)
    }

    /// A cgroup v2 host under systemd: the daemon alone in
    /// `system.slice/hearth.service`, whose parent hands it memory, cpu and
    /// pids (and cpuset and io, which hearth does not use).
    pub(crate) fn v2() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mountinfo = "\
29 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
"
        .to_string();
        let proc_cgroup = format!("0::/{V2_OWN}\n");
        let own = dir.path().join("sys/fs/cgroup").join(V2_OWN);
        fs::create_dir_all(&own).expect("mkdir");
        for (file, text) in V2_FILES {
            fs::write(own.join(file), text).expect("write");
        }
        // The daemon is this test process.
        fs::write(
            own.join("cgroup.procs"),
            format!("{}\n", std::process::id()),
        )
        .expect("write");
        Fixture::new(dir, mountinfo, proc_cgroup, true)
    }

    fn new(
        dir: tempfile::TempDir,
        mountinfo: String,
        proc_cgroup: String,
        unified: bool,
    ) -> Fixture {
        let fs = Cgroupfs::fixture(dir.path(), Arc::new(FakeKernel));
        Fixture {
            dir,
            fs,
            mountinfo,
            proc_cgroup,
            unified,
        }
    }

    /// The daemon's own cgroup: in v1 hierarchy `mount` ("memory",
    /// "cpu,cpuacct", "pids", "freezer"), or the v2 one (`mount` ignored).
    pub(crate) fn own(&self, mount: &str) -> PathBuf {
        let base = self.dir.path().join("sys/fs/cgroup");
        if self.unified {
            base.join(V2_OWN)
        } else {
            base.join(mount).join(V1_OWN)
        }
    }

    /// hearth's tree `name` on this host, as [`Cgroups::detect`] would set
    /// it up; `None` where detection finds cgroups unusable.
    pub(crate) fn detect(&self, name: &str) -> Option<Cgroups> {
        Cgroups::detect_at(
            &self.fs,
            &self.mountinfo,
            &self.proc_cgroup,
            self.unified,
            name,
        )
        .unwrap_or_else(|e| panic!("detection on the fixture failed: {e}"))
    }
}

/// A control file's contents, trimmed.
pub(crate) fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Set a control file, as the kernel would (an event counted, a process
/// gone).
pub(crate) fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[test]
fn fake_kernel_behaves_like_cgroupfs() {
    let fixture = Fixture::v2();
    let own = fixture.own("");
    write(&own.join("cgroup.subtree_control"), "memory pids");
    let child = own.join("child");
    fixture.fs.make_dir(&child).expect("mkdir");
    assert_eq!(read(&child.join("cgroup.controllers")), "memory pids");
    assert_eq!(read(&child.join("memory.max")), "max");
    assert!(!child.join("cpu.max").exists(), "cpu is not handed down");
    assert_eq!(read(&child.join("cgroup.procs")), "");
    assert_eq!(fixture.fs.make_dir(&child).ok(), Some(false));
    fixture
        .fs
        .make_dir(&child.join("grandchild"))
        .expect("mkdir");
    let busy = fixture.fs.remove_dir(&child).expect_err("has a child");
    assert_eq!(busy.raw_os_error(), Some(libc::EBUSY));
    fixture
        .fs
        .remove_dir(&child.join("grandchild"))
        .expect("rmdir");
    write(&child.join("cgroup.procs"), "4242\n");
    assert!(fixture.fs.remove_dir(&child).is_err(), "has a process");
    write(&child.join("cgroup.procs"), "");
    fixture.fs.remove_dir(&child).expect("rmdir");
    assert!(!child.exists());
}
