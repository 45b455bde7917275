//! Code on disk: each version is written once into a read-only directory of
//! its own, `<data>/code/<function>/v<version>-<hash12>/`, so files shipped
//! with the code open relative to the handler's file.
//!
//! A version is written in `<data>/code/.staging/` (mode 0700: the daemon's
//! alone), in a directory that has its final owner and mode from the moment
//! it is made (`root:<gid>` 0750 when workers run as users of their own, so
//! only the version's workers may enter it), and then renamed into place in
//! one step: a version's directory is there complete or not at all, and no
//! other function's worker can ever enter it. A staging directory is named
//! `<function>-v<version>-<pid>-<random>`; those of a daemon that is gone
//! (killed mid-write) are removed at start and by gc ([`CodeDir::leftovers`]).

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hearth_api::bundle::BundleFile;
use hearth_sandbox::isolation;

/// Where versions are written before they are renamed into place.
pub const STAGING: &str = ".staging";

#[derive(Debug, thiserror::Error)]
#[error("cannot write the code of {function} version {version} to {path}: {source}; check free space and permissions of the data directory")]
pub struct CodeError {
    pub function: String,
    pub version: u32,
    pub path: PathBuf,
    pub source: std::io::Error,
}

#[derive(Debug, Clone)]
pub struct CodeDir {
    root: PathBuf,
}

/// A version directory found on disk.
#[derive(Debug, Clone)]
pub struct FoundDir {
    pub function: String,
    /// `v<version>-<hash12>`.
    pub name: String,
    pub path: PathBuf,
}

