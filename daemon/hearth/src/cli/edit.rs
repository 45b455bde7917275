//! `hearth edit NAME --description TEXT --category TEXT`: a function's
//! information, which is not part of any version (a publish keeps it
//! unless its hearth.toml changes the key).

use anyhow::bail;
use hearth_api::{FunctionEdit, FunctionInfo};

use crate::client::Client;

pub(super) async fn edit(
    client: &Client,
    name: &str,
    description: Option<String>,
    category: Option<String>,
) -> anyhow::Result<()> {
    if description.is_none() && category.is_none() {
        bail!("nothing to edit: give --description TEXT and/or --category TEXT, e.g. hearth edit {name} --category billing");
    }
    let f: FunctionInfo = client
        .put(
            &format!("/api/v1/functions/{name}"),
            &FunctionEdit {
                description,
                category,
            },
        )
        .await?;
    println!(
        "{}: category \"{}\", description \"{}\"",
        f.name, f.category, f.description
    );
    Ok(())
}
