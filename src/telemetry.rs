//! Logging set-up. Logs go to standard error (so `tessera openapi > file` stays clean), as text
//! or JSON; `RUST_LOG` overrides the default filter. Nothing logs secrets: requests are logged by
//! method, route and request id, never headers or bodies.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=warn";

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests build many applications) keeps the first subscriber.
    drop(installed);
}