impl CodeDir {
    pub fn new(root: PathBuf) -> CodeDir {
        CodeDir { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory name of a version: `v<version>-<hash12>`.
    pub fn dir_name(version: u32, hash: &str) -> String {
        let short = hash.get(..12).unwrap_or(hash);
        format!("v{version}-{short}")
    }

    pub fn path(&self, function: &str, version: u32, hash: &str) -> PathBuf {
        self.root
            .join(function)
            .join(CodeDir::dir_name(version, hash))
    }

    /// Is this version already on disk?
    pub fn exists(&self, function: &str, version: u32, hash: &str) -> bool {
        self.path(function, version, hash).is_dir()
    }

    /// The staging directory, made (mode 0700) if needed.
    pub fn staging(&self) -> std::io::Result<PathBuf> {
        let staging = self.root.join(STAGING);
        match DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&staging)
        {
            Ok(()) => {}
            Err(e) if staging.is_dir() => drop(e),
            Err(e) => return Err(e),
        }
        std::fs::set_permissions(&staging, Permissions::from_mode(0o700))?;
        Ok(staging)
    }

    /// Write the version's files (once; a finished directory is never
    /// touched again but for its owner and mode) and return its path.
    /// `group`: the group of the version's workers, when they run as users
    /// of their own; the directory is then `root:group` 0750. `prepare`
    /// runs once the files are written, before the directory is sealed,
    /// with the staging directory and the path it will have (Python
    /// compiles the version's modules there); it is best effort.
    #[allow(clippy::too_many_arguments)]
    pub fn materialize(
        &self,
        function: &str,
        version: u32,
        hash: &str,
        files: &[BundleFile],
        links: &[(String, PathBuf)],
        group: Option<u32>,
        prepare: &dyn Fn(&Path, &Path),
    ) -> Result<PathBuf, CodeError> {
        let dest = self.path(function, version, hash);
        let fail = |path: &Path, source| CodeError {
            function: function.to_owned(),
            version,
            path: path.to_path_buf(),
            source,
        };
        if dest.is_dir() {
            // Written earlier (perhaps by an older hearth): make sure of its
            // owner and mode.
            if let Some(gid) = group {
                isolation::restrict_code_dir(&dest, gid).map_err(|e| fail(&dest, e))?;
            }
            return Ok(dest);
        }
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        // Other users may pass through a function's directory to the
        // version directories they may enter, but not list it.
        DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&parent)
            .map_err(|e| fail(&parent, e))?;
        std::fs::set_permissions(&parent, Permissions::from_mode(0o711))
            .map_err(|e| fail(&parent, e))?;
        let staging = self
            .staging()
            .map_err(|e| fail(&self.root.join(STAGING), e))?;
        let tmp = staging.join(format!(
            "{function}-v{version}-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(|e| fail(&tmp, e))?;
        let written = write_tree(&tmp, files, links, group, &|dir| prepare(dir, &dest));
        let result = match written {
            Err((path, e)) => Err(fail(&path, e)),
            Ok(()) => match std::fs::rename(&tmp, &dest) {
                Ok(()) => return Ok(dest),
                // Someone else finished the same version first: theirs is
                // identical.
                Err(_) if dest.is_dir() => Ok(dest),
                Err(e) => Err(fail(&dest, e)),
            },
        };
        let _ = remove_tree(&tmp);
        result
    }

    /// Staging directories (and `.tmp-*` directories of older hearths) left
    /// by a daemon that is gone: killed while it wrote a version. At start
    /// (`at_start`) this daemon's own pid counts as gone too (a killed
    /// daemon's pid may have been given to this one).
    pub fn leftovers(&self, at_start: bool) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for path in entries(&self.root.join(STAGING)) {
            let pid = file_name(&path).and_then(|name| {
                let mut parts = name.rsplitn(3, '-');
                parts.next()?;
                parts.next()?.parse::<u32>().ok()
            });
            // A name hearth does not make is no one's: remove it too.
            if pid.is_none_or(|pid| crate::leftovers::gone(pid, at_start)) {
                found.push(path);
            }
        }
        for function in self.function_dirs() {
            for path in entries(&function) {
                let Some(name) = file_name(&path) else {
                    continue;
                };
                let Some(rest) = name.strip_prefix(".tmp-") else {
                    continue;
                };
                let pid = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
                if pid.is_none_or(|pid| crate::leftovers::gone(pid, at_start)) {
                    found.push(path);
                }
            }
        }
        found
    }

    /// Every finished version directory on disk.
    pub fn version_dirs(&self) -> Vec<FoundDir> {
        let mut found = Vec::new();
        for function_dir in self.function_dirs() {
            let Some(function) = file_name(&function_dir) else {
                continue;
            };
            for path in entries(&function_dir) {
                let Some(name) = file_name(&path) else {
                    continue;
                };
                if name.starts_with('v') && path.is_dir() {
                    found.push(FoundDir {
                        function: function.to_owned(),
                        name: name.to_owned(),
                        path: path.clone(),
                    });
                }
            }
        }
        found
    }

    fn function_dirs(&self) -> Vec<PathBuf> {
        entries(&self.root)
            .into_iter()
            .filter(|p| file_name(p).is_some_and(|n| !n.starts_with('.')) && p.is_dir())
            .collect()
    }
}

/// Write the files and links of a version into `dir` (made just now, mode
/// 0700), then give it its final owner and modes. On failure: the path that
/// could not be written.
fn write_tree(
    dir: &Path,
    files: &[BundleFile],
    links: &[(String, PathBuf)],
    group: Option<u32>,
    prepare: &dyn Fn(&Path),
) -> Result<(), (PathBuf, std::io::Error)> {
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |e| (path, e)
    };
    // The final owner and mode first, before any file is in it.
    match group {
        Some(gid) => isolation::restrict_code_dir(dir, gid).map_err(at(dir))?,
        None => std::fs::set_permissions(dir, Permissions::from_mode(0o755)).map_err(at(dir))?,
    }
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(at(parent))?;
        }
        let mode = if f.executable { 0o555 } else { 0o444 };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(at(&path))?;
        file.write_all(&f.data).map_err(at(&path))?;
        // The mode given at creation passes through the umask; this one
        // does not.
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(at(&path))?;
    }
    for (name, target) in links {
        let link = dir.join(name);
        std::os::unix::fs::symlink(target, &link).map_err(at(&link))?;
    }
    prepare(dir);
    seal_subdirs(dir).map_err(at(dir))?;
    if group.is_none() {
        std::fs::set_permissions(dir, Permissions::from_mode(0o555)).map_err(at(dir))?;
    }
    Ok(())
}

