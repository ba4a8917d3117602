//! Load test of the reconciler against the fake Twenty server (`tests/support/fake_twenty.rs`), in
//! this process. Run with `cargo bench --bench reconcile_load`.
//!
//! 1. Full pass throughput: [`FULL_RECORDS`] `person` records of 1–2 KB each, a few percent
//!    soft-deleted, one full pass with no rate limit into a fresh SQLite database and a fresh
//!    PostgreSQL database, then a second full pass over the same, unchanged data. Records/s is
//!    fetched / wall time of `reconcile_once`. Memory: the fake holds every record in this process,
//!    so the figure that speaks about the reconciler is the growth of the resident set during the
//!    pass: VmRSS sampled every 10 ms minus VmRSS just before, and VmHWM (reset through
//!    `/proc/self/clear_refs` before the pass) minus the same baseline.
//! 2. Where the time of a full pass goes: the loop of `read_all`, written out here with a timer
//!    around `client.list_page`, `Change::upsert` and `store.apply_page`, into another fresh database;
//!    and a raw pass (plain HTTP, then `serde_json`) that splits the fetch into the fake's serving
//!    and transfer, and parsing.
//! 3. A delta pass with nothing changed, after the full passes: requests per object.
//! 4. A rate-limited pass: the client's default pacing (100/min and 100/s) against the fake
//!    enforcing the same limits, over [`PACED_RECORDS`] records; wall time against the least the
//!    limit allows, (requests − 100) × 0.6 s, and the 429s (there must be none).
//!
//! The results go to the terminal and to `target/reconcile_load.md`. `BENCH_POSTGRES_URL` names the
//! PostgreSQL server (default `postgres://postgres@127.0.0.1:5432/postgres`); a database is created
//! and dropped per pass, and PostgreSQL is skipped with a note when the server does not answer.
//! `BENCH_BACKENDS=sqlite` or `=postgres` runs the full passes on one backend only.
//! `RUST_LOG` turns on the library's logs (to stderr).

#[allow(dead_code)] // the bench uses a small part of the fake
#[path = "../tests/support/fake_twenty.rs"]
mod fake_twenty;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sqlx::{Connection as _, Executor as _, PgConnection};
use tokio_util::sync::CancellationToken;
use twenty_mirror::change::{Change, Source};
use twenty_mirror::mirror::Store;
use twenty_mirror::mirror::{Counts, Mode, PageWrite, RunStatus, Trigger};
use twenty_mirror::sync::{Reconciler, ReconcilerSettings, RunRequest};
use twenty_mirror::twenty::client::{ClientSettings, TwentyClient};
use twenty_mirror::twenty::pacer::RateLimit;

use fake_twenty::{FakeTwenty, encode_query};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const FULL_RECORDS: usize = 100_000;
const PACED_RECORDS: usize = 30_000;
/// Serialised size of a record, uniform in this range.
const MIN_RECORD_BYTES: usize = 1024;
const MAX_RECORD_BYTES: usize = 2048;
const SOFT_DELETED_PERCENT: u64 = 3;
/// `updatedAt` steps this far from one record to the next, so that the δ of a delta pass (5 minutes)
/// covers about 43 records: one page.
const UPDATED_STEP_MS: i64 = 7_000;
/// The newest record was updated this long before the bench started.
const NEWEST_AGE_MS: i64 = 3_600_000;
const OVERLAP: Duration = Duration::from_secs(300);

/// The reconciler's filter and order for a full pass (`src/sync/reconciler.rs`), for the
/// instrumented loop.
const EVERY_RECORD: &str = "or(deletedAt[is]:NULL,deletedAt[is]:NOT_NULL)";
const ORDER: &str = "updatedAt[AscNullsFirst]";
const PAGE_SIZE: usize = 200;

// Targets.
const TARGET_RATE: f64 = 20_000.0;
const TARGET_MEMORY_MIB: f64 = 100.0;
const TARGET_PACED_RATIO: f64 = 1.05;

