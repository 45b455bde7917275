//! `hearth logs NAME`: what a function's calls printed, one line per log
//! line (time, request id, stream), and a REPORT line per call (duration,
//! cold start with its init time, peak memory), like Lambda's; `-f`
//! follows new calls as they are recorded.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_api::{CallList, CallQuery, CallRecord, StatusFilter};

use crate::client::Client;

/// The filters `hearth logs` and `hearth calls` share.
#[derive(clap::Args, Debug, Clone)]
pub struct Filters {
    /// Only calls that started within this long, e.g. 10m, 2h, 1d.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// Only the call with this request id.
    #[arg(long)]
    pub request: Option<String>,
    /// Only calls made by the call with this request id (a page's member
    /// calls, a function's nested calls).
    #[arg(long)]
    pub parent: Option<String>,
    /// Only calls that succeeded (ok) or failed (error).
    #[arg(long, value_parser = ["ok", "error"])]
    pub status: Option<String>,
    /// Only calls of this version.
    #[arg(long)]
    pub version: Option<u32>,
    /// Most calls shown (1-1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Output: text, or json (one record a line).
    #[arg(long, short = 'o', value_parser = ["text", "json"], default_value = "text")]
    pub output: String,
}

impl Filters {
    pub fn query(&self) -> CallQuery {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        CallQuery {
            since_ms: self.since.map(|d| now.saturating_sub(d.as_millis() as u64)),
            request_id: self.request.clone(),
            parent: self.parent.clone(),
            status: self.status.as_deref().and_then(StatusFilter::parse),
            version: self.version,
            after_seq: None,
            limit: Some(self.limit),
        }
    }

    pub fn json(&self) -> bool {
        self.output == "json"
    }
}

/// A time as `2024-05-01T12:00:00.123Z`.
pub(super) fn stamp(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The Lambda-style summary line of a call.
pub(super) fn report(r: &CallRecord) -> String {
    let mut line = format!(
        "{} {} REPORT v{} {} status {} duration {:.1} ms",
        stamp(r.started_at_ms),
        r.request_id,
        r.version,
        match &r.reason {
            Some(reason) => format!("{} ({reason})", r.outcome),
            None => r.outcome.clone(),
        },
        r.status,
        r.duration_ms
    );
    if r.cold() {
        line.push_str(&format!(
            ", cold start ({}) init {:.1} ms",
            r.timing.start.as_str(),
            r.timing.spawn_ms + r.timing.load_ms
        ));
    }
    if let Some(kb) = r.peak_memory_kb {
        line.push_str(&format!(", peak memory {:.1} MB", kb as f64 / 1024.0));
    }
    if let Some(cpu) = r.cpu_ms {
        line.push_str(&format!(", cpu {cpu:.0} ms"));
    }
    if r.log_truncated {
        line.push_str(&format!(
            ", output truncated: {} bytes dropped",
            r.log_dropped_bytes
        ));
    }
    if r.log_unattributed {
        line.push_str(", output shared with other calls on its worker: see the daemon's log");
    }
    if let Some(e) = &r.error {
        line.push_str(&format!(", error: {e}"));
    }
    line
}

fn print_record(r: &CallRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    for l in &r.log {
        println!(
            "{} {} {} {}",
            stamp(l.time_ms),
            r.request_id,
            l.stream.as_str(),
            l.text
        );
    }
    println!("{}", report(r));
    Ok(())
}

pub(super) async fn logs(
    client: &Client,
    name: &str,
    filters: &Filters,
    follow: bool,
) -> anyhow::Result<()> {
    let query = filters.query();
    let list: CallList = client
        .get(&format!(
            "/api/v1/functions/{name}/calls?{}",
            query.to_query()
        ))
        .await?;
    // Oldest first, as a log reads.
    for r in list.calls.iter().rev() {
        print_record(r, filters.json())?;
    }
    if list.dropped > 0 {
        eprintln!(
            "note: the daemon dropped {} call records since it started (its record queue was full; records.queue_size)",
            list.dropped
        );
    }
    if !follow {
        return Ok(());
    }
    let mut stream = query.clone();
    stream.limit = None;
    stream.since_ms = None;
    let path = format!(
        "/api/v1/functions/{name}/calls/stream?{}",
        stream.to_query()
    );
    let json = filters.json();
    client
        .get_events(
            &path,
            Some(list.last_seq),
            || eprintln!("following {name} (Ctrl-C to stop)"),
            |_, data| {
                let record: CallRecord = serde_json::from_str(data)?;
                print_record(&record, json)?;
                use std::io::Write as _;
                std::io::stdout().flush()?;
                Ok(())
            },
        )
        .await?;
    eprintln!("the daemon ended the stream");
    Ok(())
}
