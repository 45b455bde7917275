//! Code on disk: each version is written once into a read-only directory of
//! its own, `<data>/code/<function>/v<version>-<hash12>/`, so files shipped
//! with the code open relative to the handler's file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hearth_api::bundle::BundleFile;

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

impl CodeDir {
    pub fn new(root: PathBuf) -> CodeDir {
        CodeDir { root }
    }

    pub fn path(&self, function: &str, version: u32, hash: &str) -> PathBuf {
        let short = hash.get(..12).unwrap_or(hash);
        self.root.join(function).join(format!("v{version}-{short}"))
    }

    /// Is this version already on disk?
    pub fn exists(&self, function: &str, version: u32, hash: &str) -> bool {
        self.path(function, version, hash).is_dir()
    }

    /// Write the version's files (once; a finished directory is never
    /// touched again) and return its path.
    pub fn materialize(
        &self,
        function: &str,
        version: u32,
        hash: &str,
        files: &[BundleFile],
        links: &[(String, PathBuf)],
    ) -> Result<PathBuf, CodeError> {
        let dest = self.path(function, version, hash);
        if dest.is_dir() {
            return Ok(dest);
        }
        let fail = |path: &Path, source| CodeError {
            function: function.to_owned(),
            version,
            path: path.to_path_buf(),
            source,
        };
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| fail(&parent, e))?;
        let tmp = parent.join(format!(".tmp-v{version}-{}", std::process::id()));
        if tmp.exists() {
            make_writable(&tmp);
            std::fs::remove_dir_all(&tmp).map_err(|e| fail(&tmp, e))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| fail(&tmp, e))?;
        for f in files {
            let path = tmp.join(&f.path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
            }
            std::fs::write(&path, &f.data).map_err(|e| fail(&path, e))?;
            let mode = if f.executable { 0o555 } else { 0o444 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| fail(&path, e))?;
        }
        for (name, target) in links {
            let link = tmp.join(name);
            std::os::unix::fs::symlink(target, &link).map_err(|e| fail(&link, e))?;
        }
        seal_dirs(&tmp).map_err(|e| fail(&tmp, e))?;
        match std::fs::rename(&tmp, &dest) {
            Ok(()) => Ok(dest),
            // Someone else finished the same version first: theirs is identical.
            Err(_) if dest.is_dir() => {
                make_writable(&tmp);
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dest)
            }
            Err(e) => Err(fail(&dest, e)),
        }
    }
}

/// Make every directory under (and including) `dir` read-only (links are
/// not followed).
fn seal_dirs(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            seal_dirs(&entry.path())?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
}

fn make_writable(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                make_writable(&entry.path());
            }
        }
    }
}