fn main() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
    let postgres_url = std::env::var("BENCH_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let started = Instant::now();
    let mut report = Report::default();

    let selected = std::env::var("BENCH_BACKENDS")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "sqlite,postgres".to_owned());
    let wanted = |name: &str| selected.split(',').any(|s| s.trim() == name);
    let mut backends = Vec::new();
    if wanted("sqlite") {
        backends.push(Backend::Sqlite);
    }
    match runtime.block_on(postgres_answers(&postgres_url)) {
        _ if !wanted("postgres") => {}
        Ok(()) => {
            let sslmode = postgres_url
                .split_once('?')
                .and_then(|(_, query)| query.split('&').find_map(|pair| pair.strip_prefix("sslmode=")))
                .unwrap_or("prefer, sqlx's default: TLS when the server offers it");
            report.notes.push(format!("PostgreSQL sslmode: {sslmode}"));
            backends.push(Backend::Postgres { admin_url: postgres_url });
        }
        Err(why) => report.notes.push(format!("PostgreSQL skipped: {why}")),
    }
    if !reset_hwm() {
        report.notes.push(
            "VmHWM could not be reset (/proc/self/clear_refs); the VmHWM columns are the process's peak"
                .to_owned(),
        );
    }

    // ----- 100,000 records, no rate limit -----
    let (fake, average_bytes) = runtime.block_on(loaded_fake(FULL_RECORDS, 1));
    report.full_records = FULL_RECORDS;
    report.average_bytes = average_bytes;
    eprintln!("fake loaded with {FULL_RECORDS} records of {average_bytes} B on average");
    // Warms the fake (its count cache, the allocator) and the loopback, and splits a fetch into
    // serving and parsing.
    report.raw = Some(runtime.block_on(raw_pass(&fake)));

    for backend in &backends {
        let db = runtime.block_on(Database::create(backend, "full"));
        let store = runtime.block_on(open_store(&db.url));
        let reconciler = unpaced_reconciler(&store, &fake);
        for (pass, mode) in [("first (fresh db)", Mode::Full), ("second (unchanged)", Mode::Full)] {
            let measured = runtime.block_on(measure_pass(&reconciler, &fake, &db, mode));
            eprintln!("{} {pass}: {}", backend.name(), measured.summary());
            report.full.push((backend.name(), pass, measured));
        }
        let delta = runtime.block_on(measure_pass(&reconciler, &fake, &db, Mode::Delta));
        eprintln!("{} delta: {}", backend.name(), delta.summary());
        report.delta.push((backend.name(), delta));
        runtime.block_on(store.close());
        drop(db);

        let db = runtime.block_on(Database::create(backend, "profile"));
        let store = runtime.block_on(open_store(&db.url));
        let profile = runtime.block_on(instrumented_pass(&store, &fake));
        eprintln!("{} instrumented: {:.0} records/s", backend.name(), profile.rate());
        report.profile.push((backend.name(), profile));
        runtime.block_on(store.close());
        drop(db);
    }
    drop(fake);

    // ----- 30,000 records under Twenty's default limits -----
    let (fake, _) = runtime.block_on(loaded_fake(PACED_RECORDS, 2));
    let db = runtime.block_on(Database::create(&Backend::Sqlite, "paced"));
    let store = runtime.block_on(open_store(&db.url));
    let paced = runtime.block_on(paced_pass(&store, &fake));
    eprintln!("paced: {} requests in {:.1} s", paced.requests, paced.wall.as_secs_f64());
    report.paced = Some(paced);
    runtime.block_on(store.close());
    drop(db);
    drop(fake);

    report.total = started.elapsed();
    let text = report.render();
    println!("\n{text}");
    let path = target_dir().join("reconcile_load.md");
    match fs::write(&path, &text) {
        Ok(()) => println!("written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// splitmix64: deterministic, so every run serves the same records.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

const FIRST_NAMES: &[&str] = &[
    "Anna", "Louis", "Chloé", "Mateo", "Sofia", "Noah", "Emma", "Liam", "Inès", "Hugo", "Zoé", "Arthur",
    "Maya", "Jules", "Léa", "Oscar", "Nina", "Sacha", "Alice", "Gabriel",
];
const LAST_NAMES: &[&str] = &[
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "Müller", "Schmidt", "Rossi", "Nowak", "Smith",
];
const DOMAINS: &[&str] =
    &["example.com", "acme.io", "globex.fr", "initech.de", "umbrella.co.uk", "hooli.com", "stark.dev"];
const JOB_TITLES: &[&str] = &[
    "CEO",
    "CTO",
    "Head of Sales",
    "Account Executive",
    "Software Engineer",
    "Product Manager",
    "Customer Success Manager",
    "VP Marketing",
    "Procurement Officer",
    "Data Analyst",
];
/// Twelve cities and a vocabulary for the long text, `|`-separated.
const CITIES: &str =
    "Paris|Lyon|Berlin|London|Madrid|Milano|Amsterdam|New York|San Francisco|Montréal|Lisboa|Warszawa";
const WORDS: &str = "met|at|the|conference|interested|in|pricing|for|enterprise|plan|follow|up|next|quarter|\
    budget|approved|needs|security|review|integration|with|their|ERP|champion|decision|maker|renewal|upsell|\
    pilot|team|onboarding|call|scheduled|demo|went|well|asked|about|SSO|and|audit|logs";

/// `count` person records with ids, strictly increasing `updatedAt`s ending [`NEWEST_AGE_MS`] ago, and
/// their average serialised size.
fn people(count: usize, seed: u64) -> (Vec<Value>, usize) {
    let mut rng = Rng(seed);
    let words: Vec<&str> = WORDS.split('|').map(str::trim).collect();
    let cities: Vec<&str> = CITIES.split('|').collect();
    let companies: Vec<String> = (0..500).map(|_| rng.uuid()).collect();
    let members: Vec<(String, String)> = (0..12)
        .map(|_| (rng.uuid(), format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES))))
        .collect();
    let newest = Utc::now().timestamp_millis() - NEWEST_AGE_MS;
    let first = newest - UPDATED_STEP_MS * (count as i64 - 1);
    let mut total_bytes = 0;
    let records = (0..count)
        .map(|i| {
            let updated_ms = first + UPDATED_STEP_MS * i as i64;
            let record = person(
                &mut rng,
                i,
                updated_ms,
                &Pools { companies: &companies, members: &members, cities: &cities, words: &words },
            );
            total_bytes += record.to_string().len();
            record
        })
        .collect();
    (records, total_bytes / count.max(1))
}

/// What records pick their values from.
struct Pools<'a> {
    companies: &'a [String],
    members: &'a [(String, String)],
    cities: &'a [&'a str],
    words: &'a [&'a str],
}

