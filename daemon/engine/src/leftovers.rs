//! What a daemon killed mid-write leaves on disk, and its removal: staging
//! directories of code (`code/.staging/<function>-v<N>-<pid>-<random>`, and
//! `code/<function>/.tmp-v<N>-<pid>` of older hearths), unfinished
//! dependency installs (`deps/<runtime>/<key>.tmp<pid>`) and workers'
//! temporary directories (`tmp/w-<pid>-<random>`). Each is named after the
//! pid of the daemon that made it; it is a leftover once that daemon is
//! gone. `hearth serve` removes them all at start, before any worker runs;
//! gc removes those of daemons that are gone.

use std::path::{Path, PathBuf};

use hearth_api::GcDir;
use hearth_sandbox::isolation;

use crate::code::{self, CodeDir};
use crate::deps::Deps;

/// Is the daemon with this pid gone? At start, this daemon's own pid counts
/// as gone: nothing of its own is on disk yet, so a directory with its pid
/// was made by a killed daemon whose pid it was given.
pub(crate) fn gone(pid: u32, at_start: bool) -> bool {
    (at_start && pid == std::process::id()) || !isolation::process_alive(pid)
}

/// Every leftover under the data directory's `code`, `deps` and `tmp`,
/// with its kind (`staging` or `tmp`).
pub(crate) fn find(
    code: &CodeDir,
    deps: &Deps,
    tmp_root: &Path,
    at_start: bool,
) -> Vec<(&'static str, PathBuf)> {
    let mut found: Vec<(&'static str, PathBuf)> = Vec::new();
    found.extend(code.leftovers(at_start).into_iter().map(|p| ("staging", p)));
    found.extend(deps.leftovers(at_start).into_iter().map(|p| ("staging", p)));
    for path in code::entries(tmp_root) {
        let Some(owner) = code::file_name(&path).and_then(isolation::tmp_owner_pid) else {
            continue;
        };
        let leftover = match owner {
            Some(pid) => gone(pid, at_start),
            // Made by a hearth that did not name them: only at start is it
            // sure that no worker uses one.
            None => at_start,
        };
        if leftover {
            found.push(("tmp", path));
        }
    }
    found
}

/// Remove (unless `dry_run`) what `find` found; returns what was removed.
pub(crate) fn remove(found: Vec<(&'static str, PathBuf)>, dry_run: bool) -> Vec<GcDir> {
    let mut removed = Vec::new();
    for (kind, path) in found {
        let bytes = disk_usage(&path);
        if !dry_run {
            if let Err(e) = code::remove_tree(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove; remove it by hand");
                continue;
            }
        }
        removed.push(GcDir {
            kind: kind.to_owned(),
            path: path.display().to_string(),
            bytes,
        });
    }
    removed
}

/// At start, before any worker: remove what an interrupted daemon left in
/// `<data>/code`, `<data>/deps` and `<data>/tmp`. Returns what was removed.
pub fn remove_at_start(code_root: &Path, deps_root: &Path, tmp_root: &Path) -> Vec<GcDir> {
    let code = CodeDir::new(code_root.to_path_buf());
    let deps = Deps::new(deps_root.to_path_buf());
    if let Err(e) = code.staging() {
        tracing::warn!(path = %code_root.display(), error = %e, "cannot make the code staging directory");
    }
    remove(find(&code, &deps, tmp_root, true), false)
}

/// Bytes of the files under `path` (links not followed).
pub(crate) fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    code::entries(path).iter().map(|p| disk_usage(p)).sum()
}
