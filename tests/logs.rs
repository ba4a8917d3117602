//! What the logs may never carry: the webhook secret, the API key, the admin token, a raw body.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::fake_twenty::FakeTwenty;
use support::{SECRET, TestDb, delivery, eventually};

const ADMIN_TOKEN: &str = "admin-token-never-logged";
const PRIVATE_NOTE: &str = "private-note-that-stays-in-the-database";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_and_a_reconcile_leave_no_secret_in_the_log() {
    let fake = FakeTwenty::start().await;
    fake.create("person", json!({"jobTitle": PRIVATE_NOTE}));
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_twenty-mirror"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("TWENTY_WEBHOOK_SECRET", SECRET)
        .env("TWENTY_API_URL", fake.url())
        .env("TWENTY_API_KEY", FakeTwenty::API_KEY)
        .env("TWENTY_RATE_LIMIT", "off")
        .env("RECONCILE_INTERVAL", "off")
        .env("FULL_SWEEP_INTERVAL", "off")
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("LOG_FORMAT", "json")
        // Everything, dependencies included, at their most talkative useful level.
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting serve");
    // Read as it comes: a pipe holds 64 KiB, and a server whose debug log fills it blocks mid-run.
    let mut stderr = server.stderr.take().expect("the server's stderr");
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        stderr.read_to_string(&mut log).map(|_| log)
    });
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    assert!(
        eventually(Duration::from_secs(20), || async {
            client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await
    );

    let body = delivery("person.created", "p1", 0, json!({"jobTitle": PRIVATE_NOTE})).to_string();
    let ts = chrono::Utc::now().timestamp_millis();
    let signature = twenty_mirror::twenty::signature::sign(SECRET, ts, body.as_bytes());
    let sent = client
        .post(format!("{base}/webhooks/twenty"))
        .header("X-Twenty-Webhook-Timestamp", ts.to_string())
        .header("X-Twenty-Webhook-Signature", &signature)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 200);
    let refused = client.post(format!("{base}/webhooks/twenty")).body("{}").send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);

    let started: Value = client
        .post(format!("{base}/admin/reconcile"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_i64().expect("a run");
    assert!(
        eventually(Duration::from_secs(20), || async {
            let run: Value = client
                .get(format!("{base}/admin/runs/{id}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            run["status"] == "succeeded"
        })
        .await
    );

    let killed = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let log = reader.join().expect("the reader thread").expect("reading the server's stderr");
    server.wait().unwrap();

    assert!(log.contains("\"run_id\""), "runs log with their span: {log:.2000}");
    assert!(log.contains("request_id"), "requests log with their span");
    for (what, secret) in [
        ("the webhook secret", SECRET),
        ("a signature", signature.as_str()),
        ("the API key", FakeTwenty::API_KEY),
        ("the admin token", ADMIN_TOKEN),
        ("a raw body", PRIVATE_NOTE),
    ] {
        assert!(!log.contains(secret), "{what} reached the log");
    }
    for line in log.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
}
