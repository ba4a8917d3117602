//! Load test of the reconciler against the fake Twenty server (the `fake-twenty` crate), in
//! this process: the service's own reconciler (`Reconciler::reconcile_once`), its page loop
//! included, against records the bench loads into the fake. Run with
//! `cargo bench --bench reconcile_load`.
//!
//! 1. Full pass throughput: [`FULL_RECORDS`] `person` records of 1–2 KB each, a few percent
//!    soft-deleted, one full pass with no rate limit into a fresh SQLite database and a fresh
//!    PostgreSQL database, then a second full pass over the same, unchanged data. Records/s is
//!    fetched / wall time of `reconcile_once`. Memory: the fake holds every record in this process,
//!    so the figure that speaks about the reconciler is the growth of the resident set during the
//!    pass: VmRSS sampled every 10 ms minus VmRSS just before, and VmHWM (reset through
//!    `/proc/self/clear_refs` before the pass) minus the same baseline. CPU over each pass is split
//!    by thread (the reconciler's, SQLite's, the fake's) and PostgreSQL backend.
//! 2. A fetch on its own: plain HTTP, then `serde_json`, which splits a fetch into the fake's
//!    serving and transfer, and parsing. (The reconciler overlaps fetching, converting and writing
//!    pages, so the bench does not time those parts of its loop apart; the CPU split of section 1
//!    says who worked.)
//! 3. A delta pass with nothing changed, after the full passes: requests per object.
//! 4. A rate-limited pass: the client's default pacing (100/min and 100/s) against the fake
//!    enforcing the same limits, over [`PACED_RECORDS`] records; wall time against the least the
//!    limit allows, (requests − 100) × 0.6 s, and the 429s (there must be none).
//!
//! The results go to the terminal and to `target/reconcile_load.md`.
//!
//! Settings, from the environment (the defaults are the full size, which the figures of record use):
//! - `BENCH_BACKENDS=sqlite` or `=postgres`: the full and delta passes on one backend only (default
//!   both; the rate-limited pass runs on SQLite whatever this says);
//! - `BENCH_POSTGRES_URL`: the PostgreSQL server (default
//!   [`DEFAULT_POSTGRES_URL`](support::database::DEFAULT_POSTGRES_URL)); a database is created and
//!   dropped per pass, and PostgreSQL is skipped with a note when the server does not answer;
//! - `BENCH_RECORDS`: the records of the full passes (default [`FULL_RECORDS`]);
//! - `BENCH_PACED_RECORDS`: the records of the rate-limited pass (default [`PACED_RECORDS`]); the
//!   ratio means something only past 20,000 (100 pages, the limiter's burst);
//! - `RUST_LOG`: the library's logs, to stderr.
//!
//! A reduced run, to check that the bench works rather than to measure:
//! `BENCH_RECORDS=10000 BENCH_PACED_RECORDS=22000 cargo bench --bench reconcile_load`.

#[path = "../support/mod.rs"]
mod support;

mod database;
mod machine;
mod passes;
mod people;
mod report;

use std::time::{Duration, Instant};

use twenty_mirror::mirror::Mode;

use database::{enable_wal_timing, open_store};
use machine::reset_hwm;
use passes::{measure_pass, paced_pass, raw_pass, unpaced_reconciler};
use people::loaded_fake;
use report::Report;
use support::database::{Backend, Database, selected_backends};

const FULL_RECORDS: usize = 100_000;
const PACED_RECORDS: usize = 30_000;
/// δ, the reconciler's overlap: a delta pass reads from this long before the watermark.
const OVERLAP: Duration = Duration::from_secs(300);

/// The size of a bench run: the constants above unless the environment says otherwise.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    full_records: usize,
    paced_records: usize,
}

impl Sizes {
    fn from_env() -> Self {
        Sizes {
            full_records: support::number("BENCH_RECORDS", FULL_RECORDS),
            paced_records: support::number("BENCH_PACED_RECORDS", PACED_RECORDS),
        }
    }
}

fn main() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
    let sizes = Sizes::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let started = Instant::now();
    let mut report = Report::new(sizes);

    let (backends, notes) = runtime.block_on(selected_backends());
    report.notes.extend(notes);
    for backend in &backends {
        if let Backend::Postgres { admin_url } = backend {
            let sslmode = admin_url
                .split_once('?')
                .and_then(|(_, query)| query.split('&').find_map(|pair| pair.strip_prefix("sslmode=")))
                .unwrap_or("prefer, sqlx's default: TLS when the server offers it");
            report.notes.push(format!("PostgreSQL sslmode: {sslmode}"));
        }
    }
    if !reset_hwm() {
        report.notes.push(
            "VmHWM could not be reset (/proc/self/clear_refs); the VmHWM columns are the process's peak"
                .to_owned(),
        );
    }

    // ----- 100,000 records, no rate limit -----
    let (fake, average_bytes) = runtime.block_on(loaded_fake(sizes.full_records, 1));
    report.average_bytes = average_bytes;
    eprintln!("fake loaded with {} records of {average_bytes} B on average", sizes.full_records);
    // Warms the fake (its count cache, the allocator) and the loopback, and splits a fetch into
    // serving and parsing.
    report.raw = Some(runtime.block_on(raw_pass(&fake)));

    for backend in &backends {
        let db = runtime.block_on(Database::create(backend, "full"));
        runtime.block_on(enable_wal_timing(backend, &db));
        let store = runtime.block_on(open_store(&db.url));
        let reconciler = unpaced_reconciler(&store, &fake);
        for (pass, mode) in [("first (fresh db)", Mode::Full), ("second (unchanged)", Mode::Full)] {
            let measured = runtime.block_on(measure_pass(&reconciler, &fake, backend, &db, mode));
            eprintln!("{} {pass}: {}", backend.name(), measured.summary());
            report.full.push((backend.name(), pass, measured));
        }
        let delta = runtime.block_on(measure_pass(&reconciler, &fake, backend, &db, Mode::Delta));
        eprintln!("{} delta: {}", backend.name(), delta.summary());
        report.delta.push((backend.name(), delta));
        runtime.block_on(store.close());
        drop(db);
    }
    drop(fake);

    // ----- 30,000 records under Twenty's default limits -----
    let (fake, _) = runtime.block_on(loaded_fake(sizes.paced_records, 2));
    let db = runtime.block_on(Database::create(&Backend::Sqlite, "paced"));
    let store = runtime.block_on(open_store(&db.url));
    let paced = runtime.block_on(paced_pass(&store, &fake));
    eprintln!("paced: {} requests in {:.1} s", paced.requests, paced.wall.as_secs_f64());
    report.paced = Some(paced);
    runtime.block_on(store.close());
    drop(db);
    drop(fake);

    report.total = started.elapsed();
    support::publish("reconcile_load.md", &report.render());
}
