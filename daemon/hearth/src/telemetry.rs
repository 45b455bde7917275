//! Logs: tracing to stderr, filtered by the configuration's `log.level`
//! (HEARTH_LOG or RUST_LOG over it), default `info`; the filter can be
//! replaced while running (a SIGHUP reload). Human-readable text by
//! default, one JSON object a line with `log.format = "json"`
//! (`--log-format json`). Call spans carry function, version and request
//! id, so every line about a call names them.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Replaces the log filter of the running daemon.
#[derive(Clone)]
pub struct LogHandle(reload::Handle<EnvFilter, Registry>);

impl LogHandle {
    pub fn set(&self, filter: &str) -> Result<(), String> {
        let filter = parse(filter)?;
        self.0.reload(filter).map_err(|e| e.to_string())
    }
}

fn parse(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder()
        .parse(filter)
        .map_err(|e| e.to_string())
}

/// Whether `filter` is a valid log filter.
pub fn check_filter(filter: &str) -> Result<(), String> {
    parse(filter).map(|_| ())
}

/// Log to stderr with `filter` (an invalid one falls back to `info`), as
/// text or JSON. None if a subscriber was already installed.
pub fn init(filter: &str, json: bool) -> Option<LogHandle> {
    let filter = parse(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(filter);
    let installed = if json {
        let fmt = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_target(true)
            .with_current_span(true)
            .with_span_list(false);
        tracing_subscriber::registry()
            .with(layer)
            .with(fmt)
            .try_init()
    } else {
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        tracing_subscriber::registry()
            .with(layer)
            .with(fmt)
            .try_init()
    };
    installed.ok().map(|()| LogHandle(handle))
}