fn person(rng: &mut Rng, i: usize, updated_ms: i64, pools: &Pools<'_>) -> Value {
    let first_name = rng.pick(FIRST_NAMES);
    let last_name = rng.pick(LAST_NAMES);
    let handle = format!("{}.{}{i}", first_name.to_lowercase(), last_name.to_lowercase());
    let created_ms = updated_ms - rng.below(90 * 86_400_000) as i64;
    let additional_emails = match rng.below(4) {
        0 => json!([format!("{handle}@{}", rng.pick(DOMAINS))]),
        1 => json!(null),
        _ => json!([]),
    };
    let company_id = if rng.below(10) == 0 { Value::Null } else { json!(rng.pick_owned(pools.companies)) };
    let created_by = match rng.below(3) {
        0 => json!({"source": "API", "workspaceMemberId": null, "name": "Mirror import key", "context": {}}),
        source => {
            let (member_id, member_name) = &pools.members[rng.below(pools.members.len() as u64) as usize];
            json!({
                "source": if source == 1 { "MANUAL" } else { "IMPORT" },
                "workspaceMemberId": member_id,
                "name": member_name,
                "context": {},
            })
        }
    };
    let deleted = rng.below(100) < SOFT_DELETED_PERCENT;
    let mut record = json!({
        "id": rng.uuid(),
        "name": {"firstName": first_name, "lastName": last_name},
        "emails": {"primaryEmail": format!("{handle}@{}", rng.pick(DOMAINS)), "additionalEmails": additional_emails},
        "phones": {
            "primaryPhoneNumber": format!("6{:08}", rng.below(100_000_000)),
            "primaryPhoneCountryCode": "FR",
            "primaryPhoneCallingCode": "+33",
            "additionalPhones": [],
        },
        "linkedinLink": {
            "primaryLinkUrl": format!("https://www.linkedin.com/in/{handle}"),
            "primaryLinkLabel": "",
            "secondaryLinks": [],
        },
        "xLink": {"primaryLinkUrl": "", "primaryLinkLabel": "", "secondaryLinks": []},
        "jobTitle": rng.pick(JOB_TITLES),
        "city": rng.pick(pools.cities),
        "avatarUrl": "",
        "position": i,
        "companyId": company_id,
        "createdBy": created_by,
        "createdAt": timestamp(created_ms),
        "updatedAt": timestamp(updated_ms),
        "deletedAt": if deleted { json!(timestamp(updated_ms)) } else { Value::Null },
    });
    // A long text field brings the record to its size: `,"intro":"…"` adds 11 bytes and the text.
    let target = MIN_RECORD_BYTES + rng.below((MAX_RECORD_BYTES - MIN_RECORD_BYTES + 1) as u64) as usize;
    let room = target.saturating_sub(record.to_string().len() + 11);
    let mut intro = String::with_capacity(room + 16);
    while intro.len() < room {
        if !intro.is_empty() {
            intro.push(' ');
        }
        intro.push_str(rng.pick(pools.words));
    }
    intro.truncate(room);
    record["intro"] = json!(intro);
    record
}

impl Rng {
    fn pick_owned(&mut self, items: &[String]) -> String {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

fn timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("a timestamp")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A fake with `count` person records, inserted in chunks; and their average size.
async fn loaded_fake(count: usize, seed: u64) -> (FakeTwenty, usize) {
    let fake = FakeTwenty::start().await;
    let (mut records, average) = people(count, seed);
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(10_000));
        fake.bulk_insert("person", records);
        records = rest;
    }
    (fake, average)
}

// ---------------------------------------------------------------------------------------------
// Passes

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

fn unpaced_reconciler(store: &Store, fake: &FakeTwenty) -> Reconciler {
    let mut client = client_settings(fake);
    client.rate_limits = Vec::new();
    let client = TwentyClient::new(client).expect("a Twenty client");
    Reconciler::new(store.clone(), client, settings(), CancellationToken::new())
}

