//! `hearth docs NAME`: a function's interface document, made from its
//! OpenAPI document (the same one the page at /docs/NAME shows), and
//! `hearth diff NAME A B`: what changed between two versions.

use hearth_api::VersionDiff;

use crate::client::Client;

pub(super) async fn docs(
    client: &Client,
    name: &str,
    version: Option<u32>,
    openapi: bool,
) -> anyhow::Result<()> {
    let path = match version {
        Some(v) => format!("/api/v1/functions/{name}/openapi.json?version={v}"),
        None => format!("/api/v1/functions/{name}/openapi.json"),
    };
    let doc: serde_json::Value = client.get(&path).await?;
    if openapi {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    match crate::docs::text::render(&doc, client.addr()) {
        Some(text) => print!("{text}"),
        None => anyhow::bail!(
            "the daemon at {} sent a document for {name} that is not a function's OpenAPI document; is it an older hearth? (`hearth docs {name} --openapi` prints what it sent)",
            client.addr()
        ),
    }
    Ok(())
}

pub(super) async fn diff(
    client: &Client,
    name: &str,
    from: u32,
    to: u32,
    json: bool,
) -> anyhow::Result<()> {
    let d: VersionDiff = client
        .get(&format!(
            "/api/v1/functions/{name}/diff?from={from}&to={to}"
        ))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    println!("{name}: version {from} → {to}");
    if d.files.is_empty() && d.manifest.is_empty() {
        println!("no changes: the two versions have the same files");
        return Ok(());
    }
    if !d.manifest.is_empty() {
        println!("\nhearth.toml:");
        for c in &d.manifest {
            let show = |v: &serde_json::Value| match v {
                serde_json::Value::Null => "(not set)".to_owned(),
                v => {
                    let text = v.to_string();
                    if text.len() > 120 {
                        format!("{}…", text.chars().take(117).collect::<String>())
                    } else {
                        text
                    }
                }
            };
            println!("  {}: {} → {}", c.key, show(&c.from), show(&c.to));
        }
    }
    if !d.breaking.is_empty() {
        println!("\nbreaking input changes (publishing {to} over {from} needs --allow-breaking):");
        for b in &d.breaking {
            let at = if b.pointer.is_empty() {
                "(the input)"
            } else {
                &b.pointer
            };
            println!("  {at}: {}", b.change);
        }
    }
    println!("\nfiles:");
    for f in &d.files {
        println!(
            "  {} {} ({} → {} bytes)",
            f.change, f.path, f.from_bytes, f.to_bytes
        );
    }
    for f in d.files.iter().filter(|f| !f.diff.is_empty()) {
        println!();
        print!("{}", f.diff);
        if !f.diff.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}
