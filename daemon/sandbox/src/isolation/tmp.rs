//! A worker's private temporary directory: made per worker under the
//! isolation's `tmp_root`, owned by the worker's user, and bound over
//! `/tmp`, `/var/tmp` and `/dev/shm` in its mount namespace (see
//! [`Confinement::private_tmp`](super::Confinement::private_tmp)).
//! Each is named `w-<daemon pid>-<random>`, so what a daemon killed with
//! SIGKILL left behind can be told apart and removed ([`owner_pid`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A worker's private temporary directory, removed when dropped.
#[derive(Debug)]
pub struct PrivateTmp {
    pub path: PathBuf,
}

impl PrivateTmp {
    pub fn create(root: &Path, owner: Option<(u32, u32)>) -> std::io::Result<PrivateTmp> {
        let path = root.join(format!(
            "w-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        if !root.is_dir() {
            std::fs::create_dir_all(root)?;
        }
        std::fs::create_dir(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        let tmp = PrivateTmp { path };
        if let Some(owner) = owner {
            tmp.give_to(owner)?;
        }
        Ok(tmp)
    }

    /// Hand the directory to the worker's user.
    pub fn give_to(&self, (uid, gid): (u32, u32)) -> std::io::Result<()> {
        std::os::unix::fs::chown(&self.path, Some(uid), Some(gid))
    }
}

/// The pid of the daemon that made the worker directory called `name`:
/// `Some(Some(pid))`, or `Some(None)` for a name without one (made by an
/// older hearth); `None` if `name` is not a worker directory.
pub fn owner_pid(name: &str) -> Option<Option<u32>> {
    let rest = name.strip_prefix("w-")?;
    match rest.split_once('-') {
        Some((pid, random)) if random.len() == 16 => pid.parse().ok().map(Some),
        None if rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_hexdigit()) => Some(None),
        _ => None,
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_daemons_pid() {
        let root = tempfile::tempdir().expect("tempdir");
        let tmp = PrivateTmp::create(root.path(), None).expect("create");
        let name = tmp
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        assert_eq!(owner_pid(&name), Some(Some(std::process::id())));
        assert_eq!(owner_pid("w-0123456789abcdef"), Some(None));
        assert_eq!(owner_pid("other"), None);
        assert_eq!(owner_pid("w-12-short"), None);
        drop(tmp);
        assert!(std::fs::read_dir(root.path())
            .expect("read")
            .next()
            .is_none());
    }
}
