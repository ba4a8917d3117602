//! `POST /webhooks/twenty`: what is accepted, what is refused, and what is stored either way.

use serde_json::{Value, json};
use twenty_mirror::change::parse_timestamp;
use twenty_mirror::clock::Clock;

use crate::helpers::{Options, SECRET, TestApp, delivery, outcome};

struct Fixture {
    name: String,
    body: Vec<u8>,
    timestamp: String,
    signature: String,
}

fn fixtures() -> (String, Vec<Fixture>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhooks");
    let index: Value =
        serde_json::from_slice(&std::fs::read(format!("{dir}/index.json")).expect("index.json"))
            .expect("index JSON");
    let fixtures = index["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| Fixture {
            name: d["name"].as_str().expect("name").to_owned(),
            body: std::fs::read(format!("{dir}/{}", d["body_file"].as_str().expect("body_file")))
                .expect("body"),
            timestamp: d["headers"]["X-Twenty-Webhook-Timestamp"].as_str().expect("timestamp").to_owned(),
            signature: d["headers"]["X-Twenty-Webhook-Signature"].as_str().expect("signature").to_owned(),
        })
        .collect();
    (index["secret"].as_str().expect("secret").to_owned(), fixtures)
}

/// An application whose clock stands at the fixtures' signing time.
async fn fixture_app(secret: &str, fixtures: &[Fixture]) -> TestApp {
    let signed_at: i64 = fixtures[0].timestamp.parse().expect("a millisecond timestamp");
    let clock = Clock::Fixed(chrono::DateTime::from_timestamp_millis(signed_at + 1_000).expect("a time"));
    TestApp::spawn_with(Options::default().var("TWENTY_WEBHOOK_SECRET", secret).clock(clock)).await
}

async fn post_fixture(app: &TestApp, f: &Fixture) -> (u16, Option<String>) {
    let headers =
        [("X-Twenty-Webhook-Timestamp", f.timestamp.as_str()), ("X-Twenty-Webhook-Signature", &f.signature)];
    outcome(app.post_webhook(&f.body, &headers).await).await
}

#[tokio::test]
async fn every_fixture_verifies_and_lands_as_expected() {
    let (secret, fixtures) = fixtures();
    let app = fixture_app(&secret, &fixtures).await;
    let mut outcomes = Vec::new();
    for f in &fixtures {
        let (status, outcome) = post_fixture(&app, f).await;
        assert_eq!(status, 200, "{}", f.name);
        outcomes.push((f.name.as_str(), outcome.unwrap_or_default()));
    }
    assert_eq!(
        outcomes,
        [
            ("person.created", "applied".to_owned()),
            ("person.updated", "applied".to_owned()),
            ("company.deleted", "applied".to_owned()),
            // The 2025 format carries the row before the delete: an older version than the one above.
            ("company.deleted-2025-format", "stale".to_owned()),
            ("company.restored", "applied".to_owned()),
            ("opportunity.destroyed", "applied".to_owned()),
            ("project.created", "applied".to_owned()),
            ("metadata.field-created", "ignored".to_owned()),
        ]
    );

    let person = app.record("person", "0b8e1c52-2f7a-4d7c-9d8e-51a1f0c2b3d4").await.expect("the person");
    assert_eq!(person.data["jobTitle"], "CTO");
    assert_eq!(person.data["name"]["firstName"], "Zoë 🚀");
    assert_eq!(person.data["name"]["lastName"], "Ñúñez \"the \\ quoted\"");
    assert_eq!(person.updated_at, parse_timestamp("2026-09-21T10:20:02.640Z").unwrap());

    let company = app.record("company", "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a").await.expect("the company");
    assert_eq!(company.deleted_at, None, "restored");
    assert_eq!(company.data["employees"].as_f64(), Some(1e21));
    assert_eq!(company.data["annualRecurringRevenue"]["amountMicros"], 120_000_000_000_i64);

    let deal =
        app.record("opportunity", "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d").await.expect("the tombstone");
    assert_eq!(deal.destroyed_at, parse_timestamp("2026-09-21T11:00:00.010Z"));
    assert_eq!(deal.data["name"], "Big deal", "a tombstone keeps the last known data");

    let project =
        app.record("project", "e1f2a3b4-4444-4d5e-8f6a-556677889900").await.expect("a custom object");
    assert_eq!(project.data["invoiceStatus"], "READY");

    let events = app.events().await;
    assert_eq!(events.len(), fixtures.len(), "every verified delivery is logged");
    let metadata = &events[0];
    assert_eq!(metadata.event_name.as_deref(), Some("metadata.fieldMetadata.created"));
    assert_eq!(metadata.outcome, "ignored");
    assert_eq!(metadata.body.as_bytes(), fixtures[7].body, "the raw body is kept");
}

