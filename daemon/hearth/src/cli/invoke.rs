//! `hearth invoke TARGET`: call a function and print its JSON result.

use anyhow::{bail, Context as _};
use base64::Engine as _;
use hyper::Method;

use crate::client::{Client, ClientError};

fn read_data(data: &str) -> anyhow::Result<Vec<u8>> {
    if data == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("cannot read the event from standard input")?;
        Ok(buf)
    } else if let Some(path) = data.strip_prefix('@') {
        std::fs::read(path).with_context(|| format!("cannot read the event file {path}"))
    } else {
        Ok(data.as_bytes().to_vec())
    }
}

pub(super) async fn invoke(
    client: &Client,
    target: &str,
    data: &str,
    log: bool,
) -> anyhow::Result<()> {
    let body = read_data(data)?;
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        bail!("--data is not valid JSON ({e}); for example --data '{{\"name\":\"Ada\"}}'");
    }
    let headers: &[(&str, &str)] = if log {
        &[("x-hearth-log", "tail")]
    } else {
        &[]
    };
    let resp = client
        .send_with(Method::POST, &format!("/fn/{target}"), Some(body), headers)
        .await?;
    if log {
        if let Some(text) = resp.headers.get("x-hearth-log").and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .ok()
        }) {
            eprint!("{}", String::from_utf8_lossy(&text));
        }
    }
    let resp = match client.check(resp) {
        Ok(resp) => resp,
        Err(ClientError::Api(detail)) => {
            if let Some(text) = detail.log.as_deref().filter(|_| log) {
                eprint!("{text}");
            }
            return Err(ClientError::Api(detail).into());
        }
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&resp.body);
    println!("{text}");
    Ok(())
}
