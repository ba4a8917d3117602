//! What operators use: the admin routes, metrics, the scheduler, and the commands.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::binary::twenty_mirror;
use crate::helpers::fake_twenty::{FakeTwenty, Fault};
use crate::helpers::{Options, TestApp, TestDb, assert_mirror_matches, delivery, eventually};

const ADMIN_TOKEN: &str = "admin-token-for-tests";

fn with_twenty(fake: &FakeTwenty) -> Options {
    Options::default()
        .var("TWENTY_API_URL", fake.url())
        .var("TWENTY_API_KEY", FakeTwenty::API_KEY)
        .var("TWENTY_RATE_LIMIT", "off")
        .var("RECONCILE_INTERVAL", "off")
        .var("FULL_SWEEP_INTERVAL", "off")
        .var("ADMIN_TOKEN", ADMIN_TOKEN)
}

async fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", app.address);
    let mut request = match method {
        "POST" => app.client.post(url),
        _ => app.client.get(url),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn wait_for_run(app: &TestApp, id: i64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let run = admin(app, "GET", &format!("/admin/runs/{id}"), Some(ADMIN_TOKEN), None).await.1;
        if run["status"] != "running" {
            return run;
        }
        assert!(tokio::time::Instant::now() < deadline, "run {id} did not finish: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_operator_starts_a_reconcile_and_follows_it() {
    let fake = FakeTwenty::start().await;
    for n in 0..30 {
        fake.create("person", json!({"jobTitle": format!("job {n}")}));
    }
    let app = TestApp::spawn_with(with_twenty(&fake)).await;
    let (status, started) =
        admin(&app, "POST", "/admin/reconcile", Some(ADMIN_TOKEN), Some(json!({"mode": "full"}))).await;
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_i64().expect("a run id");
    let run = wait_for_run(&app, id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    for column in [
        "id",
        "trigger",
        "mode",
        "objects",
        "started_at",
        "ended_at",
        "status",
        "error",
        "fetched",
        "inserted",
        "updated",
        "deleted",
        "destroyed",
        "unchanged",
        "repaired",
    ] {
        assert!(run.get(column).is_some(), "{column} missing from {run}");
    }
    assert_eq!(
        (run["trigger"].as_str(), run["mode"].as_str(), run["inserted"].as_i64()),
        (Some("operator"), Some("full"), Some(30))
    );
    assert_mirror_matches(&app.store, &fake, "person").await;

    let (status, runs) = admin(&app, "GET", "/admin/runs", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(runs[0]["id"], id);
    let (status, report) = admin(&app, "GET", "/admin/status", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 200);
    let person =
        report["objects"].as_array().unwrap().iter().find(|o| o["object"] == "person").expect("person");
    assert_eq!((person["live"].as_i64(), person["mirrored"].as_bool()), (Some(30), Some(true)));
    assert!(person["watermark"].is_string() && person["stale_seconds"].is_i64(), "{person}");
    assert_eq!(person["last_counts"]["inserted"], 30);
    assert_eq!(report["last_run"]["id"], id);
    let (status, _) = admin(&app, "GET", "/admin/runs/999999", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_overlapping_request_gets_the_running_run_back() {
    let fake = FakeTwenty::start().await;
    fake.create("person", json!({}));
    fake.inject(Fault::Delay(Duration::from_millis(800)), 1);
    let app = TestApp::spawn_with(with_twenty(&fake)).await;
    let first = admin(&app, "POST", "/admin/reconcile", Some(ADMIN_TOKEN), None).await.1;
    let second = admin(&app, "POST", "/admin/reconcile", Some(ADMIN_TOKEN), None).await.1;
    assert_eq!(first["started"], true);
    assert_eq!((second["id"].clone(), second["started"].clone()), (first["id"].clone(), json!(false)));
    wait_for_run(&app, first["id"].as_i64().unwrap()).await;
}

#[tokio::test]
async fn admin_routes_need_the_token_and_are_closed_without_one() {
    let fake = FakeTwenty::start().await;
    let app = TestApp::spawn_with(with_twenty(&fake)).await;
    for (method, path) in [
        ("POST", "/admin/reconcile"),
        ("GET", "/admin/runs"),
        ("GET", "/admin/runs/1"),
        ("GET", "/admin/status"),
    ] {
        assert_eq!(admin(&app, method, path, None, None).await.0, 401, "{path} without a token");
        assert_eq!(admin(&app, method, path, Some("wrong"), None).await.0, 401, "{path} with a wrong token");
    }
    assert!(app.store.runs(10).await.unwrap().is_empty(), "nothing started");
    assert_eq!(fake.request_count(), 0);
    let (status, body) =
        admin(&app, "POST", "/admin/reconcile", Some(ADMIN_TOKEN), Some(json!({"mode": "sideways"}))).await;
    assert_eq!(status, 400, "{body}");

    let closed = TestApp::spawn_with(with_twenty(&fake).without("ADMIN_TOKEN")).await;
    let (status, body) = admin(&closed, "POST", "/admin/reconcile", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap_or_default().contains("ADMIN_TOKEN"));
}

#[tokio::test]
async fn serve_starts_an_overdue_run_at_boot_and_not_when_the_schedule_is_off() {
    let fake = FakeTwenty::start().await;
    fake.create("person", json!({"jobTitle": "first"}));
    let app = TestApp::spawn_with(
        with_twenty(&fake).var("RECONCILE_INTERVAL", "1h").var("FULL_SWEEP_INTERVAL", "24h"),
    )
    .await;
    let ran = eventually(Duration::from_secs(20), || async {
        app.store.runs(1).await.unwrap().first().is_some_and(|r| r.ended_at.is_some())
    })
    .await;
    assert!(ran, "an overdue run starts at boot");
    let run = &app.store.runs(10).await.unwrap()[0];
    assert_eq!(
        (run.trigger.as_str(), run.mode.as_str(), run.status.as_str()),
        ("startup", "full", "succeeded")
    );
    assert_mirror_matches(&app.store, &fake, "person").await;

    let off = TestApp::spawn_with(with_twenty(&fake)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(off.store.runs(1).await.unwrap().is_empty(), "RECONCILE_INTERVAL=off: no run at boot");
}

#[tokio::test]
async fn metrics_count_deliveries_refusals_runs_and_rows() {
    let fake = FakeTwenty::start().await;
    fake.create("company", json!({"name": "Acme"}));
    let app = TestApp::spawn_with(with_twenty(&fake)).await;
    app.deliver_json(&delivery("person.created", "p1", 0, json!({}))).await;
    app.deliver_json(&delivery("person.created", "p1", 0, json!({}))).await;
    app.post_webhook(b"{}", &[]).await;
    let id = admin(&app, "POST", "/admin/reconcile", Some(ADMIN_TOKEN), None).await.1["id"].as_i64().unwrap();
    wait_for_run(&app, id).await;

    let response = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for expected in [
        "twenty_mirror_webhook_deliveries_total{object=\"person\",event=\"created\",outcome=\"applied\"} 1",
        "twenty_mirror_webhook_deliveries_total{object=\"person\",event=\"created\",outcome=\"duplicate\"} 1",
        "twenty_mirror_webhook_refused_total{reason=\"missing_signature\"} 1",
        "twenty_mirror_apply_seconds_count 2",
        "twenty_mirror_reconcile_runs_total{status=\"succeeded\"} 1",
        "twenty_mirror_reconcile_fetched_total{object=\"company\"} 1",
        "twenty_mirror_reconcile_repaired_total{object=\"company\"} 1",
        "twenty_mirror_twenty_requests_total{status=\"200\"}",
        "twenty_mirror_twenty_rate_limit_wait_seconds_total",
        "twenty_mirror_rows{object=\"person\",state=\"live\"} 1",
        "twenty_mirror_rows{object=\"company\",state=\"live\"} 1",
        "twenty_mirror_reconcile_last_success_age_seconds{object=\"company\"}",
        "twenty_mirror_database_up 1",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
}

fn command(db_url: &str, fake: &FakeTwenty) -> Command {
    let mut command = twenty_mirror();
    command
        .env("DATABASE_URL", db_url)
        .env("TWENTY_API_URL", fake.url())
        .env("TWENTY_API_KEY", FakeTwenty::API_KEY)
        .env("TWENTY_RATE_LIMIT", "off");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_status_and_replay_commands() {
    let fake = FakeTwenty::start().await;
    for n in 0..5 {
        fake.create("person", json!({"jobTitle": format!("job {n}")}));
    }
    let db = TestDb::new().await;
    let run = |args: &[&str]| {
        let output = command(&db.url, &fake).args(args).output().expect("running twenty-mirror");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = tokio::task::block_in_place(|| run(&["reconcile", "--dry-run"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("dry run (nothing written)"), "{stdout}");
    let (code, stdout, stderr) = tokio::task::block_in_place(|| run(&["reconcile", "--object", "person"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("person") && stdout.contains("succeeded"), "{stdout}");
    let (code, stdout, _) = tokio::task::block_in_place(|| run(&["status"]));
    assert_eq!(code, Some(0));
    assert!(stdout.lines().any(|l| l.starts_with("person") && l.contains(" 5 ")), "{stdout}");
    let (code, stdout, _) = tokio::task::block_in_place(|| run(&["status", "--json"]));
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_str(&stdout).expect("status JSON");
    assert!(report["objects"].is_array());

    let mut wrong_key = command(&db.url, &fake);
    wrong_key.env("TWENTY_API_KEY", "not-the-key").args(["reconcile"]);
    let output = tokio::task::block_in_place(|| wrong_key.output()).expect("running reconcile");
    assert_eq!(output.status.code(), Some(1), "a failed run exits non-zero");
    assert!(String::from_utf8_lossy(&output.stdout).contains("API key"));

    // Replay: the event log re-applied into an emptied mirror.
    let store = twenty_mirror::mirror::Store::connect(&db.url).await.unwrap();
    let body = delivery("person.created", "replayed", 0, json!({"jobTitle": "from the log"}));
    store
        .record_deliveries(&[twenty_mirror::http::webhooks::parse_delivery(
            body.to_string().as_bytes(),
            chrono::Utc::now(),
        )])
        .await
        .unwrap();
    store
        .record_deliveries(&[twenty_mirror::http::webhooks::parse_delivery(b"not json", chrono::Utc::now())])
        .await
        .unwrap();
    empty_mirror(&db).await;
    let (code, stdout, stderr) = tokio::task::block_in_place(|| run(&["replay", "--since", "1h"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("replayed 2 deliveries"), "{stdout}");
    assert!(stdout.contains("applied") && stdout.contains("still failing"), "{stdout}");
    let row = store.fetch_record("person", "replayed").await.unwrap().expect("replayed into the mirror");
    assert_eq!(row.data["jobTitle"], "from the log");
}

async fn empty_mirror(db: &TestDb) {
    use sqlx::{Connection, Executor};
    if db.is_postgres() {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        conn.execute("DELETE FROM twenty_records").await.unwrap();
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        conn.execute("DELETE FROM twenty_records").await.unwrap();
    }
}