#[tokio::test]
async fn the_2025_soft_delete_format_dates_the_delete_by_the_event() {
    let (secret, fixtures) = fixtures();
    let app = fixture_app(&secret, &fixtures).await;
    let old_format = fixtures.iter().find(|f| f.name == "company.deleted-2025-format").expect("fixture");
    assert_eq!(post_fixture(&app, old_format).await, (200, Some("applied".to_owned())));
    let company = app.record("company", "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a").await.expect("the company");
    assert_eq!(company.deleted_at, parse_timestamp("2026-09-21T11:00:00.010Z"));
    assert_eq!(company.data["name"], "Acme", "the data is kept");
}

/// Sends `body` with the given headers and asserts a 401 that stored nothing.
async fn assert_refused(app: &TestApp, body: &[u8], headers: &[(&str, &str)], case: &str) {
    let response = app.post_webhook(body, headers).await;
    assert_eq!(response.status().as_u16(), 401, "{case}");
    assert!(app.events().await.is_empty(), "{case}: nothing is logged");
    assert!(
        app.record("person", "0b8e1c52-2f7a-4d7c-9d8e-51a1f0c2b3d4").await.is_none(),
        "{case}: nothing applied"
    );
}

#[tokio::test]
async fn deliveries_without_a_valid_signature_are_refused_and_store_nothing() {
    let (secret, fixtures) = fixtures();
    let app = fixture_app(&secret, &fixtures).await;
    let f = &fixtures[0];
    let ts = f.timestamp.as_str();
    let mut tampered = f.body.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    assert_refused(
        &app,
        &tampered,
        &[("X-Twenty-Webhook-Timestamp", ts), ("X-Twenty-Webhook-Signature", &f.signature)],
        "tampered body",
    )
    .await;
    let wrong = twenty_mirror::twenty::signature::sign("not-the-secret", ts.parse().unwrap(), &f.body);
    assert_refused(
        &app,
        &f.body,
        &[("X-Twenty-Webhook-Timestamp", ts), ("X-Twenty-Webhook-Signature", &wrong)],
        "wrong secret",
    )
    .await;
    assert_refused(
        &app,
        &f.body,
        &[("X-Twenty-Webhook-Timestamp", ts), ("X-Twenty-Webhook-Signature", &f.signature[..40])],
        "truncated signature",
    )
    .await;
    assert_refused(&app, &f.body, &[("X-Twenty-Webhook-Timestamp", ts)], "no signature").await;
    assert_refused(&app, &f.body, &[("X-Twenty-Webhook-Signature", &f.signature)], "no timestamp").await;
    assert_refused(&app, &f.body, &[], "no headers").await;
}

#[tokio::test]
async fn timestamps_outside_the_tolerance_are_refused_in_both_directions() {
    let app = TestApp::spawn_with(Options::default().var("WEBHOOK_TOLERANCE", "5m")).await;
    let body = delivery("person.created", "0b8e1c52-2f7a-4d7c-9d8e-51a1f0c2b3d4", 0, json!({})).to_string();
    let now = chrono::Utc::now().timestamp_millis();
    let six_minutes = 6 * 60 * 1000;
    for (ts, case) in [(now - six_minutes, "too old"), (now + six_minutes, "too far in the future")] {
        let signature = twenty_mirror::twenty::signature::sign(SECRET, ts, body.as_bytes());
        let headers =
            [("X-Twenty-Webhook-Timestamp", ts.to_string()), ("X-Twenty-Webhook-Signature", signature)];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_refused(&app, body.as_bytes(), &headers, case).await;
    }
    let (status, _) = outcome(app.deliver_signed(body.as_bytes(), SECRET, now - 60_000).await).await;
    assert_eq!(status, 200, "a minute of skew is inside the tolerance");
}

#[tokio::test]
async fn deliveries_signed_with_any_configured_secret_are_accepted_during_a_rotation() {
    let app =
        TestApp::spawn_with(Options::default().var("TWENTY_WEBHOOK_SECRET", "old-secret,new-secret")).await;
    let now = chrono::Utc::now().timestamp_millis();
    let first = delivery("person.created", "a", 0, json!({})).to_string();
    let second = delivery("person.updated", "a", 1_000, json!({})).to_string();
    let third = delivery("person.updated", "a", 2_000, json!({})).to_string();
    assert_eq!(outcome(app.deliver_signed(first.as_bytes(), "old-secret", now).await).await.0, 200);
    assert_eq!(outcome(app.deliver_signed(second.as_bytes(), "new-secret", now).await).await.0, 200);
    assert_eq!(outcome(app.deliver_signed(third.as_bytes(), SECRET, now).await).await.0, 401);
}

