//! Load test of what operators poll: `GET /metrics` and `GET /admin/status` of the running service
//! over a mirror of [`SIZES`] rows. Run with `cargo bench --bench status_load`.
//!
//! For each backend, one fresh database grows through the sizes: rows are bulk-inserted by the
//! database itself (one statement per [`CHUNK`] rows, with the triggers of migration 0007 keeping
//! the counts, as every write does), spread over three objects, every 33rd soft-deleted and every
//! 101st destroyed, beside a delivery per 100 rows and [`RUNS`] finished reconciler runs. Then
//! [`TRICKLE`] single-record writes through the store, as webhooks make them: on PostgreSQL each
//! leaves a count delta that a scrape must sum until the background fold (a minute) takes it. With
//! the service started on that database, each route is called a few times to warm up, then
//! `BENCH_CALLS` times (default [`CALLS`]) one after the other; the report gives p50 and p99, and
//! checks that each scrape said `database_up 1` with row gauges that add up to the rows inserted.
//! Target: p99 under [`TARGET`] at every size.
//!
//! Settings, from the environment:
//! - `BENCH_BACKENDS=sqlite` or `=postgres` (default both); `BENCH_POSTGRES_URL` names the server
//!   (default [`DEFAULT_POSTGRES_URL`](support::database::DEFAULT_POSTGRES_URL)), where a database
//!   is created and dropped; PostgreSQL is skipped with a note when the server does not answer;
//! - `BENCH_SIZES`: the sizes, comma-separated and growing (default `10000,100000,1000000`);
//! - `BENCH_CALLS`: calls per route and size.
//!
//! A reduced run, to check that the bench works: `BENCH_SIZES=1000,5000 cargo bench --bench status_load`.
//! The results go to the terminal and to `target/status_load.md`.

#[path = "support/mod.rs"]
#[allow(dead_code, reason = "shared by every bench; this one uses its settings, databases and machine load")]
mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Executor as _;
use twenty_mirror::Application;
use twenty_mirror::change::{Change, Source};
use twenty_mirror::config::Settings;
use twenty_mirror::mirror::{Pool, Store};

use support::database::{Backend, Database, selected_backends};
use support::machine::wait_for_quiet;

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const CALLS: usize = 50;
const WARM_UP: usize = 3;
const TARGET: Duration = Duration::from_millis(100);
/// Rows per insert statement.
const CHUNK: usize = 50_000;
/// Finished runs in `sync_runs`: a year of hourly full passes.
const RUNS: usize = 8_760;
/// Single-record writes after each fill: two thousand group commits' worth of count deltas.
const TRICKLE: usize = 2_000;
const ADMIN_TOKEN: &str = "status-load-admin-token";
/// Busy cores of other processes above which the measurement waits (a while) before it starts.
const DISTURBING: f64 = 0.5;

fn main() {
    let sizes: Vec<usize> = support::setting("BENCH_SIZES").map_or_else(
        || SIZES.to_vec(),
        |sizes| {
            sizes
                .split(',')
                .map(|s| s.trim().replace('_', "").parse().unwrap_or_else(|_| panic!("BENCH_SIZES: {s:?}")))
                .collect()
        },
    );
    let calls = support::number("BENCH_CALLS", CALLS).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let (backends, notes) = runtime.block_on(selected_backends());
    let mut report = format!(
        "# status_load\n\n`GET /metrics` and `GET /admin/status`, {calls} calls each after {WARM_UP} to warm \
         up; target p99 < {} ms.\n",
        TARGET.as_millis()
    );
    for note in notes {
        let _ = writeln!(report, "\n{note}");
    }
    for backend in &backends {
        let section = runtime.block_on(bench(backend, &sizes, calls));
        report.push_str(&section);
    }
    support::publish("status_load.md", &report);
}

async fn bench(backend: &Backend, sizes: &[usize], calls: usize) -> String {
    let db = Database::create(backend, "status").await;
    let store = Store::connect(&db.url).await.expect("a store");
    store.migrate().await.expect("migrations");
    prepare(&store).await;
    let (address, shutdown) = serve(&db.url).await;
    let client = reqwest::Client::new();
    let mut out = format!(
        "\n## {}\n\n| rows | filled in | pending deltas | busy cores before | route | p50 | p99 | max | verdict |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        backend.name()
    );
    let mut filled = 0;
    for &size in sizes {
        let started = Instant::now();
        fill(&store, filled, size).await;
        let took = started.elapsed();
        filled = size;
        let deltas = pending_deltas(&store).await;
        // The machine is shared: wait a little for other work to pass, and say how busy it was.
        let load = tokio::task::spawn_blocking(|| wait_for_quiet(DISTURBING)).await.expect("the load");
        for route in ["/metrics", "/admin/status"] {
            let latency =
                measure(&client, &address, route, calls, (size + TRICKLE * rounds(sizes, size)) as i64).await;
            let _ = writeln!(
                out,
                "| {size} | {:.1} s | {deltas} | {load:.2} | `{route}` | {} | {} | {} | {} |",
                took.as_secs_f64(),
                ms(latency.p50),
                ms(latency.p99),
                ms(latency.max),
                if latency.p99 < TARGET { "ok" } else { "OVER TARGET" },
            );
            println!("{} {size} {route}: p50 {} p99 {}", backend.name(), ms(latency.p50), ms(latency.p99));
        }
    }
    shutdown.cancel();
    store.close().await;
    out
}

