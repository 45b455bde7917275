//! Logs: tracing to stderr, filtered by HEARTH_LOG (or RUST_LOG), default info.
//! Call spans carry function, version and request id.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = std::env::var("HEARTH_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,sqlx=warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
