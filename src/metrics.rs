//! Prometheus metrics in the text exposition format (version 0.0.4), written by `prometheus-client`.
//! Counters live in memory; the facts the database already holds (rows per object, the age of the
//! last pass) and the Twenty client's own counts are read when scraped.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::mirror::{ObjectCounts, SyncState, WebhookHealth};
use crate::twenty::client::ClientStats;

/// The `Content-Type` of a scrape's answer.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Every metric's name starts with this and `_`.
const PREFIX: &str = "twenty_mirror";

/// Upper bounds of the apply-latency histogram, in seconds: from an idle commit (about a
/// millisecond) to the 2 s deadline after which a delivery is answered 503.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeliveryLabels {
    object: String,
    event: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ObjectLabel {
    object: String,
}

/// The service's counters. Shared by the HTTP handlers and the reconciler.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    deliveries: Family<DeliveryLabels, Counter>,
    refused: Family<ReasonLabel, Counter>,
    apply_latency: Histogram,
    runs: Family<StatusLabel, Counter>,
    fetched: Family<ObjectLabel, Counter>,
    repaired: Family<ObjectLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        // The registry ends each help text with a full stop.
        let mut registry = Registry::with_prefix(PREFIX);
        let deliveries = Family::default();
        registry.register(
            "webhook_deliveries",
            "Verified deliveries, by object, event and outcome",
            deliveries.clone(),
        );
        let refused = Family::default();
        registry.register(
            "webhook_refused",
            "Deliveries refused before anything was stored, by reason",
            refused.clone(),
        );
        let apply_latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "apply_seconds",
            "Time from a verified delivery to its commit",
            apply_latency.clone(),
        );
        let runs = Family::default();
        registry.register("reconcile_runs", "Reconciler runs, by how they ended", runs.clone());
        let fetched = Family::default();
        registry.register(
            "reconcile_fetched",
            "Records read from Twenty by the reconciler, by object",
            fetched.clone(),
        );
        let repaired = Family::default();
        registry.register(
            "reconcile_repaired",
            "Reconciler writes that changed the mirror (what webhooks missed), by object",
            repaired.clone(),
        );
        Metrics { registry, deliveries, refused, apply_latency, runs, fetched, repaired }
    }
}

/// What the scrape reads from the database and the Twenty client.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub database_up: bool,
    pub rows: Vec<ObjectCounts>,
    pub states: Vec<SyncState>,
    pub client: Option<ClientStats>,
    pub now: Option<DateTime<Utc>>,
}

impl Metrics {
    pub fn delivery(&self, object: &str, action: &str, outcome: &'static str) {
        let labels = DeliveryLabels { object: object.to_owned(), event: action.to_owned(), outcome };
        self.deliveries.get_or_create(&labels).inc();
    }

    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// How long a delivery waited for its commit.
    pub fn apply_latency(&self, took: Duration) {
        self.apply_latency.observe(took.as_secs_f64());
    }

    pub fn run(&self, status: &'static str) {
        self.runs.get_or_create(&StatusLabel { status }).inc();
    }

    pub fn page(&self, object: &str, fetched: u64, repaired: u64) {
        let labels = ObjectLabel { object: object.to_owned() };
        self.fetched.get_or_create(&labels).inc_by(fetched);
        self.repaired.get_or_create(&labels).inc_by(repaired);
    }

    /// The text exposition of every metric: the counters, then what `snapshot` read.
    pub fn render(&self, snapshot: Snapshot) -> Result<String, fmt::Error> {
        let mut scraped = Registry::with_prefix(PREFIX);
        scraped.register_collector(Box::new(snapshot));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry)?;
        prometheus_text::encode(&mut out, &scraped)?;
        Ok(out)
    }
}

impl Collector for Snapshot {
    /// Help texts here are written as given, full stop included.
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        if let Some(stats) = &self.client {
            let mut requests = encoder.encode_descriptor(
                "twenty_requests",
                "Requests to Twenty's API, by HTTP status (error: no answer).",
                None,
                MetricType::Counter,
            )?;
            for (status, n) in &stats.requests {
                ConstCounter::new(*n).encode(requests.encode_family(&[("status", status.as_str())])?)?;
            }
            ConstCounter::new(stats.rate_limit_wait.as_secs_f64()).encode(encoder.encode_descriptor(
                "twenty_rate_limit_wait_seconds",
                "Time spent waiting for the rate limit before requests to Twenty.",
                None,
                MetricType::Counter,
            )?)?;
        }

        ConstGauge::new(i64::from(self.database_up)).encode(encoder.encode_descriptor(
            "database_up",
            "Whether the database answered a trivial query during this scrape.",
            None,
            MetricType::Gauge,
        )?)?;
        let mut rows = encoder.encode_descriptor(
            "rows",
            "Rows of the mirror, by object and state (live, soft_deleted, destroyed).",
            None,
            MetricType::Gauge,
        )?;
        for c in &self.rows {
            for (state, n) in [("live", c.live), ("soft_deleted", c.soft_deleted), ("destroyed", c.destroyed)]
            {
                let labels = [("object", c.object.as_str()), ("state", state)];
                ConstGauge::new(n).encode(rows.encode_family(&labels)?)?;
            }
        }