#[tokio::test]
async fn unsigned_deliveries_are_refused_unless_the_operator_opts_in() {
    let body = delivery("person.created", "a", 0, json!({})).to_string();
    let strict = TestApp::spawn_with(Options::default().without("TWENTY_WEBHOOK_SECRET")).await;
    let response = strict.post_webhook(body.as_bytes(), &[]).await;
    assert_eq!(response.status().as_u16(), 401);
    assert!(strict.events().await.is_empty());

    let open = TestApp::spawn_with(
        Options::default().without("TWENTY_WEBHOOK_SECRET").var("TWENTY_WEBHOOK_ALLOW_UNSIGNED", "true"),
    )
    .await;
    let (status, outcome) = outcome(open.post_webhook(body.as_bytes(), &[]).await).await;
    assert_eq!((status, outcome.as_deref()), (200, Some("applied")));
    assert!(open.record("person", "a").await.is_some());
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_stores_nothing() {
    let app = TestApp::spawn_with(Options::default().var("WEBHOOK_MAX_BODY", "4KiB")).await;
    let big = delivery("person.created", "a", 0, json!({"notes": "x".repeat(5_000)})).to_string();
    let response = app.deliver(big.as_bytes()).await;
    assert_eq!(response.status().as_u16(), 413);
    assert!(app.events().await.is_empty());
    assert!(app.record("person", "a").await.is_none());

    let small = delivery("person.created", "a", 0, json!({"notes": "x".repeat(1_000)})).to_string();
    assert_eq!(outcome(app.deliver(small.as_bytes()).await).await.0, 200);
}

#[tokio::test]
async fn verified_but_malformed_deliveries_get_400_and_are_kept_as_failed() {
    let app = TestApp::spawn().await;
    let cases: [(&[u8], &str); 3] = [
        (b"this is not json", "not a JSON delivery"),
        (br#"{"record":{"id":"a","updatedAt":"2026-09-21T10:00:00.000Z"}}"#, "eventName is missing"),
        (br#"{"eventName":"person.updated","record":{"updatedAt":"2026-09-21T10:00:00.000Z"}}"#, "record.id"),
    ];
    for (body, reason) in cases {
        let response = app.deliver(body).await;
        assert_eq!(response.status().as_u16(), 400, "{reason}");
        let answer: Value = response.json().await.expect("a JSON error");
        assert!(answer["error"].as_str().unwrap_or_default().contains(reason), "{answer}");
    }
    let events = app.events().await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.outcome == "failed" && e.error.is_some()));
    assert_eq!(events[2].body, "this is not json");
    assert!(app.record("person", "a").await.is_none());
}

#[tokio::test]
async fn schema_events_and_unknown_actions_are_acknowledged_and_ignored() {
    let app = TestApp::spawn().await;
    let schema = json!({"eventName": "metadata.objectMetadata.updated", "workspaceId": "w", "event": {}});
    assert_eq!(app.deliver_json(&schema).await, (200, Some("ignored".to_owned())));
    let unknown = delivery("person.merged", "a", 0, json!({}));
    assert_eq!(app.deliver_json(&unknown).await, (200, Some("ignored".to_owned())));
    assert!(app.record("person", "a").await.is_none(), "never applied");
    let events = app.events().await;
    assert_eq!(events.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>(), ["ignored", "ignored"]);
}

#[tokio::test]
async fn an_event_type_from_older_releases_is_applied_when_it_names_one_event() {
    let app = TestApp::spawn().await;
    let with_event_type = |event_type: Option<&str>, id: &str| {
        let mut body = delivery("person.created", id, 0, json!({"jobTitle": "CTO"}));
        let envelope = body.as_object_mut().expect("an object");
        envelope.remove("eventName");
        if let Some(event_type) = event_type {
            envelope.insert("eventType".to_owned(), json!(event_type));
        }
        body
    };
    let (status, outcome) = app.deliver_json(&with_event_type(Some("person.created"), "concrete")).await;
    assert_eq!((status, outcome.as_deref()), (200, Some("applied")));
    assert!(app.record("person", "concrete").await.is_some());

    for (event_type, id, reason) in [
        (Some("*.*"), "pattern", "eventType \"*.*\" names no single object.action"),
        (None, "neither", "eventName is missing (and so is eventType)"),
    ] {
        let response = app.deliver(with_event_type(event_type, id).to_string().as_bytes()).await;
        assert_eq!(response.status().as_u16(), 400, "{reason}");
        let answer: Value = response.json().await.expect("a JSON error");
        assert!(answer["error"].as_str().unwrap_or_default().contains(reason), "{answer}");
        assert!(app.record("person", id).await.is_none());
    }
    let outcomes: Vec<String> = app.events().await.into_iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "failed").count(), 2, "{outcomes:?}");
}