/// One `reconcile_once`, timed, with the fake's requests and the process's memory.
struct Measured {
    wall: Duration,
    status: RunStatus,
    error: Option<String>,
    counts: Counts,
    objects: usize,
    requests: usize,
    rate_limited: usize,
    memory: Memory,
    cpu: CpuUse,
    /// PostgreSQL's WAL activity over the pass.
    wal: Option<Wal>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.counts.fetched as f64 / self.wall.as_secs_f64()
    }

    fn summary(&self) -> String {
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

async fn measure_pass(reconciler: &Reconciler, fake: &FakeTwenty, db: &Database, mode: Mode) -> Measured {
    fake.reset_requests();
    let background = if mode == Mode::Full { wait_for_quiet() } else { background_load() };
    let backends_before = db.backend_ticks().await;
    let wal_before = db.wal().await;
    let watch = MemoryWatch::start();
    let cpu_before = sample_cpu();
    let start = Instant::now();
    let outcome = reconciler.reconcile_once(RunRequest::new(Trigger::Operator, mode)).await;
    let wall = start.elapsed();
    let cpu_after = sample_cpu();
    let memory = watch.finish();
    let backends = db.backend_ticks().await;
    let wal = match (db.wal().await, wal_before) {
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

/// The loop of `read_all`, with a timer around each part.
#[derive(Default)]
struct Profile {
    records: usize,
    pages: usize,
    list_page: Duration,
    convert: Duration,
    apply_page: Duration,
    total: Duration,
}

impl Profile {
    fn rate(&self) -> f64 {
        self.records as f64 / self.total.as_secs_f64()
    }
}

async fn instrumented_pass(store: &Store, fake: &FakeTwenty) -> Profile {
    let mut client = client_settings(fake);
    client.rate_limits = Vec::new();
    let client = TwentyClient::new(client).expect("a Twenty client");
    let run_id = store
        .create_run(Trigger::Operator, Mode::Full, &["person".to_owned()], Utc::now())
        .await
        .expect("recording a run");
    let mut profile = Profile::default();
    let mut cursor: Option<String> = None;
    let start = Instant::now();
    loop {
        let t0 = Instant::now();
        let page = client.list_page("people", Some(EVERY_RECORD), Some(ORDER), cursor.as_deref()).await;
        let page = page.expect("a page");
        let t1 = Instant::now();
        let changes: Vec<Change> = page
            .records
            .iter()
            .map(|record| Change::upsert("person", record, Source::Reconcile).expect("a valid record"))
            .collect();
        let t2 = Instant::now();
        let write = PageWrite {
            object: "person",
            changes: &changes,
            watermark: changes.iter().map(|c| c.updated_at).max(),
            run_id: Some(run_id),
            lock: None,
        };
        store.apply_page(&write).await.expect("applying a page");
        let t3 = Instant::now();
        profile.list_page += t1 - t0;
        profile.convert += t2 - t1;
        profile.apply_page += t3 - t2;
        profile.records += changes.len();
        profile.pages += 1;
        match page.end_cursor {
            Some(next) if page.has_next_page => cursor = Some(next),
            _ => break,
        }
    }
    profile.total = start.elapsed();
    profile
}

/// A fetch split into the fake's serving and the transfer (plain HTTP, body as bytes) and parsing.
#[derive(Default)]
struct RawPass {
    records: usize,
    pages: usize,
    bytes: usize,
    http: Duration,
    parse: Duration,
}

async fn raw_pass(fake: &FakeTwenty) -> RawPass {
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

struct Paced {
    records: i64,
    status: RunStatus,
    error: Option<String>,
    requests: usize,
    rate_limited: usize,
    wall: Duration,
}

impl Paced {
    /// The least time the limit allows for this many requests from a full bucket of 100, one
    /// every 0.6 s after it.
    fn minimum(&self) -> Duration {
        Duration::from_millis(600) * (self.requests.saturating_sub(100) as u32)
    }

    fn ratio(&self) -> f64 {
        self.wall.as_secs_f64() / self.minimum().as_secs_f64().max(1e-9)
    }
}

async fn paced_pass(store: &Store, fake: &FakeTwenty) -> Paced {
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

// ---------------------------------------------------------------------------------------------
// Databases

enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

/// A fresh database, removed when dropped.
struct Database {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Folder(#[allow(dead_code)] tempfile::TempDir),
    Drop { admin_url: String, name: String },
}

impl Database {
    async fn create(backend: &Backend, purpose: &str) -> Database {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
                Database { url, cleanup: Cleanup::Folder(dir) }
            }
            Backend::Postgres { admin_url } => {
                // A database left by an interrupted bench is recognisable by its prefix.
                let name = format!("twenty_mirror_bench_reconcile_{}_{purpose}", std::process::id());
                let mut admin =
                    PgConnection::connect(admin_url).await.expect("connecting to BENCH_POSTGRES_URL");
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("creating a bench database");
                // So that pg_stat_wal times the WAL writes and flushes of the sessions on this
                // database (a superuser setting; without it the times stay zero).
                let _ = admin
                    .execute(format!("ALTER DATABASE {name} SET track_wal_io_timing = on").as_str())
                    .await;
                admin.close().await.expect("closing the admin connection");
                let url = with_database(admin_url, &name);
                Database { url, cleanup: Cleanup::Drop { admin_url: admin_url.clone(), name } }
            }
        }
    }
}

/// The server's WAL counters (`pg_stat_wal`, PostgreSQL 14 and later): cluster-wide, but only
/// sessions with `track_wal_io_timing` (the bench's) add to the times.
#[derive(Debug, Clone, Copy, Default)]
struct Wal {
    bytes: f64,
    syncs: i64,
    write_ms: f64,
    sync_ms: f64,
}

impl Wal {
    fn since(&self, before: &Wal) -> Wal {
        Wal {
            bytes: self.bytes - before.bytes,
            syncs: self.syncs - before.syncs,
            write_ms: self.write_ms - before.write_ms,
            sync_ms: self.sync_ms - before.sync_ms,
        }
    }
}

impl Database {
    /// `None` on SQLite, or when the server has no `pg_stat_wal`.
    async fn wal(&self) -> Option<Wal> {
        let Cleanup::Drop { admin_url, .. } = &self.cleanup else { return None };
        let mut admin = PgConnection::connect(admin_url).await.ok()?;
        let row: Option<(f64, i64, f64, f64)> = sqlx::query_as(
            "SELECT wal_bytes::float8, wal_sync, wal_write_time, wal_sync_time FROM pg_stat_wal",
        )
        .fetch_one(&mut admin)
        .await
        .ok();
        let _ = admin.close().await;
        row.map(|(bytes, syncs, write_ms, sync_ms)| Wal { bytes, syncs, write_ms, sync_ms })
    }

    /// CPU ticks of each PostgreSQL backend connected to this database, by pid; `None` on SQLite.
    async fn backend_ticks(&self) -> Option<HashMap<i32, u64>> {
        let Cleanup::Drop { admin_url, name } = &self.cleanup else { return None };
        let mut admin = PgConnection::connect(admin_url).await.ok()?;
        let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .fetch_all(&mut admin)
            .await
            .ok()?;
        let _ = admin.close().await;
        let ticks = pids
            .into_iter()
            .filter_map(|pid| {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let (_, own, _) = stat_ticks(&stat)?;
                Some((pid, own))
            })
            .collect();
        Some(ticks)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let Cleanup::Drop { admin_url, name } = &self.cleanup else { return };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop may run inside the runtime: use one of its own, on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
                admin.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a bench database: {dropped:?}");
        }
    }
}

async fn open_store(url: &str) -> Store {
    let store = Store::connect(url).await.expect("a store");
    store.migrate().await.expect("migrations");
    store
}

async fn postgres_answers(admin_url: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(admin_url)).await {
        Ok(Ok(connection)) => connection.close().await.map_err(|e| format!("closing a connection: {e}")),
        Ok(Err(e)) => Err(format!("cannot connect to {admin_url}: {e}")),
        Err(_) => Err(format!("{admin_url} did not answer within 3 s")),
    }
}

/// `postgres://user@host:port/anything?params` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Memory

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Resets VmHWM to the current VmRSS (Linux ≥ 4.0).
fn reset_hwm() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Resident memory around a pass, in KiB.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    baseline: u64,
    sampled_peak: u64,
    hwm: u64,
    hwm_was_reset: bool,
}

impl Memory {
    fn sampled_growth_mib(&self) -> f64 {
        self.sampled_peak.saturating_sub(self.baseline) as f64 / 1024.0
    }

    fn hwm_growth_mib(&self) -> Option<f64> {
        self.hwm_was_reset.then(|| self.hwm.saturating_sub(self.baseline) as f64 / 1024.0)
    }

    /// The larger of the two measures of growth.
    fn growth_mib(&self) -> f64 {
        self.sampled_growth_mib().max(self.hwm_growth_mib().unwrap_or(0.0))
    }
}

/// Samples VmRSS every 10 ms on a thread of its own until `finish`.
struct MemoryWatch {
    baseline: u64,
    hwm_was_reset: bool,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: std::thread::JoinHandle<()>,
}

impl MemoryWatch {
    fn start() -> MemoryWatch {
        let hwm_was_reset = reset_hwm();
        let baseline = status_kib("VmRSS:").unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(baseline));
        let sampler = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = status_kib("VmRSS:") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        MemoryWatch { baseline, hwm_was_reset, stop, peak, sampler }
    }

    fn finish(self) -> Memory {
        if let Some(rss) = status_kib("VmRSS:") {
            self.peak.fetch_max(rss, Ordering::Relaxed);
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.sampler.join();
        Memory {
            baseline: self.baseline,
            sampled_peak: self.peak.load(Ordering::Relaxed),
            hwm: status_kib("VmHWM:").unwrap_or(0),
            hwm_was_reset: self.hwm_was_reset,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CPU

/// Clock ticks per second in `/proc/*/stat` (USER_HZ): 100 on Linux for every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// Cores busy before a pass above which the pass is flagged: something else was running.
const DISTURBING_BACKGROUND: f64 = 0.2;

/// CPU time, in ticks, at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct CpuSample {
    /// This whole process, exited threads included.
    process: u64,
    /// The threads of sqlx's SQLite connections, which run SQLite itself.
    sqlite_worker: u64,
    /// The fake Twenty's threads.
    fake: u64,
    /// Every CPU's busy time.
    machine: u64,
    /// Microseconds in which some task of the machine stalled on I/O (`/proc/pressure/io`).
    io_stall_us: u64,
}

/// CPU used over a pass, in seconds, and the machine's load just before it, in cores.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    /// This process less the SQLite workers and the fake: the reconciler's async code, the HTTP
    /// client, JSON parsing, sqlx's PostgreSQL driver.
    reconciler: f64,
    sqlite_worker: f64,
    fake: f64,
    /// The PostgreSQL backends serving the bench's database (not the server's background processes,
    /// nor anyone else's connections); `None` on SQLite.
    postgres: Option<f64>,
    machine: f64,
    /// Seconds in which some task of the machine waited for I/O (pressure stall information).
    io_stall: Option<f64>,
    background: f64,
}

impl CpuUse {
    fn between(before: &CpuSample, after: &CpuSample, postgres: Option<u64>, background: f64) -> CpuUse {
        let seconds = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_SECOND;
        let process = seconds(before.process, after.process);
        let sqlite_worker = seconds(before.sqlite_worker, after.sqlite_worker);
        let fake = seconds(before.fake, after.fake);
        CpuUse {
            reconciler: (process - sqlite_worker - fake).max(0.0),
            sqlite_worker,
            fake,
            postgres: postgres.map(|ticks| ticks as f64 / TICKS_PER_SECOND),
            machine: seconds(before.machine, after.machine),
            io_stall: (after.io_stall_us > 0)
                .then(|| after.io_stall_us.saturating_sub(before.io_stall_us) as f64 / 1e6),
            background,
        }
    }

    /// CPU of everything on a pass's critical path: it fetches, parses and applies one page after
    /// the other, so on an idle machine its wall time is at least about this.
    fn sequential(&self) -> f64 {
        self.reconciler + self.sqlite_worker + self.fake + self.postgres.unwrap_or(0.0)
    }
}

/// `(comm, utime + stime, cutime + cstime)` of a `/proc/…/stat` line.
fn stat_ticks(stat: &str) -> Option<(&str, u64, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    let fields: Vec<u64> =
        stat[close + 1..].split_whitespace().skip(11).take(4).filter_map(|f| f.parse().ok()).collect();
    match fields.as_slice() {
        [utime, stime, cutime, cstime] => Some((comm, utime + stime, cutime + cstime)),
        _ => None,
    }
}

fn sample_cpu() -> CpuSample {
    let mut sample = CpuSample::default();
    if let Some((_, own, _)) = fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(stat_ticks) {
        sample.process = own;
    }
    for task in fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else { continue };
        let Some((comm, ticks, _)) = stat_ticks(&stat) else { continue };
        if comm.starts_with("sqlx-sqlite") {
            sample.sqlite_worker += ticks;
        } else if comm.starts_with("actix") || comm.starts_with("fake-twenty") {
            sample.fake += ticks;
        }
    }
    sample.machine = machine_busy_ticks();
    sample.io_stall_us = io_stall_us().unwrap_or(0);
    sample
}

/// The `some … total=` of `/proc/pressure/io`, in microseconds.
fn io_stall_us() -> Option<u64> {
    let pressure = fs::read_to_string("/proc/pressure/io").ok()?;
    let some = pressure.lines().find(|line| line.starts_with("some"))?;
    some.split_whitespace().find_map(|field| field.strip_prefix("total="))?.parse().ok()
}

/// Busy time of every CPU: the first line of `/proc/stat` less idle and iowait.
fn machine_busy_ticks() -> u64 {
    let Ok(stat) = fs::read_to_string("/proc/stat") else { return 0 };
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    total.saturating_sub(ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0))
}

