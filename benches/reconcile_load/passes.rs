//! The passes the bench measures, each one `reconcile_once` of the service's reconciler against the
//! fake (full, delta, rate-limited), and a fetch on its own for comparison.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use twenty_mirror::mirror::Store;
use twenty_mirror::mirror::{Counts, Mode, RunStatus, Trigger};
use twenty_mirror::sync::{Reconciler, ReconcilerSettings, RunRequest};
use twenty_mirror::twenty::client::{ClientSettings, TwentyClient};
use twenty_mirror::twenty::pacer::RateLimit;

use crate::OVERLAP;
use crate::database::{Wal, backend_ticks, wal};
use crate::machine::{CpuUse, DISTURBING_BACKGROUND, Memory, MemoryWatch, sample_cpu};
use crate::support::database::{Backend, Database};
use crate::support::machine::{background_load, wait_for_quiet};
use fake_twenty::{FakeTwenty, encode_query};

/// The reconciler's filter and order for a full pass (`src/sync/reconciler.rs`), for the fetch on
/// its own.
const EVERY_RECORD: &str = "or(deletedAt[is]:NULL,deletedAt[is]:NOT_NULL)";
const ORDER: &str = "updatedAt[AscNullsFirst]";
/// The page size the client asks for (`twenty::client::PAGE_SIZE`).
pub const PAGE_SIZE: usize = 200;

fn settings() -> ReconcilerSettings {
    ReconcilerSettings {
        overlap: OVERLAP,
        max_destroy_share: 0.10,
        allowlist: Some(vec!["person".to_owned()]),
    }
}

fn client_settings(fake: &FakeTwenty) -> ClientSettings {
    ClientSettings::new(fake.url(), FakeTwenty::API_KEY.to_owned().into())
}

pub fn unpaced_reconciler(store: &Store, fake: &FakeTwenty) -> Reconciler {
    let mut client = client_settings(fake);
    client.rate_limits = Vec::new();
    let client = TwentyClient::new(client).expect("a Twenty client");
    Reconciler::new(store.clone(), client, settings(), CancellationToken::new())
}

/// One `reconcile_once`, timed, with the fake's requests and the process's memory.
pub struct Measured {
    pub wall: Duration,
    pub status: RunStatus,
    pub error: Option<String>,
    pub counts: Counts,
    pub objects: usize,
    pub requests: usize,
    pub rate_limited: usize,
    pub memory: Memory,
    pub cpu: CpuUse,
    /// PostgreSQL's WAL activity over the pass.
    pub wal: Option<Wal>,
}

impl Measured {
    pub fn rate(&self) -> f64 {
        self.counts.fetched as f64 / self.wall.as_secs_f64()
    }

    pub fn summary(&self) -> String {
        format!(
            "{:?}, {} fetched in {:.2} s ({:.0}/s), {} requests, peak RSS growth {:.1} MiB",
            self.status,
            self.counts.fetched,
            self.wall.as_secs_f64(),
            self.rate(),
            self.requests,
            self.memory.sampled_growth_mib()
        )
    }
}

pub async fn measure_pass(
    reconciler: &Reconciler,
    fake: &FakeTwenty,
    backend: &Backend,
    db: &Database,
    mode: Mode,
) -> Measured {
    fake.reset_requests();
    let background =
        if mode == Mode::Full { wait_for_quiet(DISTURBING_BACKGROUND) } else { background_load() };
    let backends_before = backend_ticks(backend, db).await;
    let wal_before = wal(backend, db).await;
    let watch = MemoryWatch::start();
    let cpu_before = sample_cpu();
    let start = Instant::now();
    let outcome = reconciler.reconcile_once(RunRequest::new(Trigger::Operator, mode)).await;
    let wall = start.elapsed();
    let cpu_after = sample_cpu();
    let memory = watch.finish();
    let backends = backend_ticks(backend, db).await;
    let wal = match (wal(backend, db).await, wal_before) {
        (Some(after), Some(before)) => Some(after.since(&before)),
        _ => None,
    };
    let postgres = backends.as_ref().map(|after| {
        let before = backends_before.unwrap_or_default();
        after.iter().map(|(pid, ticks)| ticks.saturating_sub(before.get(pid).copied().unwrap_or(0))).sum()
    });
    let cpu = CpuUse::between(&cpu_before, &cpu_after, postgres, background);
    let log = fake.requests();
    let (status, error, counts, objects) = match outcome {
        Ok(outcome) => (outcome.status, outcome.error, outcome.counts, outcome.objects.len()),
        Err(error) => (RunStatus::Failed, Some(error.to_string()), Counts::default(), 0),
    };
    Measured {
        wall,
        status,
        error,
        counts,
        objects,
        requests: log.len(),
        rate_limited: log.iter().filter(|r| r.status == 429).count(),
        memory,
        cpu,
        wal,
    }
}