/// Make every directory under `dir` read-only (links are not followed).
fn seal_subdirs(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let path = entry.path();
            seal_subdirs(&path)?;
            std::fs::set_permissions(&path, Permissions::from_mode(0o555))?;
        }
    }
    Ok(())
}

/// Remove a directory tree, read-only directories and all.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    make_writable(path);
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn make_writable(dir: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(dir, Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                make_writable(&entry.path());
            }
        }
    }
}

/// The entries of a directory (none if it cannot be read).
pub(crate) fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

pub(crate) fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> BundleFile {
        BundleFile {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            executable: false,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn a_version_is_written_whole_and_read_only() {
        let root = tempfile::tempdir().expect("tempdir");
        let code = CodeDir::new(root.path().join("code"));
        let files = [file("main.py", "x = 1\n"), file("lib/util.py", "")];
        let dir = code
            .materialize(
                "hello",
                1,
                "abcdef0123456789",
                &files,
                &[],
                None,
                &|_, _| {},
            )
            .expect("write");
        assert_eq!(dir, root.path().join("code/hello/v1-abcdef012345"));
        assert_eq!(
            std::fs::read_to_string(dir.join("main.py")).ok().as_deref(),
            Some("x = 1\n")
        );
        assert_eq!(mode(&dir), 0o555);
        assert_eq!(mode(&dir.join("lib")), 0o555);
        assert_eq!(mode(&dir.join("main.py")), 0o444);
        assert_eq!(mode(&root.path().join("code/hello")), 0o711);
        assert_eq!(mode(&root.path().join("code").join(STAGING)), 0o700);
        // Nothing is left in staging, and the version is found on disk.
        assert!(entries(&root.path().join("code").join(STAGING)).is_empty());
        let found = code.version_dirs();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].function.as_str(), found[0].name.as_str()),
            ("hello", "v1-abcdef012345")
        );
        remove_tree(&dir).expect("remove");
        assert!(!dir.exists());
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let root = tempfile::tempdir().expect("tempdir");
        let code = CodeDir::new(root.path().join("code"));
        // Stored before bundles were checked: a file that is also a directory.
        let files = [file("a", ""), file("a/b", "")];
        let err = code
            .materialize("bad", 1, "0123456789ab", &files, &[], None, &|_, _| {})
            .expect_err("cannot write");
        assert!(err.path.ends_with("a"), "{err}");
        assert!(!code.exists("bad", 1, "0123456789ab"));
        assert!(entries(&root.path().join("code").join(STAGING)).is_empty());
    }

    #[test]
    fn leftovers_of_gone_daemons_are_found() {
        let root = tempfile::tempdir().expect("tempdir");
        let code = CodeDir::new(root.path().join("code"));
        let staging = code.staging().expect("staging");
        // A pid that is not running (pid_max is at most 2^22).
        let gone = 4_194_304 + 7;
        let ours = std::process::id();
        for name in [
            format!("hello-v3-{gone}-0000abcd"),
            format!("my-fn-v1-{ours}-0000abcd"),
        ] {
            std::fs::create_dir(staging.join(name)).expect("mkdir");
        }
        std::fs::create_dir_all(root.path().join(format!("code/hello/.tmp-v2-{gone}")))
            .expect("mkdir");
        let later: std::collections::BTreeSet<PathBuf> =
            code.leftovers(false).into_iter().collect();
        let expected = std::collections::BTreeSet::from([
            staging.join(format!("hello-v3-{gone}-0000abcd")),
            root.path().join(format!("code/hello/.tmp-v2-{gone}")),
        ]);
        assert_eq!(later, expected);
        // At start, this daemon's own pid is no one's yet.
        assert_eq!(code.leftovers(true).len(), 3);
    }
}
