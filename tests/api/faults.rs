//! Faults that must lose nothing: the process stopped under load, killed in the middle of a pass.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use twenty_mirror::mirror::RunStatus;
use twenty_mirror::mirror::Store;

use crate::helpers::binary::{free_port, signal, twenty_mirror};
use crate::helpers::fake_twenty::{FakeTwenty, Fault};
use crate::helpers::{SECRET, TestDb, assert_mirror_matches, delivery, eventually};

/// The binary on `db`, its output discarded.
fn twenty_mirror_on(db: &TestDb) -> Command {
    let mut command = twenty_mirror();
    command.env("DATABASE_URL", &db.url).stdout(Stdio::null()).stderr(Stdio::null());
    command
}

async fn store(db: &TestDb) -> Store {
    Store::connect(&db.url).await.expect("a store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_in_flight_deliveries_commits_them_and_exits_zero() {
    let db = TestDb::new().await;
    let port = free_port();
    let mut server = twenty_mirror_on(&db)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("TWENTY_WEBHOOK_SECRET", SECRET)
        .spawn()
        .expect("starting serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(20), || async {
        client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(ready);

    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..8 {
        let (client, base, acknowledged) = (client.clone(), base.clone(), acknowledged.clone());
        senders.spawn(async move {
            for n in 0..10_000 {
                let id = format!("s{sender}-{n}");
                let body = delivery("person.created", &id, 0, json!({})).to_string();
                let ts = chrono::Utc::now().timestamp_millis();
                let signature = twenty_mirror::twenty::signature::sign(SECRET, ts, body.as_bytes());
                let sent = client
                    .post(format!("{base}/webhooks/twenty"))
                    .header("X-Twenty-Webhook-Timestamp", ts.to_string())
                    .header("X-Twenty-Webhook-Signature", signature)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        acknowledged.lock().unwrap().insert(id);
                    }
                    Ok(response) => {
                        assert_eq!(response.status().as_u16(), 503, "only refusals may come back")
                    }
                    Err(_) => return, // the listener closed
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    signal(&server, "-TERM");
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().expect("waiting") {
            break status;
        }
        assert!(stopped.elapsed() < twenty_mirror::app::DRAIN_TIMEOUT, "exits within the drain time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
    while senders.join_next().await.is_some() {}

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 50, "the load was real: {} deliveries", acknowledged.len());
    let store = store(&db).await;
    for id in &acknowledged {
        assert!(
            store.fetch_record("person", id).await.unwrap().is_some(),
            "{id} was acknowledged but is missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciler_killed_in_the_middle_of_a_full_pass_loses_nothing() {
    let fake = FakeTwenty::start().await;
    for n in 0..1_500 {
        fake.create("person", json!({"jobTitle": format!("job {n}")}));
    }
    // Slow pages, so that the kill lands in the middle of the pass.
    fake.fail_always(Some(Fault::Delay(Duration::from_millis(150))));
    let db = TestDb::new().await;
    let reconcile = || {
        let mut command = twenty_mirror_on(&db);
        command
            .env("TWENTY_API_URL", fake.url())
            .env("TWENTY_API_KEY", FakeTwenty::API_KEY)
            .env("TWENTY_RATE_LIMIT", "off")
            .env("TWENTY_OBJECTS", "person");
        command
    };
    let mut killed = reconcile().args(["reconcile", "--full"]).spawn().expect("starting reconcile");
    let store = store(&db).await;
    let midway = eventually(Duration::from_secs(30), || async {
        store
            .runs(1)
            .await
            .ok()
            .and_then(|runs| runs.first().map(|r| r.counts.fetched >= 400))
            .unwrap_or(false)
    })
    .await;
    assert!(midway, "two pages committed");
    signal(&killed, "-KILL");
    killed.wait().expect("reaping the killed process");
    assert!(store.count_present("person").await.unwrap() < 1_500, "the pass was interrupted");

    fake.fail_always(None);
    let output = tokio::task::block_in_place(|| reconcile().arg("reconcile").stdout(Stdio::piped()).output())
        .expect("running reconcile again");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert_mirror_matches(&store, &fake, "person").await;
    let runs = store.runs(2).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(runs[1].status, RunStatus::Failed, "the killed run is closed as abandoned");
}
