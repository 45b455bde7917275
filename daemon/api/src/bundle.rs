//! A function's code as a set of files: read from a directory by the CLI,
//! checked and hashed by the daemon, stored as an immutable version.

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::manifest::{self, Manifest, ManifestError, MANIFEST_FILE};

/// Most files one version may hold.
pub const MAX_FILES: usize = 5_000;
/// Most bytes one version may hold, all files together.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Longest part of a file path (a file or directory name), in bytes: what
/// Linux file systems take (NAME_MAX).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest file path in a bundle, in bytes (it is written under the data
/// directory, whose own path must fit in PATH_MAX with it).
pub const MAX_PATH_BYTES: usize = 1024;
/// Where hearth links a Node version's installed packages; a bundle cannot
/// hold a file there.
pub const DEPENDENCY_LINK: &str = "node_modules";

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BundleFile {
    /// Relative path with `/` separators.
    pub path: String,
    /// File content, base64 in JSON.
    #[serde(with = "b64")]
    #[schemars(with = "String", extend("contentEncoding" = "base64"))]
    pub data: Vec<u8>,
    #[serde(default)]
    pub executable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Bundle {
    pub files: Vec<BundleFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("there is no {MANIFEST_FILE} among the files; every function directory needs one (name, runtime, entry)")]
    NoManifest,
    #[error("file path \"{}\" is not allowed: {reason}", .path.escape_debug())]
    BadPath { path: String, reason: String },
    #[error("file \"{}\" appears twice; give each path once", .0.escape_debug())]
    Duplicate(String),
    #[error("file \"{}\" cannot be written: \"{}\" is a file of the bundle too, so it cannot also be a directory; rename one of them", .path.escape_debug(), .file.escape_debug())]
    FileIsDirectory { path: String, file: String },
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
            check_path(&f.path).map_err(|reason| BundleError::BadPath {
                path: f.path.clone(),
                reason: reason.to_owned(),
            })?;
            if !seen.insert(f.path.as_str()) {
                return Err(BundleError::Duplicate(f.path.clone()));
            }
        }
        // A path is a file or a directory, not both: "a" and "a/b" cannot
        // both be files.
        for f in &self.files {
            let dirs = f.path.match_indices('/').map(|(at, _)| &f.path[..at]);
            if let Some(file) = dirs.into_iter().find(|dir| seen.contains(dir)) {
                return Err(BundleError::FileIsDirectory {
                    path: f.path.clone(),
                    file: file.to_owned(),
                });
            }
        }
        let manifest_file = self.file(MANIFEST_FILE).ok_or(BundleError::NoManifest)?;
        let text =
            std::str::from_utf8(&manifest_file.data).map_err(|_| BundleError::ManifestNotText)?;
        let manifest = manifest::parse_with_files(text, &|path| {
            self.file(path.trim_start_matches("./"))
                .map(|f| f.data.clone())
        })?;
        if manifest.is_page() {
            return Ok(manifest);
        }
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

/// Why a bundle path cannot be written as a file under the version's
/// directory (and only there), if it cannot.
fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("it is empty");
    }
    if path.starts_with('/') {
        return Err("paths must be relative to the function's directory, not start with '/'");
    }
    if path.contains('\0') {
        return Err("it contains a NUL byte");
    }
    if path.contains('\\') {
        return Err("it contains '\\'; separate directories with '/'");
    }
    if path.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    if path.len() > MAX_PATH_BYTES {
        return Err("it is longer than 1024 bytes (the most a bundle path may have)");
    }
    for part in path.split('/') {
        match part {
            "" => return Err("it has an empty part ('//' or a trailing '/')"),
            "." | ".." => return Err("'.' and '..' are not allowed in paths"),
            _ if part.len() > MAX_NAME_BYTES => {
                return Err(
                    "one of its parts is longer than 255 bytes (the most a file name may have)",
                )
            }
            _ => {}
        }
    }
    if path.split('/').next() == Some(DEPENDENCY_LINK) {
        return Err("node_modules is where hearth links the installed dependencies; leave it out (hearth installs them from package.json)");
    }
    Ok(())
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
        let rel = path.strip_prefix(root).map_err(|_| BundleError::BadPath {
            path: path.display().to_string(),
            reason: format!("it is not under {}", root.display()),
        })?;
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

    fn with(extra: &[&str]) -> Bundle {
        let mut files = vec![file(MANIFEST_FILE, MANIFEST), file("main.py", "")];
        files.extend(extra.iter().map(|p| file(p, "")));
        Bundle { files }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let long_name = "n".repeat(MAX_NAME_BYTES + 1);
        let long_path = ["d"; MAX_PATH_BYTES / 2 + 1].join("/");
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a/",
            "",
            "a\\b",
            "a\0b",
            "a\nb",
            long_name.as_str(),
            long_path.as_str(),
            "node_modules/x.js",
        ] {
            match with(&[bad]).validate() {
                Err(BundleError::BadPath { path, .. }) => assert_eq!(path, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let longest = "n".repeat(MAX_NAME_BYTES);
        assert!(with(&[&longest, "lib/node_modules/x.js"])
            .validate()
            .is_ok());
    }

    #[test]
    fn a_file_cannot_also_be_a_directory() {
        for (extra, path, dir) in [
            (&["a", "a/b"][..], "a/b", "a"),
            (&["main.py/x"][..], "main.py/x", "main.py"),
            (&["x/y/z", "x/y"][..], "x/y/z", "x/y"),
        ] {
            match with(extra).validate() {
                Err(BundleError::FileIsDirectory { path: p, file }) => {
                    assert_eq!((p.as_str(), file.as_str()), (path, dir))
                }
                other => panic!("{extra:?}: {other:?}"),
            }
        }
        assert!(with(&["a/b", "a/c", "ab"]).validate().is_ok());
    }

    #[test]
    fn counts_and_sizes_are_bounded() {
        let many: Vec<String> = (0..MAX_FILES).map(|i| format!("f{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            with(&many).validate(),
            Err(BundleError::TooManyFiles(n)) if n == MAX_FILES + 2
        ));
        let mut big = with(&[]);
        big.files.push(BundleFile {
            path: "data.bin".into(),
            data: vec![0; MAX_BYTES as usize + 1],
            executable: false,
        });
        assert!(matches!(big.validate(), Err(BundleError::TooLarge(_))));
        let dup = with(&["main.py"]);
        assert!(matches!(dup.validate(), Err(BundleError::Duplicate(p)) if p == "main.py"));
    }

    #[test]
    fn no_manifest_is_explained() {
        let b = Bundle {
            files: vec![file("main.py", "")],
        };
        assert!(matches!(b.validate(), Err(BundleError::NoManifest)));
    }
}
