//! The test harness: the real application on a random port, over a fresh database per test.
//!
//! `TEST_DATABASE_URL` unset runs on SQLite (a file in a temporary folder). Set to a PostgreSQL URL
//! (`postgres://postgres@127.0.0.1:5432/postgres`), each test creates its own database on that
//! server and drops it at the end.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod fake_twenty;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{Connection, Executor};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use twenty_mirror::Application;
use twenty_mirror::clock::Clock;
use twenty_mirror::config::{DatabaseUrl, Settings};
use twenty_mirror::mirror::{Store, StoredEvent, StoredRecord};
use twenty_mirror::sync::{Reconciler, ReconcilerSettings};
use twenty_mirror::twenty::client::{ClientSettings, RetryPolicy, TwentyClient};
use twenty_mirror::twenty::signature::sign;

use fake_twenty::FakeTwenty;

pub const SECRET: &str = "test-secret-0123456789";

/// A database of its own for one test, dropped with it.
pub struct TestDb {
    pub url: String,
    postgres: Option<PostgresDb>,
    _dir: Option<tempfile::TempDir>,
}

struct PostgresDb {
    admin_url: String,
    name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            None => {
                let dir = tempfile::tempdir().expect("creating a temporary folder");
                let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
                TestDb { url, postgres: None, _dir: Some(dir) }
            }
            Some(admin_url) => {
                let name = unique_name();
                let mut admin =
                    sqlx::PgConnection::connect(&admin_url).await.expect("connecting to TEST_DATABASE_URL");
                admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("creating a database");
                let url = with_database(&admin_url, &name);
                TestDb { url, postgres: Some(PostgresDb { admin_url, name }), _dir: None }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// Makes the database unavailable to the service: on PostgreSQL new connections are refused and
    /// open ones terminated; on SQLite another connection holds the write lock. Dropping the guard
    /// (or calling `restore`) makes it available again.
    pub async fn make_unavailable(&self) -> Outage {
        match &self.postgres {
            Some(pg) => {
                let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await.expect("admin connection");
                admin
                    .execute(format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", pg.name).as_str())
                    .await
                    .expect("refusing connections");
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                    .bind(&pg.name)
                    .execute(&mut admin)
                    .await
                    .expect("terminating connections");
                Outage::Postgres { admin, name: pg.name.clone() }
            }
            None => Outage::Sqlite(self.lock_sqlite().await),
        }
    }

    /// Holds the SQLite write lock from another connection until the returned connection is closed.
    pub async fn lock_sqlite(&self) -> sqlx::SqliteConnection {
        let mut conn = sqlx::SqliteConnection::connect(&self.url).await.expect("second connection");
        conn.execute("BEGIN EXCLUSIVE").await.expect("taking the write lock");
        conn
    }
}

pub enum Outage {
    Postgres { admin: sqlx::PgConnection, name: String },
    Sqlite(sqlx::SqliteConnection),
}

impl Outage {
    pub async fn restore(self) {
        match self {
            Outage::Postgres { mut admin, name } => {
                admin
                    .execute(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true").as_str())
                    .await
                    .expect("allowing connections again");
            }
            Outage::Sqlite(mut conn) => {
                conn.execute("ROLLBACK").await.expect("releasing the write lock");
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(pg) = self.postgres.take() else { return };
        // Drop runs outside any async context we can rely on: use a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await?;
                admin.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg.name).as_str()).await?;
                Ok::<_, sqlx::Error>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {dropped:?}");
        }
    }
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = Utc::now().timestamp_subsec_nanos();
    format!("twenty_mirror_test_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos)
}

/// `postgres://user@host:port/anything?params` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{}", &base[..path_start], name);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The running application and what a test needs to drive it.
pub struct TestApp {
    pub address: String,
    pub store: Store,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
    pub db: TestDb,
}

pub struct Options {
    pub vars: HashMap<&'static str, String>,
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        let vars = HashMap::from([("TWENTY_WEBHOOK_SECRET", SECRET.to_owned())]);
        Options { vars, clock: Clock::System }
    }
}

impl Options {
    pub fn var(mut self, name: &'static str, value: &str) -> Self {
        self.vars.insert(name, value.to_owned());
        self
    }

    pub fn without(mut self, name: &'static str) -> Self {
        self.vars.remove(name);
        self
    }

    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let db = TestDb::new().await;
        let mut vars = options.vars;
        vars.insert("DATABASE_URL", db.url.clone());
        vars.insert("HOST", "127.0.0.1".to_owned());
        vars.insert("PORT", "0".to_owned());
        vars.entry("LOG_FORMAT").or_insert_with(|| "json".to_owned());
        let settings = Settings::from_lookup(|name| vars.get(name).cloned()).expect("test settings");
        init_logging();
        let app =
            Application::build_with_clock(settings, options.clock).await.expect("building the application");
        let address = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        let store = Store::connect(&DatabaseUrl::new(db.url.clone())).await.expect("a store for assertions");
        TestApp { address, store, client: reqwest::Client::new(), shutdown, server: Some(server), db }
    }

    /// Posts a body signed now with the test secret.
    pub async fn deliver(&self, body: &[u8]) -> reqwest::Response {
        self.deliver_signed(body, SECRET, Utc::now().timestamp_millis()).await
    }

    pub async fn deliver_signed(&self, body: &[u8], secret: &str, timestamp_ms: i64) -> reqwest::Response {
        let signature = sign(secret, timestamp_ms, body);
        self.post_webhook(
            body,
            &[
                ("X-Twenty-Webhook-Timestamp", &timestamp_ms.to_string()),
                ("X-Twenty-Webhook-Signature", &signature),
            ],
        )
        .await
    }

    pub async fn post_webhook(&self, body: &[u8], headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/twenty", self.address))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("sending a delivery")
    }

    /// Delivers and returns the status and the acknowledged outcome.
    pub async fn deliver_json(&self, body: &Value) -> (u16, Option<String>) {
        let response = self.deliver(body.to_string().as_bytes()).await;
        outcome(response).await
    }

    pub async fn record(&self, object: &str, id: &str) -> Option<StoredRecord> {
        self.store.fetch_record(object, id).await.expect("reading a record")
    }

    pub async fn events(&self) -> Vec<StoredEvent> {
        self.store.recent_events(1_000).await.expect("reading the event log")
    }

    /// Stops the service as SIGTERM would and waits for it.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.server.take() {
            Some(server) => server.await.expect("the server task panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn outcome(response: reqwest::Response) -> (u16, Option<String>) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body.get("outcome").and_then(Value::as_str).map(str::to_owned))
}

fn init_logging() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// `2026-09-21T10:00:00.000Z` plus `ms` milliseconds.
pub fn at(ms: i64) -> String {
    let base = DateTime::<Utc>::from_str("2026-09-21T10:00:00Z").expect("a base time");
    (base + chrono::Duration::milliseconds(ms)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A delivery body as Twenty writes it, for `object.action` of record `id` at version `updated_ms`.
pub fn delivery(event: &str, id: &str, updated_ms: i64, fields: Value) -> Value {
    let (object, action) = event.split_once('.').expect("object.action");
    let mut record = json!({
        "id": id,
        "createdAt": at(0),
        "updatedAt": at(updated_ms),
        "deletedAt": null,
    });
    if action == "deleted" {
        record["deletedAt"] = json!(at(updated_ms));
    }
    if let (Some(record), Some(fields)) = (record.as_object_mut(), fields.as_object()) {
        record.extend(fields.clone());
    }
    json!({
        "targetUrl": "https://mirror.example.com/webhooks/twenty",
        "eventName": event,
        "objectMetadata": {"id": "3f1c2a7e-5b2d-4c1e-9a57-0c6d1e2f3a4b", "nameSingular": object},
        "workspaceId": "872cfcf1-c79f-42bc-877d-5829f06eb3f9",
        "webhookId": "90056586-1228-4e03-a507-70140aa85c05",
        "eventDate": at(updated_ms + 10),
        "record": record,
    })
}

/// Waits until `check` holds, polling, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A reconciler on `store` that talks to `fake`, with no pacing and quick retries so that tests of
/// failures take milliseconds; `configure` adjusts either part.
pub fn reconciler(
    store: &Store,
    fake: &FakeTwenty,
    configure: impl FnOnce(&mut ClientSettings, &mut ReconcilerSettings),
) -> Reconciler {
    reconciler_with_shutdown(store, fake, CancellationToken::new(), configure)
}

/// The same, stopping between pages once `shutdown` is cancelled.
pub fn reconciler_with_shutdown(
    store: &Store,
    fake: &FakeTwenty,
    shutdown: CancellationToken,
    configure: impl FnOnce(&mut ClientSettings, &mut ReconcilerSettings),
) -> Reconciler {
    let mut client = ClientSettings::new(fake.url(), FakeTwenty::API_KEY.to_owned().into());
    client.rate_limits = Vec::new();
    client.timeout = Duration::from_secs(5);
    client.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
    };
    let mut settings =
        ReconcilerSettings { overlap: Duration::from_secs(300), max_destroy_share: 0.10, allowlist: None };
    configure(&mut client, &mut settings);
    let client = TwentyClient::new(client).expect("a Twenty client");
    Reconciler::new(store.clone(), client, settings, shutdown)
}

/// A fresh database with the mirror's tables, and a store on it.
pub async fn fresh_store() -> (TestDb, Store) {
    let db = TestDb::new().await;
    let store = Store::connect(&DatabaseUrl::new(db.url.clone())).await.expect("a store");
    store.migrate().await.expect("migrations");
    (db, store)
}

/// Asserts that the mirror holds exactly what the fake holds for `object`: every record, live or
/// soft-deleted, with the same data, and no other row that is not a tombstone.
pub async fn assert_mirror_matches(store: &Store, fake: &FakeTwenty, object: &str) {
    let expected = fake.records(object);
    for record in &expected {
        let id = record["id"].as_str().expect("an id");
        let row = store
            .fetch_record(object, id)
            .await
            .expect("reading")
            .unwrap_or_else(|| panic!("{object} {id} is missing"));
        assert_eq!(&row.data, record, "{object} {id}");
        assert_eq!(row.deleted_at.is_some(), !record["deletedAt"].is_null(), "{object} {id} deletedAt");
        assert_eq!(row.destroyed_at, None, "{object} {id} is not destroyed");
    }
    let present = store.count_present(object).await.expect("counting");
    assert_eq!(present, expected.len() as i64, "{object}: rows that Twenty no longer has are tombstones");
}
