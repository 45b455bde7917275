//! `hearth template list|show|save|delete`: the templates `hearth new`
//! writes functions from. Built-in ones are listed and shown from this
//! binary when the daemon cannot be reached.

use clap::Subcommand;

use hearth_api::{
    SaveTemplateRequest, TemplateDeleted, TemplateDetail, TemplateInfo, TemplateList,
};

use super::table::{size, table, when};
use crate::client::{Client, ClientError};

#[derive(Subcommand)]
pub enum TemplateCommand {
    /// Every template, built-in and saved: name, runtime, type, origin.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One template: its description, variables and files.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Save a deployed function's code and hearth.toml as a template; its
    /// name and application become placeholders.
    Save {
        /// The template's name ([a-z0-9-]).
        name: String,
        /// FUNCTION (its live version) or FUNCTION@VERSION.
        #[arg(long)]
        from: String,
        /// Default: the function's own description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a saved template (built-in ones cannot be).
    Delete { name: String },
}

pub(super) async fn run(client: &Client, command: TemplateCommand) -> anyhow::Result<()> {
    match command {
        TemplateCommand::List { json } => {
            let list = match client.get::<TemplateList>("/api/v1/templates").await {
                Ok(list) => list,
                Err(e @ ClientError::Unreachable { .. }) => {
                    eprintln!("note: {e}\nonly the built-in templates of this binary are listed; saved ones are kept by the daemon");
                    TemplateList {
                        templates: crate::templates::builtins()
                            .iter()
                            .map(|b| b.info.clone())
                            .collect(),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .templates
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.runtime.clone(),
                        t.kind.clone(),
                        origin(t),
                        t.description.clone(),
                    ]
                })
                .collect();
            table(&["NAME", "RUNTIME", "TYPE", "ORIGIN", "DESCRIPTION"], &rows);
            Ok(())
        }
        TemplateCommand::Show { name, json } => {
            let path = format!("/api/v1/templates/{name}");
            let t = match client.get::<TemplateDetail>(&path).await {
                Ok(t) => t,
                Err(e @ ClientError::Unreachable { .. }) => match crate::templates::builtin(&name) {
                    Some(b) => b.detail(),
                    None => anyhow::bail!("\"{name}\" is not a built-in template, and saved templates are kept by the daemon, which cannot be asked: {e}"),
                },
                Err(e) => return Err(e.into()),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
                return Ok(());
            }
            let i = &t.info;
            println!("{} ({}): {}", i.name, origin(i), i.description);
            println!("runtime {}, type {}", i.runtime, i.kind);
            if let (Some(at), Some(by)) = (i.created_at, &i.created_by) {
                println!(
                    "saved {} by {}{}",
                    when(at),
                    if by.is_empty() { "-" } else { by },
                    i.app
                        .as_ref()
                        .map(|a| format!(", from application {a}"))
                        .unwrap_or_default()
                );
            }
            println!(
                "variables (hearth new DIR --template {} --var KEY=VALUE):",
                i.name
            );
            println!("  name = the directory's name (--name)");
            println!("  app = default (--app)");
            for v in &t.variables {
                let about = if v.description.is_empty() {
                    String::new()
                } else {
                    format!(": {}", v.description)
                };
                println!("  {} = {}{about}", v.name, v.default);
            }
            println!("files:");
            let width = t.files.iter().map(|f| f.path.len()).max().unwrap_or(0);
            for f in &t.files {
                println!("  {:<width$}  {}", f.path, size(f.data.len() as u64));
            }
            Ok(())
        }
        TemplateCommand::Save {
            name,
            from,
            description,
        } => {
            let saved: TemplateInfo = client
                .post(
                    "/api/v1/templates",
                    &SaveTemplateRequest {
                        name,
                        from,
                        description,
                    },
                )
                .await?;
            println!(
                "template \"{}\" saved from {}; make a function from it with `hearth new DIR --template {}`",
                saved.name,
                saved.from.as_deref().unwrap_or("?"),
                saved.name
            );
            Ok(())
        }
        TemplateCommand::Delete { name } => {
            let out: TemplateDeleted = client.delete(&format!("/api/v1/templates/{name}")).await?;
            println!("template \"{}\" deleted", out.name);
            Ok(())
        }
    }
}

fn origin(t: &TemplateInfo) -> String {
    match (&t.from, t.builtin) {
        (_, true) => "built-in".into(),
        (Some(from), false) => format!("saved from {from}"),
        (None, false) => "saved".into(),
    }
}
