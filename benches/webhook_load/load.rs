//! The load: a closed loop (each connection sends as soon as its previous request is answered), an
//! open loop (requests sent when due), and the naive design's closed loop in this process; what
//! each saw, tallied over the measured window.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use tokio::task::JoinSet;
use tokio::time::Instant;
use twenty_mirror::change::Change;
use twenty_mirror::mirror::{Store, StoreError};

use crate::PACED_CONNECTIONS;
use crate::http::HttpConnection;
use crate::report::LoadSummary;
use crate::support::database::Backend;
use crate::window::Window;

/// What one worker (or a whole run, once merged) saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latencies in microseconds of the successes counted in the window.
    latencies_us: Vec<u32>,
    /// When the last counted success finished, to measure a run that ran out of deliveries.
    last_finished: Option<Instant>,
    /// Every outcome other than success, by kind, warm-up included.
    failures: BTreeMap<String, u64>,
    /// The generated deliveries ran out before the window closed.
    ran_out: bool,
}

impl Tally {
    /// `reference` is when the request started (closed loop) or was due (open loop).
    fn success(&mut self, window: Window, reference: Instant, finished: Instant) {
        if window.contains(reference) {
            let micros = finished.duration_since(reference).as_micros();
            self.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
            self.last_finished = self.last_finished.max(Some(finished));
        }
    }

    fn failure(&mut self, kind: String) {
        *self.failures.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.last_finished = self.last_finished.max(other.last_finished);
        for (kind, count) in other.failures {
            *self.failures.entry(kind).or_default() += count;
        }
        self.ran_out |= other.ran_out;
    }

    pub fn summarize(mut self, window: Window) -> LoadSummary {
        self.latencies_us.sort_unstable();
        let span = match (self.ran_out, self.last_finished) {
            (true, Some(last)) => last.duration_since(window.start),
            _ => window.end.duration_since(window.start),
        };
        let percentile = |p: f64| {
            let rank = ((p * self.latencies_us.len() as f64).ceil() as usize).max(1);
            self.latencies_us.get(rank - 1).map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
        };
        LoadSummary {
            per_second: self.latencies_us.len() as f64 / span.as_secs_f64(),
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
            max_ms: percentile(1.0),
            failures: self.failures,
            ran_out: self.ran_out,
        }
    }
}

async fn merge_workers(mut workers: JoinSet<Tally>) -> Tally {
    let mut total = Tally::default();
    while let Some(worker) = workers.join_next().await {
        total.merge(worker.expect("a load worker panicked"));
    }
    total
}

/// `concurrency` keep-alive connections, each sending the next request as soon as its previous one
/// is answered, until the window closes or the requests run out.
pub async fn closed_loop(
    address: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
    window: Window,
) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (requests, next) = (requests.clone(), next.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut connection = None;
            loop {
                let started = Instant::now();
                if started >= window.end {
                    break;
                }
                let Some(request) = requests.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    tally.ran_out = true;
                    break;
                };
                if !send(address, &mut connection, request, window, started, &mut tally).await {
                    break;
                }
            }
            tally
        });
    }
    merge_workers(workers).await
}

/// Requests due at `rate` a second from the start of the warm-up, sent over
/// [`PACED_CONNECTIONS`] connections whichever is free; a request's latency runs from when it was
/// due, so time spent waiting for a connection counts. Tokio's timer fires on millisecond ticks,
/// which adds up to a millisecond to each latency.
pub async fn open_loop(address: SocketAddr, requests: Arc<Vec<Vec<u8>>>, rate: u32, window: Window) -> Tally {
    let first_due = Instant::now();
    let interval = Duration::from_secs(1) / rate;
    let due_count = (window.end.duration_since(first_due).as_secs_f64() * f64::from(rate)) as usize;
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..PACED_CONNECTIONS {
        let (requests, next) = (requests.clone(), next.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut connection = None;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= due_count {
                    break;
                }
                let Some(request) = requests.get(index) else {
                    tally.ran_out = true;
                    break;
                };
                let due = first_due + interval * u32::try_from(index).expect("fewer than 2^32 requests");
                tokio::time::sleep_until(due).await;
                if !send(address, &mut connection, request, window, due, &mut tally).await {
                    break;
                }
            }
            tally
        });
    }
    merge_workers(workers).await
}

/// Sends one request over `connection` (opened first if needed) and tallies the answer. A broken
/// connection is counted and reopened on the next send; returns false when the server cannot be
/// reached at all.
async fn send(
    address: SocketAddr,
    connection: &mut Option<HttpConnection>,
    request: &[u8],
    window: Window,
    reference: Instant,
    tally: &mut Tally,
) -> bool {
    if connection.is_none() {
        match HttpConnection::open(address).await {
            Ok(opened) => *connection = Some(opened),
            Err(e) => {
                tally.failure(format!("connect: {e}"));
                return false;
            }
        }
    }
    let Some(open) = connection.as_mut() else { return false };
    match tokio::time::timeout(DELIVERY_TIMEOUT, open.exchange(request)).await {
        Ok(Ok(200)) => tally.success(window, reference, Instant::now()),
        Ok(Ok(status)) => tally.failure(format!("HTTP {status}")),
        Ok(Err(e)) => {
            tally.failure(format!("I/O: {e}"));
            *connection = None;
        }
        Err(_) => {
            tally.failure(format!("no answer within {DELIVERY_TIMEOUT:?}"));
            *connection = None;
        }
    }
    true
}

/// Twenty gives up on a delivery after 5 s; so does the bench, which also bounds every request.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The naive design: each record in a transaction of its own, from `concurrency` tasks.
pub async fn naive_closed_loop(
    store: Store,
    changes: Arc<Vec<Change>>,
    concurrency: usize,
    window: Window,
) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (store, changes, next) = (store.clone(), changes.clone(), next.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let started = Instant::now();
                if started >= window.end {
                    break;
                }
                let Some(change) = changes.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    tally.ran_out = true;
                    break;
                };
                match tokio::time::timeout(DELIVERY_TIMEOUT, store.apply(std::slice::from_ref(change))).await
                {
                    Ok(Ok(_)) => tally.success(window, started, Instant::now()),
                    Ok(Err(error)) => tally.failure(error_chain(&error)),
                    Err(_) => tally.failure(format!("no commit within {DELIVERY_TIMEOUT:?}")),
                }
            }
            tally
        });
    }
    merge_workers(workers).await
}

/// The naive design's store. On PostgreSQL the pool has a connection per task, as a naive service
/// sized for this load would; the library's own pool (10) would make tasks queue for connections.
/// On SQLite the library's pool is kept: writes are serial whatever the pool size.
pub async fn open_naive_store(backend: &Backend, url: &str, concurrency: usize) -> Store {
    let store = match backend {
        Backend::Sqlite => Store::connect(url).await.expect("opening the naive SQLite store"),
        Backend::Postgres { .. } => {
            let options = PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
            Store::postgres_with_pool_size(options, u32::try_from(concurrency).expect("a small concurrency"))
        }
    };
    store.migrate().await.expect("migrating the naive store");
    store
}

fn error_chain(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
