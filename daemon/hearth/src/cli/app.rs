//! `hearth app [NAME]`: list applications, or set one's budget.

use hearth_api::{AppBudgetOutcome, AppBudgetRequest, AppList, InvokeMode};

use super::table::table;
use crate::client::Client;

pub(super) async fn app(
    client: &Client,
    name: Option<String>,
    max_workers: Option<u32>,
    memory_mb: Option<u64>,
    cpu_percent: Option<u32>,
    invoke: Option<InvokeMode>,
) -> anyhow::Result<()> {
    let list: AppList = client.get("/api/v1/apps").await?;
    let limit = |n: u64| match n {
        0 => "-".to_owned(),
        n => n.to_string(),
    };
    let Some(name) = name else {
        let rows: Vec<Vec<String>> = list
            .apps
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    format!("{}/{}", a.workers, limit(u64::from(a.max_workers))),
                    limit(a.memory_mb),
                    limit(u64::from(a.cpu_percent)),
                    a.invoke.as_str().to_owned(),
                ]
            })
            .collect();
        table(
            &["APP", "WORKERS/MAX", "MEMORY_MB", "CPU_PERCENT", "INVOKE"],
            &rows,
        );
        return Ok(());
    };
    let current = list.apps.iter().find(|a| a.name == name);
    let body = AppBudgetRequest {
        max_workers: max_workers.or(current.map(|a| a.max_workers)).unwrap_or(0),
        memory_mb: memory_mb.or(current.map(|a| a.memory_mb)).unwrap_or(0),
        cpu_percent: cpu_percent.or(current.map(|a| a.cpu_percent)).unwrap_or(0),
        invoke,
    };
    let out: AppBudgetOutcome = client.post(&format!("/api/v1/apps/{name}"), &body).await?;
    println!(
        "{name}: max_workers {}, memory_mb {}, cpu_percent {} (0 = no limit), invoke {}{}",
        out.max_workers,
        out.memory_mb,
        out.cpu_percent,
        out.invoke.as_str(),
        if !out.memory_cpu_enforced && (out.memory_mb > 0 || out.cpu_percent > 0) {
            "; memory and CPU are recorded but not enforced: this host has no usable cgroups"
        } else {
            ""
        }
    );
    Ok(())
}
