//! What the integration tests share: the real application on a random port over a fresh database
//! per test ([`TestApp`]), the built binary as a child process ([`binary`]), deliveries as Twenty
//! writes them, reconcilers against the fake Twenty server ([`fake_twenty`]).

pub mod binary;
mod delivery;
pub use ::fake_twenty;
mod outage;
mod test_db;
pub mod views;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use twenty_mirror::Application;
use twenty_mirror::clock::Clock;
use twenty_mirror::config::Settings;
use twenty_mirror::mirror::{Store, StoredEvent, StoredRecord};
use twenty_mirror::sync::{Reconciler, ReconcilerSettings};
use twenty_mirror::twenty::client::{ClientSettings, RetryPolicy, TwentyClient};
use twenty_mirror::twenty::signature::sign;

pub use delivery::{SECRET, at, delivery};
use fake_twenty::FakeTwenty;
pub use test_db::TestDb;

/// The running application and what a test needs to drive it.
pub struct TestApp {
    pub address: String,
    pub store: Store,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    pub db: TestDb,
}

pub struct Options {
    vars: HashMap<&'static str, String>,
    clock: Clock,
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
        let store = Store::connect(&db.url).await.expect("a store for assertions");
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
    let store = Store::connect(&db.url).await.expect("a store");
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
