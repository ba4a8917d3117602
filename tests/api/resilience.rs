//! What happens when things go wrong: the database goes away, the service is stopped mid-flight,
//! and the event log ages.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor};
use tokio::task::JoinSet;

use crate::helpers::{Options, SECRET, TestApp, delivery, eventually, outcome};

#[tokio::test]
async fn an_unavailable_database_gets_503_within_the_deadline_and_the_service_recovers() {
    let app = TestApp::spawn().await;
    assert_eq!(app.deliver_json(&delivery("person.created", "p1", 0, json!({}))).await.0, 200);

    let outage = app.db.make_unavailable().await;
    let started = Instant::now();
    let (status, _) =
        app.deliver_json(&delivery("person.updated", "p1", 1_000, json!({"jobTitle": "lost"}))).await;
    let waited = started.elapsed();
    assert_eq!(status, 503, "never a 2xx for a change that was not committed");
    assert!(waited < Duration::from_millis(2_900), "answered in {waited:?}; Twenty gives up after 5 s");
    if app.db.is_postgres() {
        // A SQLite write lock still lets readers through, so readiness only fails on PostgreSQL.
        let ready = app.client.get(format!("{}/readyz", app.address)).send().await.expect("readyz");
        assert_eq!(ready.status().as_u16(), 503);
    }

    outage.restore().await;
    let recovered = eventually(Duration::from_secs(10), || async {
        app.deliver_json(&delivery("person.updated", "p1", 2_000, json!({"jobTitle": "back"}))).await.0 == 200
    })
    .await;
    assert!(recovered, "the service recovers without a restart");
    let row = app.record("person", "p1").await.expect("row");
    assert_eq!(row.data["jobTitle"], "back");
    let ready = app.client.get(format!("{}/readyz", app.address)).send().await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
}

#[tokio::test]
async fn in_flight_deliveries_finish_and_commit_during_a_graceful_shutdown() {
    let mut app = TestApp::spawn().await;
    // Hold the writes back so that the deliveries are still in flight when the stop comes.
    let lock = hold_writes(&app).await;
    let address = app.address.clone();
    let mut deliveries = JoinSet::new();
    for n in 0..10 {
        let body = delivery("person.created", &format!("p{n}"), 0, json!({})).to_string();
        let (client, address) = (app.client.clone(), address.clone());
        let signature_ms = chrono::Utc::now().timestamp_millis();
        let signature = twenty_mirror::twenty::signature::sign(SECRET, signature_ms, body.as_bytes());
        deliveries.spawn(async move {
            let response = client
                .post(format!("{address}/webhooks/twenty"))
                .header("X-Twenty-Webhook-Timestamp", signature_ms.to_string())
                .header("X-Twenty-Webhook-Signature", signature)
                .body(body)
                .send()
                .await
                .expect("an answer");
            outcome(response).await
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    release_writes(lock).await;

    while let Some(answer) = deliveries.join_next().await {
        assert_eq!(answer.expect("a delivery task"), (200, Some("applied".to_owned())));
    }
    app.stop().await.expect("a clean stop");
    for n in 0..10 {
        assert!(app.record("person", &format!("p{n}")).await.is_some(), "p{n} was committed");
    }
    let refused = app.client.get(format!("{}/healthz", app.address)).send().await;
    assert!(refused.is_err(), "the listener is closed");
}

enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

/// Blocks every write to the mirror (but not connections) until released.
async fn hold_writes(app: &TestApp) -> WriteLock {
    if app.db.is_postgres() {
        let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("a connection");
        conn.execute("BEGIN").await.expect("begin");
        conn.execute("LOCK TABLE twenty_records IN EXCLUSIVE MODE").await.expect("lock");
        WriteLock::Postgres(conn)
    } else {
        WriteLock::Sqlite(app.db.lock_sqlite().await)
    }
}

async fn release_writes(lock: WriteLock) {
    match lock {
        WriteLock::Sqlite(mut conn) => conn.execute("ROLLBACK").await.map(drop),
        WriteLock::Postgres(mut conn) => conn.execute("ROLLBACK").await.map(drop),
    }
    .expect("releasing the lock");
}

#[tokio::test]
async fn deliveries_older_than_the_retention_are_pruned() {
    let app = TestApp::spawn_with(Options::default().var("EVENT_RETENTION", "2s")).await;
    assert_eq!(app.deliver_json(&delivery("person.created", "p1", 0, json!({}))).await.0, 200);
    assert_eq!(app.events().await.len(), 1);
    let pruned = eventually(Duration::from_secs(10), || async { app.events().await.is_empty() }).await;
    assert!(pruned, "the periodic task prunes the event log");
    assert!(app.record("person", "p1").await.is_some(), "pruning the log leaves the mirror alone");
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let health = app.client.get(format!("{}/healthz", app.address)).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let ready = app.client.get(format!("{}/readyz", app.address)).send().await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
}
