//! Whose identity workers take ([`Users`]), and the file permissions that
//! go with it: whether a worker of another user can reach a path
//! ([`check_reachable`], [`usable_by_others`]), and code directories
//! readable by their workers' group only ([`restrict_code_dir`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::IsolationError;

/// Default first uid/gid of worker identities (version id is added).
pub const DEFAULT_UID_BASE: u32 = 1_500_000;

/// Whose identity workers take.
#[derive(Debug, Clone)]
pub enum Users {
    /// Workers run as the daemon's own user (the daemon is not root).
    Same,
    /// Each version's workers run as uid = gid = base + version id.
    PerVersion { base: u32 },
    /// Every worker runs as one named user (`--worker-user`); its code
    /// directories are readable by that user's group.
    Shared { uid: u32, gid: u32 },
}

impl Users {
    /// What a daemon may do: only root changes user; then workers run as
    /// `worker_user` if given (it must exist), else per version from
    /// `uid_base`.
    pub fn detect(
        root: bool,
        worker_user: Option<&str>,
        uid_base: u32,
    ) -> Result<Users, IsolationError> {
        Ok(match (root, worker_user) {
            (false, _) => Users::Same,
            (true, Some(name)) => {
                let user = nix::unistd::User::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| IsolationError::NoSuchUser(name.to_owned()))?;
                Users::Shared {
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                }
            }
            (true, None) => Users::PerVersion { base: uid_base },
        })
    }

    /// The uid and gid a version's workers run as (None: the daemon's own).
    pub fn identity(&self, version_id: i64) -> Option<(u32, u32)> {
        match *self {
            Users::Same => None,
            Users::Shared { uid, gid } => Some((uid, gid)),
            Users::PerVersion { base } => {
                let id = base.saturating_add(u32::try_from(version_id).unwrap_or(u32::MAX - base));
                Some((id, id))
            }
        }
    }

    /// Workers run as other users than the daemon.
    pub fn drops_privileges(&self) -> bool {
        !matches!(self, Users::Same)
    }

    /// One phrase for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            Users::Same => {
                "workers run as the daemon's user (not root: no per-version users, no namespaces)"
                    .to_owned()
            }
            Users::PerVersion { base } => format!("workers run as uid/gid {base}+version id"),
            Users::Shared { uid, gid } => format!("workers run as uid {uid} gid {gid}"),
        }
    }
}

/// Check that a worker of another user can reach `path` (every directory
/// above it searchable by others).
pub fn check_reachable(path: &Path) -> Result<(), IsolationError> {
    match unsearchable_dir(path) {
        Ok(None) => Ok(()),
        Ok(Some((dir, mode))) => Err(IsolationError::Unreachable {
            path: path.to_path_buf(),
            reason: format!(
                "{} has mode {mode:o}, which others cannot search",
                dir.display()
            ),
        }),
        Err((dir, source)) => Err(IsolationError::Io { path: dir, source }),
    }
}

/// The first of `path` and the directories above it that other users
/// cannot search (with its mode), if any.
fn unsearchable_dir(path: &Path) -> Result<Option<(PathBuf, u32)>, (PathBuf, std::io::Error)> {
    for dir in path.ancestors() {
        let mode = std::fs::metadata(dir)
            .map_err(|e| (dir.to_path_buf(), e))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Ok(Some((dir.to_path_buf(), mode & 0o7777)));
        }
    }
    Ok(None)
}

/// Is the file at `path` readable and executable by any user (and every
/// directory above it searchable)?
pub fn usable_by_others(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.permissions().mode() & 0o005 != 0o005 {
        return false;
    }
    path.parent()
        .is_none_or(|dir| matches!(unsearchable_dir(dir), Ok(None)))
}

/// Make a version's code directory readable by its workers' group only:
/// `root:gid`, mode 0750 (the files inside stay world-readable, but no one
/// else can enter the directory).
pub fn restrict_code_dir(dir: &Path, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(dir, Some(0), Some(gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities() {
        assert_eq!(Users::Same.identity(7), None);
        assert!(!Users::Same.drops_privileges());
        let shared = Users::Shared { uid: 900, gid: 901 };
        assert_eq!(shared.identity(7), Some((900, 901)));
        assert!(shared.drops_privileges());
        let per = Users::PerVersion { base: 1_500_000 };
        assert_eq!(per.identity(7), Some((1_500_007, 1_500_007)));
        assert_eq!(per.identity(-1), Some((u32::MAX, u32::MAX)));
        assert_eq!(
            Users::detect(false, Some("root"), 5)
                .ok()
                .map(|u| u.drops_privileges()),
            Some(false)
        );
    }

    #[test]
    fn reachability() {
        let dir = tempfile::tempdir().expect("tempdir");
        let closed = dir.path().join("closed");
        std::fs::create_dir(&closed).expect("mkdir");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let inner = closed.join("x");
        std::fs::create_dir(&inner).expect("mkdir");
        assert!(matches!(
            check_reachable(&inner),
            Err(IsolationError::Unreachable { .. })
        ));
        assert!(!usable_by_others(&inner));
        assert!(matches!(
            check_reachable(&dir.path().join("missing")),
            Err(IsolationError::Io { .. })
        ));
    }
}