        let mut health = encoder.encode_descriptor(
            "webhook_health",
            "Webhook health by object, from its last delta pass: 1 for the current state (ok, lossy, \
             silent, unknown), 0 for the other three.",
            None,
            MetricType::Gauge,
        )?;
        for state in &self.states {
            for candidate in WebhookHealth::ALL {
                let labels = [("object", state.object.as_str()), ("state", candidate.as_str())];
                ConstGauge::new(i64::from(state.webhook_health == candidate))
                    .encode(health.encode_family(&labels)?)?;
            }
        }

        if let Some(now) = self.now {
            let mut ages = encoder.encode_descriptor(
                "reconcile_last_success_age_seconds",
                "Seconds since the last complete reconcile pass, by object.",
                None,
                MetricType::Gauge,
            )?;
            for state in &self.states {
                if let Some(at) = state.last_delta_at.max(state.last_full_at) {
                    let age = (now - at).num_milliseconds() as f64 / 1e3;
                    ConstGauge::new(age).encode(ages.encode_family(&[("object", state.object.as_str())])?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn counters_and_the_histogram_render_in_the_text_format() {
        let m = Metrics::default();
        m.delivery("person", "updated", "applied");
        m.delivery("person", "updated", "applied");
        m.refused("bad_signature");
        m.apply_latency(Duration::from_millis(3));
        m.run("succeeded");
        m.page("person", 200, 3);
        let text = m.render(Snapshot { database_up: true, ..Snapshot::default() }).unwrap();
        assert!(text.contains(
            "twenty_mirror_webhook_deliveries_total{object=\"person\",event=\"updated\",outcome=\"applied\"} 2\n"
        ));
        assert!(text.contains("# TYPE twenty_mirror_webhook_deliveries_total counter\n"), "{text}");
        assert!(text.contains(
            "# HELP twenty_mirror_webhook_refused_total Deliveries refused before anything was stored, by \
             reason.\n"
        ));
        assert!(text.contains("twenty_mirror_webhook_refused_total{reason=\"bad_signature\"} 1\n"));
        assert!(text.contains("# TYPE twenty_mirror_apply_seconds histogram\n"), "{text}");
        assert!(text.contains("twenty_mirror_apply_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("twenty_mirror_apply_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("twenty_mirror_apply_seconds_bucket{le=\"1\"} 1\n"), "{text}");
        assert!(text.contains("twenty_mirror_apply_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("twenty_mirror_apply_seconds_count 1\n"));
        assert!(text.contains("twenty_mirror_reconcile_runs_total{status=\"succeeded\"} 1\n"));
        assert!(text.contains("twenty_mirror_reconcile_fetched_total{object=\"person\"} 200\n"));
        assert!(text.contains("twenty_mirror_reconcile_repaired_total{object=\"person\"} 3\n"));
        assert!(text.contains("# TYPE twenty_mirror_database_up gauge\ntwenty_mirror_database_up 1\n"));
        assert!(!text.contains("twenty_requests"), "no client, no client counters: {text}");
    }

    #[test]
    fn the_scrape_reports_the_client_the_rows_and_the_age_of_the_last_pass() {
        let now = Utc::now();
        let snapshot = Snapshot {
            database_up: true,
            rows: vec![ObjectCounts {
                object: "person".into(),
                live: 5,
                soft_deleted: 1,
                destroyed: 0,
                last_webhook_at: None,
            }],
            states: vec![
                SyncState {
                    object: "person".into(),
                    last_delta_at: Some(now - chrono::Duration::milliseconds(1_500)),
                    last_full_at: Some(now - chrono::Duration::hours(1)),
                    webhook_health: WebhookHealth::Lossy,
                    ..SyncState::default()
                },
                SyncState { object: "never".into(), ..SyncState::default() },
            ],
            client: Some(ClientStats {
                requests: BTreeMap::from([("200".to_owned(), 7), ("429".to_owned(), 1)]),
                rate_limit_wait: Duration::from_millis(2_500),
                ..ClientStats::default()
            }),
            now: Some(now),
        };
        let text = Metrics::default().render(snapshot).unwrap();
        for expected in [
            "# TYPE twenty_mirror_twenty_requests_total counter\n",
            "twenty_mirror_twenty_requests_total{status=\"200\"} 7\n",
            "twenty_mirror_twenty_requests_total{status=\"429\"} 1\n",
            "twenty_mirror_twenty_rate_limit_wait_seconds_total 2.5\n",
            "twenty_mirror_rows{object=\"person\",state=\"live\"} 5\n",
            "twenty_mirror_rows{object=\"person\",state=\"soft_deleted\"} 1\n",
            "twenty_mirror_rows{object=\"person\",state=\"destroyed\"} 0\n",
            "twenty_mirror_reconcile_last_success_age_seconds{object=\"person\"} 1.5\n",
            "# TYPE twenty_mirror_webhook_health gauge\n",
            "twenty_mirror_webhook_health{object=\"person\",state=\"lossy\"} 1\n",
            "twenty_mirror_webhook_health{object=\"person\",state=\"ok\"} 0\n",
            "twenty_mirror_webhook_health{object=\"person\",state=\"silent\"} 0\n",
            "twenty_mirror_webhook_health{object=\"never\",state=\"unknown\"} 1\n",
            "twenty_mirror_webhook_health{object=\"never\",state=\"lossy\"} 0\n",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
        assert!(
            !text.contains("last_success_age_seconds{object=\"never\""),
            "an object never reconciled has no age: {text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.page("a\"b\\c\nd", 1, 0);
        let text = m.render(Snapshot::default()).unwrap();
        assert!(
            text.contains("twenty_mirror_reconcile_fetched_total{object=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
    }
}