/// How many trickles have run by the time the mirror holds `size` rows.
fn rounds(sizes: &[usize], size: usize) -> usize {
    sizes.iter().filter(|&&s| s <= size).count()
}

/// The service on the database, on a free port, with the admin routes open and no reconciler.
async fn serve(url: &str) -> (String, tokio_util::sync::CancellationToken) {
    let vars = [
        ("DATABASE_URL", url.to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("TWENTY_WEBHOOK_SECRET", "status-load-secret".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
    ];
    let settings =
        Settings::from_lookup(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()))
            .expect("settings");
    let app = Application::build(settings).await.expect("the service");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    (address, shutdown)
}

struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// Calls `route` and checks each answer: a scrape must say the database is up and count every
/// row; a status call must list the three objects.
async fn measure(client: &reqwest::Client, address: &str, route: &str, calls: usize, rows: i64) -> Latency {
    let mut took = Vec::with_capacity(calls);
    for call in 0..WARM_UP + calls {
        let started = Instant::now();
        let response =
            client.get(format!("{address}{route}")).bearer_auth(ADMIN_TOKEN).send().await.expect("an answer");
        assert!(response.status().is_success(), "{route}: {}", response.status());
        let body = response.text().await.expect("a body");
        let elapsed = started.elapsed();
        if call >= WARM_UP {
            took.push(elapsed);
        }
        if route == "/metrics" {
            assert!(body.contains("twenty_mirror_database_up 1\n"), "{body}");
            let counted: i64 = body
                .lines()
                .filter(|l| l.starts_with("twenty_mirror_rows{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
                .sum();
            assert_eq!(counted, rows, "the row gauges add up to the rows inserted");
        } else {
            assert!(["person", "company", "opportunity"].iter().all(|o| body.contains(o)), "{body}");
        }
    }
    took.sort();
    let at = |share: f64| took[((took.len() as f64 * share).ceil() as usize).clamp(1, took.len()) - 1];
    Latency { p50: at(0.50), p99: at(0.99), max: took[took.len() - 1] }
}

/// The objects, their reconciler state and a year of finished runs.
async fn prepare(store: &Store) {
    let objects = "INSERT INTO twenty_objects (name_singular, name_plural, label_singular, label_plural, \
                       metadata_id, is_custom, fields, mirrored, discovered_at) \
                   VALUES ('person', 'people', 'Person', 'People', 'm1', false, '[]', true, '2026-09-21T10:00:00.000Z'), \
                          ('company', 'companies', 'Company', 'Companies', 'm2', false, '[]', true, '2026-09-21T10:00:00.000Z'), \
                          ('opportunity', 'opportunities', 'Opportunity', 'Opportunities', 'm3', false, '[]', true, \
                           '2026-09-21T10:00:00.000Z')";
    let states = "INSERT INTO sync_state (object, watermark, last_delta_at, last_full_at, webhook_health) \
                  VALUES ('person', '2026-09-21T10:00:00.000Z', '2026-09-21T10:00:00.000Z', '2026-09-21T10:00:00.000Z', 'ok'), \
                         ('company', '2026-09-21T10:00:00.000Z', '2026-09-21T10:00:00.000Z', '2026-09-21T10:00:00.000Z', 'lossy'), \
                         ('opportunity', '2026-09-21T10:00:00.000Z', '2026-09-21T10:00:00.000Z', '2026-09-21T10:00:00.000Z', 'silent')";
    match store.pool() {
        Pool::Sqlite(pool) => {
            let objects = objects.replace("false", "0").replace("true", "1");
            pool.execute(objects.as_str()).await.expect("objects");
            pool.execute(states).await.expect("states");
            pool.execute(SQLITE_RUNS.replace("{runs}", &RUNS.to_string()).as_str()).await.expect("runs");
        }
        Pool::Postgres(pool) => {
            pool.execute(objects).await.expect("objects");
            pool.execute(states).await.expect("states");
            pool.execute(POSTGRES_RUNS.replace("{runs}", &RUNS.to_string()).as_str()).await.expect("runs");
        }
    }
}

/// Rows `from + 1` to `to`, in statements of [`CHUNK`] rows, with a delivery per 100 rows; then
/// [`TRICKLE`] records written one at a time through the store.
async fn fill(store: &Store, from: usize, to: usize) {
    let mut start = from;
    while start < to {
        let end = (start + CHUNK).min(to);
        let (records, events) = match store.pool() {
            Pool::Sqlite(_) => (SQLITE_RECORDS, SQLITE_EVENTS),
            Pool::Postgres(_) => (POSTGRES_RECORDS, POSTGRES_EVENTS),
        };
        let bind =
            |sql: &str| sql.replace("{from}", &(start + 1).to_string()).replace("{to}", &end.to_string());
        let (records, events) = (bind(records), bind(events));
        match store.pool() {
            Pool::Sqlite(pool) => {
                pool.execute(records.as_str()).await.expect("records");
                pool.execute(events.as_str()).await.expect("deliveries");
            }
            Pool::Postgres(pool) => {
                pool.execute(records.as_str()).await.expect("records");
                pool.execute(events.as_str()).await.expect("deliveries");
            }
        }
        start = end;
    }
    for n in 0..TRICKLE {
        let id = format!("trickle-{to}-{n}");
        let record = json!({"id": id, "updatedAt": "2026-09-21T10:00:00.000Z", "deletedAt": null});
        let change = Change::upsert("person", &record, Source::Webhook).expect("a change");
        store.apply(&[change]).await.expect("a single write");
    }
    let analyze = match store.pool() {
        Pool::Sqlite(pool) => pool.execute("ANALYZE").await.map(drop),
        Pool::Postgres(pool) => pool.execute("ANALYZE").await.map(drop),
    };
    analyze.expect("analyzing");
}

/// Count deltas appended and not folded yet (PostgreSQL; SQLite keeps none).
async fn pending_deltas(store: &Store) -> i64 {
    match store.pool() {
        Pool::Sqlite(_) => 0,
        Pool::Postgres(pool) => sqlx::query_scalar("SELECT count(*) FROM object_stats_deltas")
            .fetch_one(pool)
            .await
            .expect("counting deltas"),
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}

/// Row `i` belongs to `person` (16 in 20), `company` (3 in 20) or `opportunity`; every 33rd is
/// soft-deleted and every 101st destroyed.
const SQLITE_RECORDS: &str = r#"
WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to})
INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, destroyed_at, source)
SELECT CASE WHEN i % 20 < 16 THEN 'person' WHEN i % 20 < 19 THEN 'company' ELSE 'opportunity' END,
       printf('%08d-0000-4000-8000-%012d', i, i),
       json_object('id', printf('%08d-0000-4000-8000-%012d', i, i), 'name', 'Record ' || i, 'updatedAt', at),
       at,
       CASE WHEN i % 33 = 0 THEN at END,
       CASE WHEN i % 101 = 0 THEN at END,
       'reconcile'
FROM (SELECT i, strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i, 'unixepoch') AS at FROM n)
"#;

