//! `hearth delete NAME [--force]`: the function stops taking calls and is
//! no longer listed; its versions and history stay, and deploying it again
//! brings it back.

use hearth_api::FunctionStateOutcome;

use crate::client::Client;

pub(super) async fn delete(client: &Client, name: &str, force: bool) -> anyhow::Result<()> {
    let query = if force { "?force=true" } else { "" };
    let out: FunctionStateOutcome = client
        .delete(&format!("/api/v1/functions/{name}{query}"))
        .await?;
    let was = match out.live_version {
        Some(v) => format!(" (version {v} was live)"),
        None => String::new(),
    };
    println!(
        "{}: deleted{was}; its workers end and its calls get 404. Its versions and history are kept: `hearth history {}`; `hearth deploy DIR` or `hearth publish {} --version N` brings it back",
        out.function, out.function, out.function
    );
    Ok(())
}
