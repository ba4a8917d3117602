//! Logging: JSON lines in production, readable lines on a terminal, filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber, writing to `writer`: stderr, so that commands can print results
/// on stdout (the `reconcile` command's writer keeps log lines clear of its progress bars).
pub fn init(settings: &LogSettings, writer: BoxMakeWriter) {
    // The filter was validated with the settings; fall back to `info` rather than panic.
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let installed = match settings.format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // A second call (tests that start several applications) keeps the first subscriber.
    drop(installed);
}
