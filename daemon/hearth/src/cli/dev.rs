//! `hearth dev DIR`: deploy and publish on every saved change.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};

use hearth_api::manifest::MANIFEST_FILE;

use super::deploy::deploy;
use crate::client::Client;

/// `hearth dev DIR`: deploy on every saved change, debounced.
pub(super) async fn dev(client: &Client, dir: &Path, debounce: Duration) -> anyhow::Result<()> {
    use notify::Watcher as _;
    if !dir.is_dir() {
        bail!(
            "{} is not a directory; give the directory that holds the function's {MANIFEST_FILE}",
            dir.display()
        );
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let root = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let watched = root.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            // Changes inside hidden folders, caches and node_modules don't count.
            let relevant = event.paths.iter().any(|p| {
                let rel = p.strip_prefix(&watched).unwrap_or(p);
                !rel.components().any(|c| {
                    let c = c.as_os_str().to_string_lossy();
                    c.starts_with('.') || c == "__pycache__" || c == "node_modules"
                })
            });
            if relevant && !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    })
    .context("cannot watch files on this system")?;
    watcher
        .watch(&root, notify::RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    eprintln!(
        "watching {} (Ctrl-C to stop); deploying now and on every saved change",
        dir.display()
    );
    loop {
        if let Err(e) = deploy(client, dir, "hearth dev".into(), true, true).await {
            eprintln!("error: {}", format!("{e:#}").trim_end());
            eprintln!("(the previous version keeps serving; save again to retry)");
        }
        // Wait for a change, then for `debounce` of quiet.
        tokio::select! {
            got = rx.recv() => if got.is_none() { return Ok(()) },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        loop {
            match tokio::time::timeout(debounce, rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return Ok(()),
                Err(_) => break,
            }
        }
        eprintln!("change seen in {}", dir.display());
    }
}
