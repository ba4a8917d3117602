//! Webhook health: after each delta pass, per object, `ok` (it repaired nothing), `lossy` (it
//! repaired something and deliveries for the object arrived), `silent` (it repaired something and
//! none arrived), `unknown` before the first delta pass; and the deliveries refused since the last
//! pass, by reason, so that a wrong secret shows as refusals and not as silence.

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use twenty_mirror::mirror::{Mode, RunStatus, Trigger};
use twenty_mirror::sync::reconciler::{RunOutcome, RunRequest};
use twenty_mirror::sync::status::status;

use crate::helpers::binary::twenty_mirror;
use crate::helpers::fake_twenty::{FakeTwenty, webhook_body};
use crate::helpers::{Options, TestApp, TestDb, eventually, reconciler};

const ADMIN_TOKEN: &str = "admin-token-for-health";

async fn app() -> TestApp {
    TestApp::spawn_with(Options::default().var("ADMIN_TOKEN", ADMIN_TOKEN)).await
}

async fn admin_status(app: &TestApp) -> Value {
    let response = app
        .client
        .get(format!("{}/admin/status", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("JSON")
}

async fn metrics(app: &TestApp) -> String {
    let response = app.client.get(format!("{}/metrics", app.address)).send().await.expect("an answer");
    response.text().await.expect("text")
}

fn object<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["objects"]
        .as_array()
        .and_then(|objects| objects.iter().find(|o| o["object"] == name))
        .unwrap_or_else(|| panic!("{name} is not in {report}"))
}

/// Asserts the health of `name` in `/admin/status` and in the metric (1 for it, 0 for the others).
async fn assert_health(app: &TestApp, name: &str, expected: &str) {
    let report = admin_status(app).await;
    assert_eq!(object(&report, name)["webhook_health"], expected, "{name} in {report}");
    let text = metrics(app).await;
    for state in ["ok", "lossy", "silent", "unknown"] {
        let value = if state == expected { 1 } else { 0 };
        let line = format!("twenty_mirror_webhook_health{{object=\"{name}\",state=\"{state}\"}} {value}\n");
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
}

async fn run(app: &TestApp, fake: &FakeTwenty, mode: Mode) -> RunOutcome {
    let outcome = reconciler(&app.store, fake, |_, _| {})
        .reconcile_once(RunRequest::new(Trigger::Operator, mode))
        .await;
    let outcome = outcome.expect("a run");
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    outcome
}

fn repaired(outcome: &RunOutcome, name: &str) -> i64 {
    outcome.objects.iter().find(|o| o.object == name).map(|o| o.counts.repaired).expect("the object's pass")
}

/// Changes every record of `object` in the fake, and delivers the first `delivered` changes.
async fn change_and_deliver(app: &TestApp, fake: &FakeTwenty, object: &str, delivered: usize) {
    for (n, record) in fake.records(object).iter().enumerate() {
        let id = record["id"].as_str().expect("an id");
        let changed = fake.update(object, id, json!({"jobTitle": format!("changed {n}")}));
        if n < delivered {
            let event_date = changed["updatedAt"].as_str().expect("updatedAt");
            let body = webhook_body(&format!("{object}.updated"), &changed, event_date);
            assert_eq!(app.deliver_json(&body).await.0, 200, "{object} {id}");
        }
    }
}

#[tokio::test]
async fn deliveries_all_sent_partly_dropped_and_all_dropped_read_ok_lossy_and_silent() {
    let fake = FakeTwenty::start().await;
    for object in ["person", "company", "opportunity"] {
        for _ in 0..5 {
            fake.create(object, json!({}));
        }
    }
    let app = app().await;
    run(&app, &fake, Mode::Full).await;
    for name in ["person", "company", "opportunity"] {
        assert_health(&app, name, "unknown").await;
    }

    change_and_deliver(&app, &fake, "person", 5).await;
    change_and_deliver(&app, &fake, "company", 3).await; // two of five (40%) dropped
    change_and_deliver(&app, &fake, "opportunity", 0).await;
    let delta = run(&app, &fake, Mode::Delta).await;
    let repairs: Vec<i64> =
        ["person", "company", "opportunity"].iter().map(|o| repaired(&delta, o)).collect();
    assert_eq!(repairs, [0, 2, 5], "what the webhooks missed");
    assert_health(&app, "person", "ok").await;
    assert_health(&app, "company", "lossy").await;
    assert_health(&app, "opportunity", "silent").await;

    // Kept with the pass: another connection, as another instance or a restart, reads the same.
    let report = status(&app.store, chrono::Utc::now()).await.expect("the status");
    let health: Vec<(&str, &str)> = report
        .objects
        .iter()
        .filter(|o| o.mirrored)
        .map(|o| (o.object.as_str(), o.webhook_health.as_str()))
        .collect();
    assert_eq!(health, [("company", "lossy"), ("opportunity", "silent"), ("person", "ok")]);
    let table = report.to_table();
    let line = table.lines().find(|l| l.starts_with("opportunity")).expect("a line for opportunity");
    assert!(line.contains(" silent "), "{table}");

    run(&app, &fake, Mode::Delta).await;
    assert_health(&app, "opportunity", "ok").await;
}

#[tokio::test]
async fn a_wrong_secret_shows_as_bad_signature_refusals_not_as_silence() {
    let fake = FakeTwenty::start().await;
    let id = fake.create("person", json!({}))["id"].as_str().expect("an id").to_owned();
    let app = app().await;
    run(&app, &fake, Mode::Full).await;

    let changed = fake.update("person", &id, json!({"jobTitle": "changed"}));
    let body = webhook_body("person.updated", &changed, changed["updatedAt"].as_str().unwrap()).to_string();
    let now = chrono::Utc::now().timestamp_millis();
    for _ in 0..2 {
        let refused = app.deliver_signed(body.as_bytes(), "a-secret-that-no-longer-matches", now).await;
        assert_eq!(refused.status().as_u16(), 401);
    }
    let unknown = json!({"eventName": "nonsense.updated", "record": {"id": "x"}}).to_string();
    let refused = app.deliver_signed(unknown.as_bytes(), "a-secret-that-no-longer-matches", now).await;
    assert_eq!(refused.status().as_u16(), 401);
    let malformed = json!({"eventName": "person.updated"}); // verified, but without its record
    assert_eq!(app.deliver_json(&malformed).await.0, 400);

    let expected = json!({"bad_signature": 2, "malformed": 1});
    let counted = eventually(Duration::from_secs(5), || async {
        object(&admin_status(&app).await, "person")["refused_since_last_pass"] == expected
    })
    .await;
    assert!(counted, "refusals are counted within a second: {}", admin_status(&app).await);
    let report = admin_status(&app).await;
    assert_eq!(report["refused_without_object"], json!({"bad_signature": 1}), "{report}");
    let table = status(&app.store, chrono::Utc::now()).await.expect("the status").to_table();
    assert!(table.contains("bad_signature 2, malformed 1"), "{table}");
    assert!(table.contains("naming no known object: bad_signature 1"), "{table}");

    let delta = run(&app, &fake, Mode::Delta).await;
    assert_eq!(repaired(&delta, "person"), 1, "the refused change was repaired");
    assert_health(&app, "person", "lossy").await;
    let report = admin_status(&app).await;
    assert_eq!(object(&report, "person")["refused_since_last_pass"], json!({}), "a new window: {report}");
    assert_eq!(report["refused_without_object"], json!({}), "{report}");
}

fn reconcile(db: &TestDb, fake: &FakeTwenty, args: &[&str]) -> Output {
    let output = twenty_mirror()
        .arg("reconcile")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("TWENTY_API_URL", fake.url())
        .env("TWENTY_API_KEY", FakeTwenty::API_KEY)
        .env("TWENTY_RATE_LIMIT", "off")
        .output()
        .expect("running reconcile");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output
}

#[tokio::test]
async fn an_object_turning_silent_is_warned_of_once() {
    let fake = FakeTwenty::start().await;
    let ids: Vec<String> =
        (0..3).map(|_| fake.create("person", json!({}))["id"].as_str().unwrap().to_owned()).collect();
    let db = TestDb::new().await;
    let warnings = |output: &Output| {
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        let lines: Vec<String> =
            log.lines().filter(|l| l.contains("look silent")).map(str::to_owned).collect();
        (lines, log)
    };
    let (first, log) = warnings(&reconcile(&db, &fake, &["--full"]));
    assert!(first.is_empty(), "a full pass judges nothing: {log}");
    for (n, id) in ids.iter().enumerate() {
        fake.update("person", id, json!({"jobTitle": format!("changed {n}")}));
    }
    let (turned, log) = warnings(&reconcile(&db, &fake, &[]));
    assert_eq!(turned.len(), 1, "{log}");
    let line: Value = serde_json::from_str(&turned[0]).expect("a JSON line");
    assert_eq!(line["level"], "WARN", "{line}");
    let message = line.to_string();
    for cause in ["reach the webhook URL", "safe mode", "cap of webhooks", "deleted", "secret", "refused"] {
        assert!(message.contains(cause), "the warning names {cause:?}: {message}");
    }
    fake.update("person", &ids[0], json!({"jobTitle": "changed again"}));
    let (again, log) = warnings(&reconcile(&db, &fake, &[]));
    assert!(again.is_empty(), "still silent: no second warning: {log}");
}
