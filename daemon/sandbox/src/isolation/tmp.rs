//! A worker's private temporary directory: made per worker under the
//! isolation's `tmp_root`, owned by the worker's user, and bound over
//! `/tmp`, `/var/tmp` and `/dev/shm` in its mount namespace (see
//! [`Confinement::private_tmp`](super::Confinement::private_tmp)).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A worker's private temporary directory, removed when dropped.
#[derive(Debug)]
pub struct PrivateTmp {
    pub path: PathBuf,
}

impl PrivateTmp {
    pub fn create(root: &Path, owner: Option<(u32, u32)>) -> std::io::Result<PrivateTmp> {
        let path = root.join(format!("w-{:016x}", fastrand::u64(..)));
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

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
