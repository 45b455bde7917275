//! A function's code as a set of files: read from a directory by the CLI,
//! checked and hashed by the daemon, stored as an immutable version.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::manifest::{self, Manifest, ManifestError, MANIFEST_FILE};

/// Most files one version may hold.
pub const MAX_FILES: usize = 5_000;
/// Most bytes one version may hold, all files together.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Directory and file names never taken into a bundle.
const SKIPPED: &[&str] = &[
    "__pycache__",
    "node_modules",
    ".git",
    ".hg",
    ".svn",
    ".venv",
    ".DS_Store",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// Relative path with `/` separators.
    pub path: String,
    /// File content, base64 in JSON.
    #[serde(with = "b64")]
    pub data: Vec<u8>,
    #[serde(default)]
    pub executable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub files: Vec<BundleFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("there is no {MANIFEST_FILE} among the files; every function directory needs one (name, runtime, entry)")]
    NoManifest,
    #[error("file path \"{0}\" is not allowed: paths must be relative, use '/', and contain no '..' or empty parts")]
    BadPath(String),
    #[error("file \"{0}\" appears twice")]
    Duplicate(String),
    #[error("the code has {0} files, over the limit of {MAX_FILES}; leave build output and caches out of the directory")]
    TooManyFiles(usize),
    #[error("the code is {0} bytes, over the limit of {MAX_BYTES} bytes; leave large data and dependencies out of the directory")]
    TooLarge(u64),
    #[error("{MANIFEST_FILE}: entry `{entry}` needs the file {wanted}, which is not among the deployed files ({found}); fix `entry` or add the file")]
    EntryMissing {
        entry: String,
        wanted: String,
        found: String,
    },
    #[error("{MANIFEST_FILE} is not UTF-8 text")]
    ManifestNotText,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: symbolic links are not deployed; copy the file into the directory instead")]
    Symlink(PathBuf),
}

impl Bundle {
    /// Read every file under `dir` (skipping VCS folders, caches and
    /// dependency folders), in a stable order.
    pub fn from_dir(dir: &Path) -> Result<Bundle, BundleError> {
        let mut files = Vec::new();
        let mut total = 0u64;
        walk(dir, dir, &mut files, &mut total)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Bundle { files })
    }

    /// Check paths and sizes, parse the manifest, and check that the entry
    /// file is present. Returns the manifest.
    pub fn validate(&self) -> Result<Manifest, BundleError> {
        if self.files.len() > MAX_FILES {
            return Err(BundleError::TooManyFiles(self.files.len()));
        }
        let total: u64 = self.files.iter().map(|f| f.data.len() as u64).sum();
        if total > MAX_BYTES {
            return Err(BundleError::TooLarge(total));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.files {
            if !safe_path(&f.path) {
                return Err(BundleError::BadPath(f.path.clone()));
            }
            if !seen.insert(f.path.as_str()) {
                return Err(BundleError::Duplicate(f.path.clone()));
            }
        }
        let manifest_file = self.file(MANIFEST_FILE).ok_or(BundleError::NoManifest)?;
        let text =
            std::str::from_utf8(&manifest_file.data).map_err(|_| BundleError::ManifestNotText)?;
        let manifest = manifest::parse(text)?;
        let (module, _) = manifest.entry_parts();
        let candidates = manifest.runtime.entry_files(module);
        if !candidates.iter().any(|c| seen.contains(c.as_str())) {
            let mut found: Vec<&str> = self.files.iter().map(|f| f.path.as_str()).take(8).collect();
            if self.files.len() > 8 {
                found.push("…");
            }
            return Err(BundleError::EntryMissing {
                entry: manifest.entry.clone(),
                wanted: candidates.join(" or "),
                found: found.join(", "),
            });
        }
        Ok(manifest)
    }

    pub fn file(&self, path: &str) -> Option<&BundleFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Content hash: SHA-256 over each file's path, mode and content, in path
    /// order, so the same code always hashes the same.
    pub fn hash(&self) -> String {
        let mut sorted: Vec<&BundleFile> = self.files.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        let mut h = Sha256::new();
        for f in sorted {
            h.update((f.path.len() as u64).to_be_bytes());
            h.update(f.path.as_bytes());
            h.update([u8::from(f.executable)]);
            h.update((f.data.len() as u64).to_be_bytes());
            h.update(&f.data);
        }
        let digest = h.finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.data.len() as u64).sum()
    }
}

fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<BundleFile>,
    total: &mut u64,
) -> Result<(), BundleError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::Io { path, source }
    };
    let entries = std::fs::read_dir(dir).map_err(io(dir))?;
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if SKIPPED.contains(&name.as_ref()) || name.ends_with(".pyc") {
            continue;
        }
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_symlink() {
            return Err(BundleError::Symlink(path));
        }
        if kind.is_dir() {
            walk(root, &path, out, total)?;
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let data = std::fs::read(&path).map_err(io(&path))?;
        *total += data.len() as u64;
        if *total > MAX_BYTES {
            return Err(BundleError::TooLarge(*total));
        }
        if out.len() >= MAX_FILES {
            return Err(BundleError::TooManyFiles(out.len() + 1));
        }
        let rel = path
            .strip_prefix(root)
            .map_err(|_| BundleError::BadPath(path.display().to_string()))?;
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let executable = {
            use std::os::unix::fs::PermissionsExt;
            entry
                .metadata()
                .map(|m| m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        };
        out.push(BundleFile {
            path: rel,
            data,
            executable,
        });
    }
    Ok(())
}

mod b64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("file data is not base64: {e}")))
    }
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

    const MANIFEST: &str = "name='hello'\nruntime='python'\nentry='main.handler'\n";

    #[test]
    fn hash_ignores_order_and_sees_content() {
        let a = Bundle {
            files: vec![file("a", "1"), file("b", "2")],
        };
        let b = Bundle {
            files: vec![file("b", "2"), file("a", "1")],
        };
        let c = Bundle {
            files: vec![file("a", "1"), file("b", "3")],
        };
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn entry_file_must_exist() {
        let b = Bundle {
            files: vec![file(MANIFEST_FILE, MANIFEST), file("app.py", "")],
        };
        let err = b.validate().expect_err("entry missing").to_string();
        assert!(err.contains("main.py") && err.contains("app.py"), "{err}");
        let ok = Bundle {
            files: vec![file(MANIFEST_FILE, MANIFEST), file("main.py", "")],
        };
        assert_eq!(ok.validate().expect("valid").name, "hello");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            let b = Bundle {
                files: vec![
                    file(MANIFEST_FILE, MANIFEST),
                    file("main.py", ""),
                    file(bad, ""),
                ],
            };
            assert!(
                matches!(b.validate(), Err(BundleError::BadPath(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn no_manifest_is_explained() {
        let b = Bundle {
            files: vec![file("main.py", "")],
        };
        assert!(matches!(b.validate(), Err(BundleError::NoManifest)));
    }
}