const SQLITE_EVENTS: &str = r#"
WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to})
INSERT INTO webhook_events (received_at, event_name, object, record_id, outcome, body)
SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i, 'unixepoch'), 'person.updated', 'person',
       printf('%08d-0000-4000-8000-%012d', i, i), 'applied', '{}'
FROM n WHERE i % 100 = 0
"#;

const SQLITE_RUNS: &str = r#"
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {runs})
INSERT INTO sync_runs (trigger, mode, objects, started_at, ended_at, status, fetched)
SELECT 'schedule', 'full', '["person","company","opportunity"]',
       strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i * 3600, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i * 3600 + 60, 'unixepoch'), 'succeeded', 1000
FROM n
"#;

const POSTGRES_RECORDS: &str = r#"
INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, destroyed_at, source)
SELECT CASE WHEN i % 20 < 16 THEN 'person' WHEN i % 20 < 19 THEN 'company' ELSE 'opportunity' END,
       id,
       jsonb_build_object('id', id, 'name', 'Record ' || i, 'updatedAt', at),
       at,
       CASE WHEN i % 33 = 0 THEN at END,
       CASE WHEN i % 101 = 0 THEN at END,
       'reconcile'
FROM (SELECT i, lpad(i::text, 8, '0') || '-0000-4000-8000-' || lpad(i::text, 12, '0') AS id,
             to_timestamp(1767225600 + i) AS at
      FROM generate_series({from}::bigint, {to}) AS i) AS n
"#;

const POSTGRES_EVENTS: &str = r#"
INSERT INTO webhook_events (received_at, event_name, object, record_id, outcome, body)
SELECT to_timestamp(1767225600 + i), 'person.updated', 'person',
       lpad(i::text, 8, '0') || '-0000-4000-8000-' || lpad(i::text, 12, '0'), 'applied', '{}'
FROM generate_series({from}::bigint, {to}) AS i WHERE i % 100 = 0
"#;

const POSTGRES_RUNS: &str = r#"
INSERT INTO sync_runs (trigger, mode, objects, started_at, ended_at, status, fetched)
SELECT 'schedule', 'full', '["person","company","opportunity"]'::jsonb,
       to_timestamp(1767225600 + i * 3600), to_timestamp(1767225600 + i * 3600 + 60), 'succeeded', 1000
FROM generate_series(1, {runs}) AS i
"#;
