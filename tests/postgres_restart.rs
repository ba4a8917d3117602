//! PostgreSQL restarted under a steady stream of deliveries. In a test binary of its own, because
//! the restart interrupts every connection to the server: beside the other tests it would fail
//! them. Runs only on PostgreSQL (`TEST_DATABASE_URL`), on a machine where `pg_ctlcluster` can
//! restart the server.
//!
//! It shares the two helpers that stand alone, a database per test and the delivery bodies; the
//! service it starts the way `tests/api/helpers` does, cut to what this test needs.

#[path = "api/helpers/delivery.rs"]
mod delivery;
#[path = "api/helpers/test_db.rs"]
mod test_db;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::DropGuard;
use twenty_mirror::Application;
use twenty_mirror::config::Settings;
use twenty_mirror::mirror::Store;
use twenty_mirror::twenty::signature::sign;

use delivery::{SECRET, delivery};
use test_db::TestDb;

/// The service on a random port over `db`, stopped when dropped.
struct Service {
    address: String,
    client: reqwest::Client,
    store: Store,
    _stop: DropGuard,
}

impl Service {
    async fn start(db: &TestDb) -> Service {
        let vars = HashMap::from([
            ("DATABASE_URL", db.url.clone()),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
            ("TWENTY_WEBHOOK_SECRET", SECRET.to_owned()),
        ]);
        let settings = Settings::from_lookup(|name| vars.get(name).cloned()).expect("test settings");
        let app = Application::build(settings).await.expect("building the application");
        let address = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run_until_stopped());
        let store = Store::connect(&db.url).await.expect("a store for assertions");
        Service { address, client: reqwest::Client::new(), store, _stop: shutdown.drop_guard() }
    }

    /// Delivers `person.created` for `id`, signed now; answers the HTTP status.
    async fn deliver(&self, id: &str) -> u16 {
        let body = delivery("person.created", id, 0, json!({})).to_string();
        let timestamp_ms = chrono::Utc::now().timestamp_millis();
        let response = self
            .client
            .post(format!("{}/webhooks/twenty", self.address))
            .header("Content-Type", "application/json")
            .header("X-Twenty-Webhook-Timestamp", timestamp_ms.to_string())
            .header("X-Twenty-Webhook-Signature", sign(SECRET, timestamp_ms, body.as_bytes()))
            .body(body)
            .send()
            .await
            .expect("sending a delivery");
        response.status().as_u16()
    }
}

fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL installation")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .next()
        .expect("a cluster version");
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .status()
        .expect("running pg_ctlcluster");
    assert!(status.success(), "restarting PostgreSQL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_delivery_survives_a_postgres_restart() {
    let db = TestDb::new().await;
    if !db.is_postgres() {
        eprintln!("skipped: TEST_DATABASE_URL does not point at PostgreSQL");
        return;
    }
    let service = Arc::new(Service::start(&db).await);
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let statuses = Arc::new(Mutex::new(BTreeSet::new()));
    let until = Instant::now() + Duration::from_secs(8);
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..4 {
        let (service, acknowledged, statuses) = (service.clone(), acknowledged.clone(), statuses.clone());
        senders.spawn(async move {
            let mut n = 0;
            while Instant::now() < until {
                let id = format!("s{sender}-{n}");
                n += 1;
                let status = service.deliver(&id).await;
                statuses.lock().unwrap().insert(status);
                if status == 200 {
                    acknowledged.lock().unwrap().insert(id);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(restart_postgres).await.expect("the restart");
    while senders.join_next().await.is_some() {}

    let statuses = statuses.lock().unwrap().clone();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "only 200 or 503: {statuses:?}");
    assert_eq!(service.deliver("after").await, 200, "the service recovered without a restart of its own");
    let acknowledged = acknowledged.lock().unwrap().clone();
    for id in &acknowledged {
        let record = service.store.fetch_record("person", id).await.expect("reading a record");
        assert!(record.is_some(), "{id} was acknowledged but is missing");
    }
}
