//! `hearth new DIR --template NAME [--name N] [--app A] [--var KEY=VALUE]`:
//! write a function directory from a template. Templates come from the
//! daemon (built-in and saved ones); when it cannot be asked, the built-in
//! templates of this binary are used, so `hearth new` works offline.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use hearth_api::bundle::Bundle;
use hearth_api::manifest::{validate_name, DEFAULT_APP};
use hearth_api::templates::{self, validate_template_name};
use hearth_api::TemplateDetail;

use super::table::size;
use crate::client::{Client, ClientError};

pub(super) struct NewArgs {
    pub dir: PathBuf,
    pub template: String,
    pub name: Option<String>,
    pub app: Option<String>,
    pub vars: Vec<String>,
}

pub(super) async fn new(client: &Client, args: NewArgs) -> anyhow::Result<()> {
    let shown = args.dir.display().to_string();
    let name = match args.name {
        Some(name) => {
            validate_name(&name).map_err(|p| anyhow::anyhow!("--name: the function name {p}"))?;
            name
        }
        None => {
            let last = last_component(&args.dir).ok_or_else(|| {
                anyhow::anyhow!(
                    "{shown} has no last component to name the function after; give --name NAME"
                )
            })?;
            validate_name(&last).map_err(|p| {
                anyhow::anyhow!("the function would be named after {shown}, but the name {p}; give --name NAME, or a directory named like a function")
            })?;
            last
        }
    };
    let app = args.app.unwrap_or_else(|| DEFAULT_APP.to_owned());
    validate_name(&app).map_err(|p| anyhow::anyhow!("--app: the application name {p}"))?;
    refuse_non_empty(&args.dir)?;
    validate_template_name(&args.template).map_err(|e| {
        anyhow::anyhow!(
            "there is no template \"{}\" ({e}); `hearth template list` shows them",
            args.template
        )
    })?;

    let template = fetch(client, &args.template).await?;
    let values = templates::values(&args.template, &template.variables, &args.vars, &name, &app)?;
    let bundle = Bundle {
        files: templates::render(&template.files, &values),
    };
    let manifest = bundle.validate().map_err(|e| {
        anyhow::anyhow!(
            "template \"{}\" does not make a deployable function with these values: {e}",
            args.template
        )
    })?;
    write(&args.dir, &bundle)?;

    println!(
        "wrote {} ({} {}, application {}) from template {} in {shown}:",
        manifest.name, manifest.runtime, manifest.kind, manifest.app, args.template
    );
    let width = bundle.files.iter().map(|f| f.path.len()).max().unwrap_or(0);
    for f in &bundle.files {
        println!("  {:<width$}  {}", f.path, size(f.data.len() as u64));
    }
    if !manifest.calls.is_empty() {
        println!(
            "it calls {}: deploy {} first (`hearth new DIR --template {}-datasource --name {}` makes a data source)",
            manifest.calls.join(", "),
            if manifest.calls.len() == 1 { "it" } else { "them" },
            manifest.runtime,
            manifest.calls[0]
        );
    }
    println!("next: hearth deploy {shown}");
    Ok(())
}

/// The template from the daemon, or when it cannot give it, this binary's
/// built-in of that name.
async fn fetch(client: &Client, name: &str) -> anyhow::Result<TemplateDetail> {
    match client
        .get::<TemplateDetail>(&format!("/api/v1/templates/{name}"))
        .await
    {
        Ok(t) => Ok(t),
        Err(e) => match crate::templates::builtin(name) {
            Some(b) => {
                if !matches!(e, ClientError::Unreachable { .. }) {
                    eprintln!("note: the daemon did not give the template ({}); using the built-in one of this binary", first_line(&e));
                }
                Ok(b.detail())
            }
            None => match e {
                ClientError::Unreachable { .. } => Err(anyhow::anyhow!(
                    "\"{name}\" is not a built-in template, and saved templates are kept by the daemon, which cannot be asked: {e}"
                )),
                e => Err(e.into()),
            },
        },
    }
}

fn first_line(e: &ClientError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// The directory's last component; `.` and `..` are resolved first.
fn last_component(dir: &Path) -> Option<String> {
    let resolved;
    let dir = match dir.file_name() {
        Some(_) => dir,
        None => {
            resolved = std::path::absolute(dir).ok()?.canonicalize().ok()?;
            &resolved
        }
    };
    dir.file_name()?.to_str().map(str::to_owned)
}

fn refuse_non_empty(dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => bail!("cannot look at {shown}: {e}"),
        Ok(meta) if !meta.is_dir() => {
            bail!("{shown} exists and is not a directory; give the path of a new directory")
        }
        Ok(_) => {
            let mut entries =
                std::fs::read_dir(dir).with_context(|| format!("cannot read {shown}"))?;
            if entries.next().is_some() {
                bail!("{shown} exists and is not empty; nothing was written: give a new (or empty) directory");
            }
            Ok(())
        }
    }
}

/// Write the files, none over an existing one.
fn write(dir: &Path, bundle: &Bundle) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for f in &bundle.files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        if f.executable {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o755);
        }
        let mut out = options
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        out.write_all(&f.data)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
