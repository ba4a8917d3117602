//! PostgreSQL restarted under a steady stream of deliveries. In a test binary of its own, because
//! the restart interrupts every connection to the server. Runs only on PostgreSQL
//! (`TEST_DATABASE_URL`), on a machine where `pg_ctlcluster` can restart the server.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{TestApp, delivery};

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
    let app = Arc::new(TestApp::spawn().await);
    if !app.db.is_postgres() {
        eprintln!("skipped: TEST_DATABASE_URL does not point at PostgreSQL");
        return;
    }
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let statuses = Arc::new(Mutex::new(BTreeSet::new()));
    let until = Instant::now() + Duration::from_secs(8);
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..4 {
        let (app, acknowledged, statuses) = (app.clone(), acknowledged.clone(), statuses.clone());
        senders.spawn(async move {
            let mut n = 0;
            while Instant::now() < until {
                let id = format!("s{sender}-{n}");
                n += 1;
                let (status, _) = app.deliver_json(&delivery("person.created", &id, 0, json!({}))).await;
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
    let (status, _) = app.deliver_json(&delivery("person.created", "after", 0, json!({}))).await;
    assert_eq!(status, 200, "the service recovered without a restart of its own");
    let acknowledged = acknowledged.lock().unwrap().clone();
    for id in &acknowledged {
        assert!(app.record("person", id).await.is_some(), "{id} was acknowledged but is missing");
    }
}