/// How long a full pass waits for another process's load to pass before it starts anyway (flagged).
const QUIET_WAIT: Duration = Duration::from_secs(5);

/// Waits, up to [`QUIET_WAIT`], for the machine to be idle; returns the load it last saw.
fn wait_for_quiet() -> f64 {
    let deadline = Instant::now() + QUIET_WAIT;
    loop {
        let load = background_load();
        if load <= DISTURBING_BACKGROUND || Instant::now() >= deadline {
            return load;
        }
    }
}

/// Cores busy over half a second while nothing of ours is working.
fn background_load() -> f64 {
    let (started, first) = (Instant::now(), machine_busy_ticks());
    std::thread::sleep(Duration::from_millis(500));
    machine_busy_ticks().saturating_sub(first) as f64 / TICKS_PER_SECOND / started.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Report

#[derive(Default)]
struct Report {
    full_records: usize,
    average_bytes: usize,
    raw: Option<RawPass>,
    full: Vec<(&'static str, &'static str, Measured)>,
    delta: Vec<(&'static str, Measured)>,
    profile: Vec<(&'static str, Profile)>,
    paced: Option<Paced>,
    notes: Vec<String>,
    total: Duration,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn share(part: Duration, total: Duration) -> f64 {
    100.0 * part.as_secs_f64() / total.as_secs_f64().max(1e-9)
}

/// A pass that began while something else kept the machine busy is flagged.
fn disturbed_note(backend: &str, pass: &str, background: f64) -> String {
    format!(
        "{backend} {pass}: {background:.2} cores were busy before the pass (another process); its figures \
         are disturbed"
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "**MISSED**" }
}

impl Report {
    fn render(&self) -> String {
        let mut out = String::new();
        let mut missed = Vec::new();
        let mut disturbed = Vec::new();
        let _ = writeln!(out, "# Reconciler load\n");
        let _ = writeln!(
            out,
            "{} `person` records, {} B on average serialised ({MIN_RECORD_BYTES}–{MAX_RECORD_BYTES} B), \
             {SOFT_DELETED_PERCENT}% soft-deleted, served by the fake Twenty in this process. Pages of \
             {PAGE_SIZE}. Total bench time {:.0} s.\n",
            self.full_records,
            self.average_bytes,
            self.total.as_secs_f64()
        );

        let _ = writeln!(out, "## 1. Full pass, no rate limit\n");
        let _ = writeln!(
            out,
            "Records/s = fetched / wall time of `reconcile_once`. Memory: resident set growth over the \
             VmRSS just before the pass (the fake's records already loaded), sampled every 10 ms, and \
             VmHWM (reset before the pass) minus the same baseline; VmHWM is the process's own, the \
             fake's records included.\n"
        );
        let _ = writeln!(
            out,
            "| backend | pass | status | fetched | inserted | unchanged | requests | wall | records/s | \
             rate ≥ {TARGET_RATE:.0}/s | RSS before | peak growth (sampled) | VmHWM growth | VmHWM | \
             memory < {TARGET_MEMORY_MIB:.0} MiB |"
        );
        let _ = writeln!(out, "|---|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|---|");
        for (backend, pass, m) in &self.full {
            let succeeded = m.status == RunStatus::Succeeded;
            let rate_ok = succeeded && m.rate() >= TARGET_RATE;
            let memory_ok = m.memory.growth_mib() < TARGET_MEMORY_MIB;
            if !rate_ok {
                missed.push(format!(
                    "{backend} {pass} full pass: {:.0} records/s < {TARGET_RATE:.0}",
                    m.rate()
                ));
            }
            if !memory_ok {
                missed.push(format!(
                    "{backend} {pass} full pass: memory growth {:.1} MiB ≥ {TARGET_MEMORY_MIB:.0}",
                    m.memory.growth_mib()
                ));
            }
            if let Some(error) = &m.error {
                missed.push(format!("{backend} {pass} full pass failed: {error}"));
            }
            if m.rate_limited > 0 {
                missed.push(format!("{backend} {pass} full pass: {} answers were 429", m.rate_limited));
            }
            let _ = writeln!(
                out,
                "| {backend} | {pass} | {:?} | {} | {} | {} | {} | {:.2} s | {:.0} | {} | {:.0} MiB | \
                 {:.1} MiB | {} | {:.0} MiB | {} |",
                m.status,
                m.counts.fetched,
                m.counts.inserted,
                m.counts.unchanged,
                m.requests,
                m.wall.as_secs_f64(),
                m.rate(),
                verdict(rate_ok),
                mib(m.memory.baseline),
                m.memory.sampled_growth_mib(),
                m.memory.hwm_growth_mib().map_or("n/a".to_owned(), |g| format!("{g:.1} MiB")),
                mib(m.memory.hwm),
                verdict(memory_ok),
            );
        }

        let _ = writeln!(
            out,
            "\nCPU over each pass, in CPU-seconds: this process's threads, split into the reconciler's \
             (its async code, the HTTP client, JSON, the PostgreSQL driver), sqlx's SQLite worker threads \
             (SQLite itself) and the fake's; the PostgreSQL backends serving the bench's database. A pass \
             fetches, parses and applies one page after the other, so their sum is about the least wall \
             time it can take on an idle machine (waits for fsync come on top): \"bound\" is fetched / that \
             sum. \"Machine\" is every process's CPU on average over the pass, in cores (this machine has \
             {}); \"before\" the same over the half second before it, when nothing of ours ran. \"I/O \
             stall\" is the time in which some task of the machine waited for I/O (`/proc/pressure/io`).\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let _ = writeln!(
            out,
            "| backend | pass | wall | reconciler | SQLite worker | fake | PostgreSQL | sum | bound | \
             machine | I/O stall | before |"
        );
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for (backend, pass, m) in self
            .full
            .iter()
            .map(|(b, p, m)| (b, *p, m))
            .chain(self.delta.iter().map(|(b, m)| (b, "delta", m)))
        {
            let c = &m.cpu;
            let wall = m.wall.as_secs_f64();
            if c.background > DISTURBING_BACKGROUND {
                disturbed.push(disturbed_note(backend, pass, c.background));
            }
            let _ = writeln!(
                out,
                "| {backend} | {pass} | {wall:.2} s | {:.2} s | {:.2} s | {:.2} s | {} | {:.2} s | {:.0}/s | \
                 {:.2} cores | {} | {:.2} cores |",
                c.reconciler,
                c.sqlite_worker,
                c.fake,
                c.postgres.map_or("–".to_owned(), |p| format!("{p:.2} s")),
                c.sequential(),
                m.counts.fetched as f64 / c.sequential().max(0.01),
                c.machine / wall.max(1e-9),
                c.io_stall.map_or("n/a".to_owned(), |s| format!("{s:.2} s")),
                c.background
            );
        }

        let wal_rows: Vec<_> = self
            .full
            .iter()
            .map(|(b, p, m)| (b, *p, m))
            .chain(self.delta.iter().map(|(b, m)| (b, "delta", m)))
            .filter_map(|(backend, pass, m)| m.wal.map(|wal| (backend, pass, m, wal)))
            .collect();
        if !wal_rows.is_empty() {
            let _ = writeln!(
                out,
                "\nPostgreSQL's WAL over each pass (`pg_stat_wal`, cluster-wide; the times count the bench's \
                 sessions only): a page commits in its own transaction, and each commit waits for its WAL \
                 to be flushed.\n"
            );
            let _ =
                writeln!(out, "| backend | pass | wall | WAL written | WAL syncs | write time | sync time |");
            let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|");
            for (backend, pass, m, wal) in wal_rows {
                let _ = writeln!(
                    out,
                    "| {backend} | {pass} | {:.2} s | {:.0} MB | {} | {:.2} s | {:.2} s |",
                    m.wall.as_secs_f64(),
                    wal.bytes / 1e6,
                    wal.syncs,
                    wal.write_ms / 1000.0,
                    wal.sync_ms / 1000.0
                );
            }
        }

        let _ = writeln!(out, "\n## 2. Where the time of a full pass goes\n");
        let _ = writeln!(
            out,
            "The loop of `read_all` written out in the bench (no lease renewal, no progress), into another \
             fresh database; times summed over the pages.\n"
        );
        let _ = writeln!(
            out,
            "| backend | pages | list_page (fetch + parse) | Change::upsert | apply_page | other | total | \
             records/s |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
        for (backend, p) in &self.profile {
            let other = p.total.saturating_sub(p.list_page + p.convert + p.apply_page);
            let cell = |d: Duration| format!("{:.0} ms ({:.0}%)", ms(d), share(d, p.total));
            let _ = writeln!(
                out,
                "| {backend} | {} | {} | {} | {} | {} | {:.0} ms | {:.0} |",
                p.pages,
                cell(p.list_page),
                cell(p.convert),
                cell(p.apply_page),
                cell(other),
                ms(p.total),
                p.rate()
            );
        }
        if let Some(raw) = &self.raw {
            let total = raw.http + raw.parse;
            let _ = writeln!(
                out,
                "\nA fetch on its own (plain HTTP, then `serde_json::from_slice` to a `Value`, {} pages, \
                 {} records, {:.1} MB): serving + transfer {:.0} ms, parsing {:.0} ms, {:.0} records/s.",
                raw.pages,
                raw.records,
                raw.bytes as f64 / 1e6,
                ms(raw.http),
                ms(raw.parse),
                raw.records as f64 / total.as_secs_f64().max(1e-9)
            );
        }

        let _ = writeln!(out, "\n## 3. Delta pass, nothing changed\n");
        let _ = writeln!(
            out,
            "After the two full passes; the fake's request log counted over the pass. The δ window (5 min \
             before the watermark) holds about {} records.\n",
            OVERLAP.as_millis() as i64 / UPDATED_STEP_MS
        );
        let _ = writeln!(
            out,
            "| backend | status | objects | requests | requests/object | fetched | wall | target: 1 |"
        );
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|---|");
        for (backend, m) in &self.delta {
            let per_object = m.requests as f64 / m.objects.max(1) as f64;
            let ok = m.status == RunStatus::Succeeded && m.objects > 0 && m.requests == m.objects;
            if !ok {
                missed.push(format!(
                    "{backend} delta pass: {} requests for {} objects{}",
                    m.requests,
                    m.objects,
                    m.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
                ));
            }
            let _ = writeln!(
                out,
                "| {backend} | {:?} | {} | {} | {per_object:.2} | {} | {:.0} ms | {} |",
                m.status,
                m.objects,
                m.requests,
                m.counts.fetched,
                ms(m.wall),
                verdict(ok)
            );
        }

        let _ = writeln!(out, "\n## 4. Rate-limited full pass\n");
        if let Some(p) = &self.paced {
            let _ = writeln!(
                out,
                "{PACED_RECORDS} records, the client's default pacing ({}) against the fake enforcing 100/min \
                 and 100/s, SQLite. Minimum = (requests − 100) × 0.6 s.\n",
                RateLimit::twenty_defaults().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
            let _ = writeln!(
                out,
                "| status | fetched | requests | 429s | wall | minimum | ratio | 429s = 0 | ratio ≤ {TARGET_PACED_RATIO} |"
            );
            let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|---|---|");
            let no_429 = p.rate_limited == 0;
            let ratio_ok = p.status == RunStatus::Succeeded && p.ratio() <= TARGET_PACED_RATIO;
            if !no_429 {
                missed.push(format!("rate-limited pass: {} answers were 429", p.rate_limited));
            }
            if !ratio_ok {
                missed.push(format!(
                    "rate-limited pass: ratio {:.3} > {TARGET_PACED_RATIO}{}",
                    p.ratio(),
                    p.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
                ));
            }
            let _ = writeln!(
                out,
                "| {:?} | {} | {} | {} | {:.2} s | {:.2} s | {:.3} | {} | {} |",
                p.status,
                p.records,
                p.requests,
                p.rate_limited,
                p.wall.as_secs_f64(),
                p.minimum().as_secs_f64(),
                p.ratio(),
                verdict(no_429),
                verdict(ratio_ok)
            );
        }

        let _ = writeln!(out, "\n## Summary\n");
        let _ = writeln!(out, "| measure | value | target | |");
        let _ = writeln!(out, "|---|--:|---|---|");
        for (backend, pass, m) in &self.full {
            let _ = writeln!(
                out,
                "| {backend} full pass, {pass} | {:.0} records/s | ≥ {TARGET_RATE:.0} | {} |",
                m.rate(),
                verdict(m.status == RunStatus::Succeeded && m.rate() >= TARGET_RATE)
            );
            let _ = writeln!(
                out,
                "| {backend} full pass, {pass}: memory growth | {:.1} MiB | < {TARGET_MEMORY_MIB:.0} MiB | {} |",
                m.memory.growth_mib(),
                verdict(m.memory.growth_mib() < TARGET_MEMORY_MIB)
            );
        }
        for (backend, m) in &self.delta {
            let _ = writeln!(
                out,
                "| {backend} delta pass, nothing changed | {} requests / {} object(s) | 1 per object | {} |",
                m.requests,
                m.objects,
                verdict(m.status == RunStatus::Succeeded && m.objects > 0 && m.requests == m.objects)
            );
        }
        if let Some(p) = &self.paced {
            let _ = writeln!(
                out,
                "| rate-limited pass: 429s | {} | 0 | {} |",
                p.rate_limited,
                verdict(p.rate_limited == 0)
            );
            let _ = writeln!(
                out,
                "| rate-limited pass: wall / minimum | {:.2} s / {:.2} s = {:.3} | ≤ {TARGET_PACED_RATIO} | {} |",
                p.wall.as_secs_f64(),
                p.minimum().as_secs_f64(),
                p.ratio(),
                verdict(p.status == RunStatus::Succeeded && p.ratio() <= TARGET_PACED_RATIO)
            );
        }
        if !missed.is_empty() {
            let _ = writeln!(out, "\nMissed:");
            for line in &missed {
                let _ = writeln!(out, "- {line}");
            }
        }
        if !disturbed.is_empty() {
            let _ = writeln!(out, "\nDisturbed:");
            for line in &disturbed {
                let _ = writeln!(out, "- {line}");
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nNotes:");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

/// `target/`, where Cargo puts `target/tmp` for benches.
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_owned()
}