/// A fetch split into the fake's serving and the transfer (plain HTTP, body as bytes) and parsing.
#[derive(Default)]
pub struct RawPass {
    pub records: usize,
    pub pages: usize,
    pub bytes: usize,
    pub http: Duration,
    pub parse: Duration,
}

pub async fn raw_pass(fake: &FakeTwenty) -> RawPass {
    let http = reqwest::Client::new();
    let authorization = format!("Bearer {}", FakeTwenty::API_KEY);
    let mut raw = RawPass::default();
    let mut cursor: Option<String> = None;
    loop {
        let limit = PAGE_SIZE.to_string();
        let mut query = vec![("limit", limit.as_str()), ("depth", "0"), ("filter", EVERY_RECORD)];
        query.push(("order_by", ORDER));
        if let Some(cursor) = &cursor {
            query.push(("starting_after", cursor.as_str()));
        }
        let url = format!("{}/rest/people?{}", fake.url(), encode_query(&query));
        let t0 = Instant::now();
        let response =
            http.get(url).header("Authorization", &authorization).send().await.expect("a response");
        assert!(response.status().is_success(), "the fake answered {}", response.status());
        let body = response.bytes().await.expect("a body");
        let t1 = Instant::now();
        let value: Value = serde_json::from_slice(&body).expect("JSON");
        let t2 = Instant::now();
        raw.http += t1 - t0;
        raw.parse += t2 - t1;
        raw.bytes += body.len();
        raw.pages += 1;
        raw.records += value["data"]["people"].as_array().map_or(0, Vec::len);
        let page_info = &value["pageInfo"];
        match page_info["endCursor"].as_str() {
            Some(next) if page_info["hasNextPage"] == true => cursor = Some(next.to_owned()),
            _ => break,
        }
    }
    raw
}

pub struct Paced {
    pub records: i64,
    pub status: RunStatus,
    pub error: Option<String>,
    pub requests: usize,
    pub rate_limited: usize,
    pub wall: Duration,
}

impl Paced {
    /// The least time the limit allows for this many requests from a full bucket of 100, one
    /// every 0.6 s after it.
    pub fn minimum(&self) -> Duration {
        Duration::from_millis(600) * (self.requests.saturating_sub(100) as u32)
    }

    pub fn ratio(&self) -> f64 {
        self.wall.as_secs_f64() / self.minimum().as_secs_f64().max(1e-9)
    }
}

pub async fn paced_pass(store: &Store, fake: &FakeTwenty) -> Paced {
    fake.set_rate_limits(&[(100, Duration::from_secs(60)), (100, Duration::from_secs(1))]);
    fake.reset_requests();
    let mut client = client_settings(fake);
    client.rate_limits = RateLimit::twenty_defaults();
    let client = TwentyClient::new(client).expect("a Twenty client");
    let reconciler = Reconciler::new(store.clone(), client, settings(), CancellationToken::new());
    let start = Instant::now();
    let outcome = reconciler.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await;
    let wall = start.elapsed();
    let log = fake.requests();
    let (status, error, records) = match outcome {
        Ok(outcome) => (outcome.status, outcome.error, outcome.counts.fetched),
        Err(error) => (RunStatus::Failed, Some(error.to_string()), 0),
    };
    Paced {
        records,
        status,
        error,
        requests: log.len(),
        rate_limited: log.iter().filter(|r| r.status == 429).count(),
        wall,
    }
}
