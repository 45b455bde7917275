//! `hearth offline NAME` and `hearth online NAME`: refuse every call to a
//! function (503 `function_offline`) and end its workers, keeping its
//! versions, aliases and live version; or serve it again.

use hearth_api::FunctionStateOutcome;

use crate::client::Client;

pub(super) async fn set(client: &Client, name: &str, offline: bool) -> anyhow::Result<()> {
    let which = if offline { "offline" } else { "online" };
    let out: FunctionStateOutcome = client
        .post(
            &format!("/api/v1/functions/{name}/{which}"),
            &serde_json::json!({}),
        )
        .await?;
    let already = if out.changed { "" } else { " (it already was)" };
    let live = out
        .live_version
        .map(|v| format!("version {v}"))
        .unwrap_or_else(|| "no version".into());
    if offline {
        println!(
            "{}: offline{already}; every call gets 503 function_offline and its workers end ({live} stays live for when it is back: `hearth online {}`)",
            out.function, out.function
        );
    } else {
        println!(
            "{}: online{already}; calls go to {live} again",
            out.function
        );
    }
    Ok(())
}
