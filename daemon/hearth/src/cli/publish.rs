//! `hearth publish NAME --version N`, `hearth publish --batch FILE` and
//! `hearth rollback NAME`: releases, and how they are shown.

use std::path::Path;

use anyhow::{bail, Context as _};

use hearth_api::{
    BatchItem, BatchPublishOutcome, BatchPublishRequest, PublishRequest, ReleaseOutcome,
    RollbackRequest,
};

use crate::client::Client;

pub(super) async fn publish(
    client: &Client,
    name: &str,
    version: u32,
    message: String,
    allow_breaking: bool,
) -> anyhow::Result<()> {
    let out: ReleaseOutcome = client
        .post(
            &format!("/api/v1/functions/{name}/publish"),
            &PublishRequest {
                version,
                message,
                allow_breaking,
            },
        )
        .await?;
    print_release(&out);
    Ok(())
}

pub(super) async fn rollback(client: &Client, name: &str, message: String) -> anyhow::Result<()> {
    let out: ReleaseOutcome = client
        .post(
            &format!("/api/v1/functions/{name}/rollback"),
            &RollbackRequest { message },
        )
        .await?;
    print_release(&out);
    Ok(())
}

pub(super) async fn publish_batch(
    client: &Client,
    file: &Path,
    message: String,
    allow_breaking: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the batch file {}", file.display()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        anyhow::anyhow!(
            "{}: not valid TOML ({}); write one `function = version` line per function, e.g. hello = 2",
            file.display(),
            e.message()
        )
    })?;
    let mut releases = Vec::new();
    for (function, version) in table {
        let version = version
            .as_integer()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: `{function}` must be a version number, e.g. {function} = 2",
                    file.display()
                )
            })?;
        releases.push(BatchItem { function, version });
    }
    if releases.is_empty() {
        bail!("{}: no `function = version` lines", file.display());
    }
    let out: BatchPublishOutcome = client
        .post(
            "/api/v1/publish",
            &BatchPublishRequest {
                releases,
                message,
                allow_breaking,
            },
        )
        .await?;
    for r in &out.releases {
        print_release(r);
    }
    Ok(())
}

/// Warn, on stderr, of each breaking input change a release was
/// published with.
pub(super) fn warn_breaking(function: &str, changes: &[hearth_api::metadata::BreakingChange]) {
    for c in changes {
        let at = if c.pointer.is_empty() {
            "the input".to_owned()
        } else {
            format!("input {}", c.pointer)
        };
        eprintln!(
            "warning: {function}: {at}: {} (published with --allow-breaking)",
            c.change
        );
    }
}

fn print_release(out: &ReleaseOutcome) {
    warn_breaking(&out.function, &out.breaking);
    let was = match out.previous {
        Some(p) if p != out.version => format!(" (was version {p})"),
        Some(_) => " (it already was)".to_owned(),
        None => String::new(),
    };
    println!("{}: version {} is live{was}", out.function, out.version);
}
