//! Prometheus metrics, in the text exposition format. Counters live in memory; the facts the
//! database already holds (rows per object, the age of the last run) are read when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::mirror::{ObjectCounts, SyncState};
use crate::twenty::client::ClientStats;

/// Upper bounds of the apply-latency histogram, in seconds: from an idle commit (about a
/// millisecond) to the 2 s deadline after which a delivery is answered 503.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0];

/// The service's counters. Shared by the HTTP handlers and the reconciler.
#[derive(Default)]
pub struct Metrics {
    /// (object, event action, outcome) → deliveries.
    deliveries: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    /// Refusal reason → deliveries refused before anything was stored.
    refused: Mutex<BTreeMap<&'static str, u64>>,
    apply_latency: Histogram,
    /// Run status → runs.
    runs: Mutex<BTreeMap<&'static str, u64>>,
    /// Object → records read by the reconciler.
    fetched: Mutex<BTreeMap<String, u64>>,
    /// Object → reconciler writes that changed the mirror.
    repaired: Mutex<BTreeMap<String, u64>>,
}

struct Histogram {
    counts: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, by: u64) {
    // A poisoned lock only means another thread panicked mid-increment; the counts are still usable.
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    *map.entry(key).or_insert(0) += by;
}

/// What the scrape reads from the database and the Twenty client.
#[derive(Default)]
pub struct Snapshot {
    pub database_up: bool,
    pub rows: Vec<ObjectCounts>,
    pub states: Vec<SyncState>,
    pub client: Option<ClientStats>,
    pub now: Option<DateTime<Utc>>,
}

impl Metrics {
    pub fn delivery(&self, object: &str, action: &str, outcome: &'static str) {
        bump(&self.deliveries, (object.to_owned(), action.to_owned(), outcome), 1);
    }

    pub fn refused(&self, reason: &'static str) {
        bump(&self.refused, reason, 1);
    }

    /// How long a delivery waited for its commit.
    pub fn apply_latency(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let h = &self.apply_latency;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&h.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn run(&self, status: &'static str) {
        bump(&self.runs, status, 1);
    }

    pub fn page(&self, object: &str, fetched: u64, repaired: u64) {
        bump(&self.fetched, object.to_owned(), fetched);
        bump(&self.repaired, object.to_owned(), repaired);
    }

    /// The text exposition of every metric.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::new();

        family(
            &mut out,
            "twenty_mirror_webhook_deliveries_total",
            "counter",
            "Verified deliveries, by object, event and outcome.",
        );
        for ((object, event, outcome), n) in
            self.deliveries.lock().unwrap_or_else(PoisonError::into_inner).iter()
        {
            sample(
                &mut out,
                "twenty_mirror_webhook_deliveries_total",
                &[("object", object), ("event", event), ("outcome", outcome)],
                *n as f64,
            );
        }
        family(
            &mut out,
            "twenty_mirror_webhook_refused_total",
            "counter",
            "Deliveries refused before anything was stored, by reason.",
        );
        for (reason, n) in self.refused.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            sample(&mut out, "twenty_mirror_webhook_refused_total", &[("reason", reason)], *n as f64);
        }

        let h = &self.apply_latency;
        family(
            &mut out,
            "twenty_mirror_apply_seconds",
            "histogram",
            "Time from a verified delivery to its commit.",
        );
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&h.counts) {
            let le = bound.to_string();
            sample(
                &mut out,
                "twenty_mirror_apply_seconds_bucket",
                &[("le", &le)],
                count.load(Ordering::Relaxed) as f64,
            );
        }
        let count = h.count.load(Ordering::Relaxed) as f64;
        sample(&mut out, "twenty_mirror_apply_seconds_bucket", &[("le", "+Inf")], count);
        sample(
            &mut out,
            "twenty_mirror_apply_seconds_sum",
            &[],
            h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
        sample(&mut out, "twenty_mirror_apply_seconds_count", &[], count);

        family(
            &mut out,
            "twenty_mirror_reconcile_runs_total",
            "counter",
            "Reconciler runs, by how they ended.",
        );
        for (status, n) in self.runs.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            sample(&mut out, "twenty_mirror_reconcile_runs_total", &[("status", status)], *n as f64);
        }
        family(
            &mut out,
            "twenty_mirror_reconcile_fetched_total",
            "counter",
            "Records read from Twenty by the reconciler, by object.",
        );
        for (object, n) in self.fetched.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            sample(&mut out, "twenty_mirror_reconcile_fetched_total", &[("object", object)], *n as f64);
        }
        family(
            &mut out,
            "twenty_mirror_reconcile_repaired_total",
            "counter",
            "Reconciler writes that changed the mirror (what webhooks missed), by object.",
        );
        for (object, n) in self.repaired.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            sample(&mut out, "twenty_mirror_reconcile_repaired_total", &[("object", object)], *n as f64);
        }

        if let Some(stats) = &snapshot.client {
            family(
                &mut out,
                "twenty_mirror_twenty_requests_total",
                "counter",
                "Requests to Twenty's API, by HTTP status (error: no answer).",
            );
            for (status, n) in &stats.requests {
                sample(&mut out, "twenty_mirror_twenty_requests_total", &[("status", status)], *n as f64);
            }
            family(
                &mut out,
                "twenty_mirror_twenty_rate_limit_wait_seconds_total",
                "counter",
                "Time spent waiting for the rate limit before requests to Twenty.",
            );
            sample(
                &mut out,
                "twenty_mirror_twenty_rate_limit_wait_seconds_total",
                &[],
                stats.rate_limit_wait.as_secs_f64(),
            );
        }

        family(&mut out, "twenty_mirror_database_up", "gauge", "Whether the database answered this scrape.");
        sample(&mut out, "twenty_mirror_database_up", &[], if snapshot.database_up { 1.0 } else { 0.0 });
        family(
            &mut out,
            "twenty_mirror_rows",
            "gauge",
            "Rows of the mirror, by object and state (live, soft_deleted, destroyed).",
        );
        for c in &snapshot.rows {
            for (state, n) in [("live", c.live), ("soft_deleted", c.soft_deleted), ("destroyed", c.destroyed)]
            {
                sample(&mut out, "twenty_mirror_rows", &[("object", &c.object), ("state", state)], n as f64);
            }
        }
        if let Some(now) = snapshot.now {
            family(
                &mut out,
                "twenty_mirror_reconcile_last_success_age_seconds",
                "gauge",
                "Seconds since the last complete reconcile pass, by object.",
            );
            for state in &snapshot.states {
                if let Some(at) = state.last_delta_at.max(state.last_full_at) {
                    let age = (now - at).num_milliseconds() as f64 / 1e3;
                    sample(
                        &mut out,
                        "twenty_mirror_reconcile_last_success_age_seconds",
                        &[("object", &state.object)],
                        age,
                    );
                }
            }
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"{}\"", escape(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
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
        let text = m.render(&Snapshot { database_up: true, ..Snapshot::default() });
        assert!(text.contains(
            "twenty_mirror_webhook_deliveries_total{object=\"person\",event=\"updated\",outcome=\"applied\"} 2\n"
        ));
        assert!(text.contains("twenty_mirror_webhook_refused_total{reason=\"bad_signature\"} 1\n"));
        assert!(text.contains("twenty_mirror_apply_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("twenty_mirror_apply_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("twenty_mirror_apply_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("twenty_mirror_apply_seconds_count 1\n"));
        assert!(text.contains("twenty_mirror_reconcile_repaired_total{object=\"person\"} 3\n"));
        assert!(text.contains("twenty_mirror_database_up 1\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
