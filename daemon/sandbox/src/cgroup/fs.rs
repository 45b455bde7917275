//! Where the cgroup filesystem is, and the few file operations made on it.
//!
//! [`Cgroupfs`] resolves the absolute paths detection finds (mount points
//! from `/proc/self/mountinfo`) under a root directory: `/` on a real host,
//! a fixture tree in tests. It also makes and removes group directories
//! through [`GroupDirs`], because on cgroupfs the kernel completes those
//! two operations (a new group comes with its control files, `rmdir`
//! takes them away), which a fixture tree must have done for it. The rest
//! are plain reads and writes of control files.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::CgroupError;

/// Makes and removes the directory of one group.
pub(crate) trait GroupDirs: fmt::Debug + Send + Sync {
    /// `mkdir` (an existing directory gives `AlreadyExists`).
    fn create(&self, dir: &Path) -> io::Result<()>;
    /// `rmdir` (a group with processes or child groups gives `EBUSY`).
    fn remove(&self, dir: &Path) -> io::Result<()>;
}

/// The kernel's cgroupfs: `mkdir` and `rmdir` do everything.
#[derive(Debug)]
struct Kernel;

impl GroupDirs for Kernel {
    fn create(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)
    }

    fn remove(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }
}

/// The cgroup filesystem as hearth sees it: a root directory that absolute
/// cgroupfs paths are resolved under, and how group directories are made
/// and removed there.
#[derive(Clone, Debug)]
pub(crate) struct Cgroupfs {
    root: PathBuf,
    dirs: Arc<dyn GroupDirs>,
}

impl Cgroupfs {
    /// This machine's cgroupfs, at its own paths.
    pub(crate) fn host() -> Cgroupfs {
        Cgroupfs {
            root: PathBuf::from("/"),
            dirs: Arc::new(Kernel),
        }
    }

    /// A fake cgroupfs under `root` (a directory of a test), whose group
    /// directories are made and removed by `dirs`.
    #[cfg(test)]
    pub(crate) fn fixture(root: &Path, dirs: Arc<dyn GroupDirs>) -> Cgroupfs {
        Cgroupfs {
            root: root.to_path_buf(),
            dirs,
        }
    }

    /// Where the host's absolute path `path` (a mount point) is here:
    /// `path` itself on a real host, `path` below the root otherwise.
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        if self.root == Path::new("/") {
            return path.to_path_buf();
        }
        under(&self.root, path.strip_prefix("/").unwrap_or(path))
    }

    /// `mkdir`; true if it was created, false if it already existed.
    pub(crate) fn make_dir(&self, dir: &Path) -> Result<bool, CgroupError> {
        match self.dirs.create(dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(CgroupError::Create {
                path: dir.to_path_buf(),
                source,
            }),
        }
    }

    /// `rmdir` of a group's directory.
    pub(crate) fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        self.dirs.remove(dir)
    }
}

/// `base` joined with `rel`, without the trailing slash that joining an
/// empty path would add (it shows in messages).
pub(crate) fn under(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

pub(crate) fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

pub(crate) fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read_i64(path: &Path) -> Result<i64, CgroupError> {
    let text = read_file(path)?;
    text.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        detail: format!("expected a number, found {:?}", text.trim()),
    })
}

/// The number after `key` in a flat-keyed file (`key value` lines, as in
/// `memory.events`, `memory.oom_control`, `cgroup.events`).
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != key {
            return None;
        }
        words.next()?.parse().ok()
    })
}

/// The number after `key` in the flat-keyed file `path`, if it can be read.
pub(crate) fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| keyed_value(&text, key))
}

/// The union of the pids listed in each directory's `cgroup.procs` (a
/// missing directory lists none), without 0.
pub(crate) fn procs_in(dirs: &[PathBuf]) -> BTreeSet<u32> {
    dirs.iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.trim().parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|p| *p != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_under_the_root() {
        let host = Cgroupfs::host();
        assert_eq!(
            host.resolve(Path::new("/sys/fs/cgroup/memory")),
            Path::new("/sys/fs/cgroup/memory")
        );
        let fixture = Cgroupfs::fixture(Path::new("/tmp/x"), Arc::new(Kernel));
        assert_eq!(
            fixture.resolve(Path::new("/sys/fs/cgroup/memory")),
            Path::new("/tmp/x/sys/fs/cgroup/memory")
        );
        assert_eq!(fixture.resolve(Path::new("/")), Path::new("/tmp/x"));
    }

    #[test]
    fn reads_keyed_files_and_procs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::create_dir(&a).expect("mkdir");
        fs::create_dir(&b).expect("mkdir");
        fs::write(a.join("cgroup.procs"), "12\n0\n7\n").expect("write");
        fs::write(b.join("cgroup.procs"), "7\n30\n").expect("write");
        let missing = dir.path().join("gone");
        let pids: Vec<u32> = procs_in(&[a.clone(), b, missing]).into_iter().collect();
        assert_eq!(pids, [7, 12, 30]);
        fs::write(a.join("pids.events"), "max 4\n").expect("write");
        assert_eq!(read_keyed(&a.join("pids.events"), "max"), Some(4));
        assert_eq!(read_keyed(&a.join("nothing"), "max"), None);
    }
}
