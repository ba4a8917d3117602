//! `replay`: re-applies stored deliveries through the apply rule.

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::app::open_store;
use crate::cli::Exit;
use crate::config::{Settings, parse_duration};

#[derive(clap::Args)]
pub struct Args {
    /// Deliveries received since this time: RFC 3339 (2026-09-21T10:00:00Z) or a duration ago (24h).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    since: DateTime<Utc>,
    /// Only this object's deliveries (singular name).
    #[arg(long, value_name = "NAME")]
    object: Option<String>,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<Exit> {
    let Args { since, object } = args;
    let store = open_store(&settings.database_url).await?;
    let report = crate::sync::replay::replay(&store, since, object.as_deref()).await.context("replaying")?;
    store.close().await;
    println!("replayed {} deliveries received since {}", report.deliveries, since.to_rfc3339());
    for (outcome, n) in &report.outcomes {
        println!("  {outcome:<10} {n}");
    }
    for failure in &report.failures {
        println!("  still failing: {failure}");
    }
    Ok(Exit::Success)
}

/// `--since`: an RFC 3339 time, or a duration meaning that long ago.
fn parse_since(value: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    let ago = parse_duration(value)
        .map_err(|_| format!("{value:?}: expected an RFC 3339 time or a duration such as 24h"))?;
    chrono::Duration::from_std(ago).map(|ago| Utc::now() - ago).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_a_duration_ago() {
        let at = parse_since("2026-09-21T10:00:00+02:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-09-21T08:00:00+00:00");
        let ago = Utc::now() - parse_since("24h").unwrap();
        assert!((ago - chrono::Duration::hours(24)).num_seconds().abs() <= 1, "{ago}");
        let error = parse_since("yesterday").unwrap_err();
        assert!(error.contains("RFC 3339") && error.contains("24h"), "{error}");
    }
}
