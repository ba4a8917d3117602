//! Re-applying stored deliveries through the apply rule: after a fix to the parser or the rule,
//! or to rebuild a mirror whose `twenty_records` was emptied, from the event log.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::change::Change;
use crate::mirror::{EventOutcome, Store, StoreError};
use crate::twenty::webhook::{EventKind, parse_event};

/// Deliveries read and applied per transaction.
const BATCH: i64 = 500;

/// What a replay did, by outcome, with the first few reasons deliveries still cannot be parsed.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReplayReport {
    pub deliveries: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub failures: Vec<String>,
}

/// How many parse failures the report quotes; the rest are only counted.
const QUOTED_FAILURES: usize = 10;

/// Replays the deliveries received since `since` (of `object` only, if given), oldest first. The
/// event log itself is left as it was.
pub async fn replay(
    store: &Store,
    since: DateTime<Utc>,
    object: Option<&str>,
) -> Result<ReplayReport, StoreError> {
    let mut report = ReplayReport::default();
    let mut after_id = 0;
    loop {
        let events = store.events_since(since, object, after_id, BATCH).await?;
        let Some(last) = events.last() else { return Ok(report) };
        after_id = last.id;
        let mut changes: Vec<Change> = Vec::new();
        for event in &events {
            report.deliveries += 1;
            // Classified as the webhook route classifies a delivery (`http::webhooks::parse_delivery`).
            match parse_event(event.body.as_bytes(), event.received_at).kind {
                EventKind::Record(change) => changes.push(change),
                EventKind::Schema | EventKind::UnknownAction => {
                    *report.outcomes.entry(EventOutcome::Ignored.as_str()).or_default() += 1
                }
                EventKind::Malformed(why) => {
                    *report.outcomes.entry(EventOutcome::Failed.as_str()).or_default() += 1;
                    if report.failures.len() < QUOTED_FAILURES {
                        report.failures.push(format!("delivery {}: {why}", event.id));
                    }
                }
            }
        }
        for outcome in store.apply(&changes).await? {
            *report.outcomes.entry(EventOutcome::from(outcome).as_str()).or_default() += 1;
        }
    }
}
