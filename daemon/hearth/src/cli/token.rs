//! `hearth token create|list|revoke|hash`: API tokens (admin scope).

use clap::Subcommand;

use hearth_api::{Scope, TokenCreated, TokenList, TokenRequest, TokenRevoked};

use super::table::{table, when};
use crate::client::Client;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a token; it is printed alone on the last line, this once.
    Create {
        #[arg(long)]
        name: String,
        /// admin, deploy, read or invoke (repeat or separate with commas).
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Limit a deploy or invoke token to this application (repeat for more).
        #[arg(long = "app", value_delimiter = ',')]
        apps: Vec<String>,
    },
    /// Every token: name, scopes, applications, creation and last use.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once.
    Revoke { name: String },
    /// Print the SHA-256 of a token read from standard input (for a token
    /// declared in the configuration file).
    Hash,
}

pub(super) async fn run(client: &Client, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { name, scopes, apps } => {
            let scopes = scopes
                .iter()
                .map(|s| {
                    Scope::parse(s.trim()).ok_or_else(|| {
                        anyhow::anyhow!("unknown scope \"{s}\"; use admin, deploy, read or invoke")
                    })
                })
                .collect::<anyhow::Result<Vec<Scope>>>()?;
            let made: TokenCreated = client
                .post("/api/v1/tokens", &TokenRequest { name, scopes, apps })
                .await?;
            let scopes: Vec<&str> = made.info.scopes.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "token \"{}\" created with scopes {}{}; it is shown this once, keep it now:",
                made.info.name,
                scopes.join(", "),
                if made.info.apps.is_empty() {
                    String::new()
                } else {
                    format!(" for {}", made.info.apps.join(", "))
                }
            );
            println!("{}", made.token);
            Ok(())
        }
        TokenCommand::List { json } => {
            let list: TokenList = client.get("/api/v1/tokens").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .tokens
                .iter()
                .map(|t| {
                    let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
                    vec![
                        t.name.clone(),
                        scopes.join(","),
                        if t.apps.is_empty() {
                            "*".into()
                        } else {
                            t.apps.join(",")
                        },
                        t.origin.clone(),
                        if t.created_at > 0 {
                            when(t.created_at)
                        } else {
                            "-".into()
                        },
                        t.last_used.map(when).unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            table(
                &["NAME", "SCOPES", "APPS", "ORIGIN", "CREATED", "LAST USED"],
                &rows,
            );
            Ok(())
        }
        TokenCommand::Revoke { name } => {
            let out: TokenRevoked = client.delete(&format!("/api/v1/tokens/{name}")).await?;
            println!("token \"{}\" revoked", out.name);
            Ok(())
        }
        TokenCommand::Hash => hash(),
    }
}

/// `hearth token hash`: the SHA-256 of the token on standard input.
pub(super) fn hash() -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("give the token on standard input: echo \"$TOKEN\" | hearth token hash");
    }
    println!("{}", hearth_auth::token::digest(token));
    Ok(())
}
