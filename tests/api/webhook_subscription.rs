//! The webhook subscription in Twenty: `register` creates or updates it, `check` verifies it, on the
//! current and the older subscription API, from the library, the binary and `serve` at start.

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use twenty_mirror::subscription::{self, Action, OPERATIONS};
use twenty_mirror::twenty::client::{ClientSettings, RetryPolicy, SubscriptionFields, TwentyClient};

use crate::helpers::binary::twenty_mirror;
use crate::helpers::fake_twenty::FakeTwenty;
use crate::helpers::{Options, TestApp, TestDb, eventually};

const URL: &str = "https://mirror.example.com/webhooks/twenty";

fn client(fake: &FakeTwenty) -> TwentyClient {
    let mut settings = ClientSettings::new(fake.url(), FakeTwenty::API_KEY.to_owned().into());
    settings.rate_limits = Vec::new();
    settings.timeout = Duration::from_secs(5);
    settings.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    };
    TwentyClient::new(settings).expect("a Twenty client")
}

fn operations(subscription: &Value) -> Vec<String> {
    serde_json::from_value(subscription["operations"].clone()).expect("operations")
}

/// Adds a subscription to the fake as another tool would.
async fn add(client: &TwentyClient, target_url: &str, operations: &[&str], secret: Option<&str>) -> String {
    let fields = SubscriptionFields {
        target_url: target_url.to_owned(),
        operations: operations.iter().map(|s| (*s).to_owned()).collect(),
        description: Some("added by the test".to_owned()),
        secret: secret.map(|s| SecretString::from(s.to_owned())),
    };
    client.create_subscription(&fields).await.expect("creating a subscription").id
}

fn is_hex_64(secret: &str) -> bool {
    secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit())
}

#[tokio::test]
async fn register_creates_a_subscription_for_the_five_record_events_with_a_strong_secret() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);
    let registered = subscription::register(&client, "https://mirror.example.com", None).await.unwrap();

    assert_eq!(registered.action, Action::Created);
    assert_eq!(registered.target_url, URL, "a base URL gets the webhook path");
    assert!(registered.generated_secret);
    assert!(is_hex_64(registered.secret.expose_secret()));
    assert!(registered.duplicates.is_empty());

    let webhooks = fake.webhooks();
    assert_eq!(webhooks.len(), 1);
    let created = &webhooks[0];
    assert_eq!(created["id"], registered.subscription.id.as_str());
    assert_eq!(created["targetUrl"], URL);
    assert_eq!(operations(created), OPERATIONS);
    assert_eq!(created["description"], "twenty-mirror");
    assert_eq!(created["secret"], registered.secret.expose_secret());
    assert_eq!(client.webhooks_path(), Some("/rest/metadata/webhooks"));

    let text = registered.to_text();
    assert!(text.contains("created") && text.contains(&registered.subscription.id), "{text}");
    assert!(text.contains(&format!("TWENTY_WEBHOOK_SECRET={}", registered.secret.expose_secret())), "{text}");
    assert!(text.contains("only this once"), "{text}");
    assert!(!format!("{registered:?}").contains(registered.secret.expose_secret()), "Debug hides the secret");

    let again = subscription::register(&client, URL, None).await.unwrap();
    assert_ne!(again.secret.expose_secret(), registered.secret.expose_secret(), "a fresh secret each time");
}

#[tokio::test]
async fn register_again_updates_the_subscription_instead_of_adding_one() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);
    let other = add(&client, "https://elsewhere.example.com/hook", &["person.created"], Some("theirs")).await;
    let first = subscription::register(&client, URL, None).await.unwrap();

    let given = SecretString::from("given-secret-0123456789".to_owned());
    let second = subscription::register(&client, &format!("{URL}/"), Some(given)).await.unwrap();
    assert_eq!(second.action, Action::Updated);
    assert_eq!(second.subscription.id, first.subscription.id);
    assert!(!second.generated_secret);
    assert_eq!(second.secret.expose_secret(), "given-secret-0123456789");

    let webhooks = fake.webhooks();
    assert_eq!(webhooks.len(), 2, "{webhooks:?}");
    let ours = webhooks.iter().find(|w| w["id"] == first.subscription.id.as_str()).unwrap();
    assert_eq!(ours["secret"], "given-secret-0123456789");
    assert_eq!(operations(ours), OPERATIONS);
    let theirs = webhooks.iter().find(|w| w["id"] == other.as_str()).unwrap();
    assert_eq!(theirs["secret"], "theirs", "a subscription for another URL is left alone");
    assert_eq!(operations(theirs), ["person.created"]);
}

#[tokio::test]
async fn register_updates_an_older_subscription_for_the_url_and_names_the_duplicates() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);
    let older = add(&client, &format!("{URL}/"), &["*.created"], None).await;
    let duplicate = add(&client, URL, &["*.*"], Some("dup")).await;

    let registered = subscription::register(&client, URL, None).await.unwrap();
    assert_eq!(registered.action, Action::Updated);
    assert_eq!(registered.subscription.id, older);
    assert_eq!(registered.duplicates, std::slice::from_ref(&duplicate));
    let text = registered.to_text();
    assert!(text.contains(&duplicate) && text.contains("1 more subscription"), "{text}");
    assert!(text.contains("new secret"), "rotating a secret says what happens meanwhile: {text}");

    let webhooks = fake.webhooks();
    assert_eq!(webhooks.len(), 2);
    assert_eq!(webhooks[0]["secret"], registered.secret.expose_secret());
    assert_eq!(operations(&webhooks[0]), OPERATIONS);
    assert_eq!(webhooks[1]["secret"], "dup", "the duplicate is left as it was");
}

#[tokio::test]
async fn register_refuses_a_secret_the_service_cannot_take() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);
    for bad in ["", "a,b", " padded "] {
        let error =
            subscription::register(&client, URL, Some(SecretString::from(bad.to_owned()))).await.unwrap_err();
        assert!(error.to_string().contains("secret"), "{error}");
    }
    let error = subscription::register(&client, "mirror.example.com", None).await.unwrap_err();
    assert!(error.to_string().contains("webhook URL"), "{error}");
    assert!(fake.webhooks().is_empty());
}

#[tokio::test]
async fn an_older_server_is_reached_at_rest_webhooks_and_the_path_is_kept() {
    let fake = FakeTwenty::start().await;
    fake.set_legacy_webhooks_path(true);
    let client = client(&fake);

    let registered = subscription::register(&client, URL, None).await.unwrap();
    assert_eq!(client.webhooks_path(), Some("/rest/webhooks"));
    assert_eq!(fake.webhooks().len(), 1);
    let again = subscription::register(&client, URL, None).await.unwrap();
    assert_eq!(again.action, Action::Updated);
    assert_eq!(again.subscription.id, registered.subscription.id);
    let report = subscription::check(&client, URL).await.unwrap();
    assert!(report.passed(), "{report}");

    let requests = fake.requests();
    let metadata: Vec<_> =
        requests.iter().filter(|r| r.path.starts_with("/rest/metadata/webhooks")).collect();
    assert_eq!(metadata.len(), 1, "the metadata path is tried once: {requests:?}");
    assert_eq!(metadata[0].status, 404);
    let paths: Vec<String> = requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    let id = &registered.subscription.id;
    assert_eq!(
        paths,
        [
            "GET /rest/metadata/webhooks".to_owned(),
            "GET /rest/webhooks".to_owned(),
            "POST /rest/webhooks".to_owned(),
            "GET /rest/webhooks".to_owned(),
            format!("PATCH /rest/webhooks/{id}"),
            "GET /rest/webhooks".to_owned(),
        ]
    );

    // A clone shares what was learnt; a new client finds the path by itself, for a create too.
    let fresh = self::client(&fake);
    add(&fresh, "https://other.example.com/x", &["*.*"], None).await;
    assert_eq!(fresh.webhooks_path(), Some("/rest/webhooks"));
    assert_eq!(client.clone().webhooks_path(), Some("/rest/webhooks"));
}

#[tokio::test]
async fn an_update_by_a_fresh_client_finds_the_path_by_listing_first() {
    let fake = FakeTwenty::start().await;
    fake.set_legacy_webhooks_path(true);
    let id = add(&client(&fake), URL, &["*.created"], Some("s")).await;
    fake.reset_requests();

    let fresh = client(&fake);
    let fields = SubscriptionFields {
        target_url: URL.to_owned(),
        operations: vec!["*.*".to_owned()],
        description: None,
        secret: None,
    };
    let updated = fresh.update_subscription(&id, &fields).await.unwrap();
    assert_eq!(updated.operations, ["*.*"]);
    assert!(updated.secret.is_some(), "a None secret is left as it was");
    let paths: Vec<String> = fake.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        paths,
        ["GET /rest/metadata/webhooks", "GET /rest/webhooks", &format!("PATCH /rest/webhooks/{id}")]
    );

    let error = fresh.update_subscription("../people", &fields).await.unwrap_err();
    assert!(error.to_string().contains("not a webhook subscription id"), "{error}");
}

#[tokio::test]
async fn the_paged_list_shape_is_read() {
    let fake = FakeTwenty::start().await;
    fake.set_webhook_list_paged(true);
    let client = client(&fake);
    add(&client, "https://other.example.com/x", &["*.*"], Some("x")).await;
    let registered = subscription::register(&client, URL, None).await.unwrap();
    assert_eq!(registered.action, Action::Created);

    let listed = client.subscriptions().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].target_url, URL);
    assert_eq!(listed[1].operations, OPERATIONS);
    assert_eq!(
        listed[1].secret.as_ref().map(|s| s.expose_secret().to_owned()).as_deref(),
        Some(registered.secret.expose_secret())
    );
    assert!(!format!("{listed:?}").contains(registered.secret.expose_secret()), "Debug hides secrets");

    let again = subscription::register(&client, URL, None).await.unwrap();
    assert_eq!(again.action, Action::Updated);
    assert_eq!(fake.webhooks().len(), 2);
    assert!(subscription::check(&client, "https://mirror.example.com/").await.unwrap().passed());
}

#[tokio::test]
async fn check_passes_for_a_registered_subscription() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);
    let registered = subscription::register(&client, URL, None).await.unwrap();
    let mut report = subscription::check(&client, "https://mirror.example.com").await.unwrap();
    assert!(report.found() && report.has_secret && report.missing_operations.is_empty(), "{report}");
    assert!(report.passed(), "{report}");
    report.compare_secrets(std::slice::from_ref(&registered.secret));
    assert_eq!(report.secret_matches, Some(true));
    assert!(report.passed(), "{report}");
    let text = report.to_string();
    assert!(text.contains("OK") && text.contains(&registered.subscription.id), "{text}");
    assert!(!text.contains(registered.secret.expose_secret()), "the report never shows the secret: {text}");

    // `*.*` (Twenty's default) covers every event.
    let fake = FakeTwenty::start().await;
    let client = self::client(&fake);
    add(&client, URL, &["*.*"], Some("s")).await;
    assert!(subscription::check(&client, URL).await.unwrap().passed());
}

#[tokio::test]
async fn check_fails_with_the_reason() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);

    add(&client, "https://elsewhere.example.com/hook", &["*.*"], Some("s")).await;
    let missing = subscription::check(&client, URL).await.unwrap();
    assert!(!missing.found() && !missing.passed());
    let problems = missing.problems();
    assert!(
        problems[0].contains("no webhook subscription points at") && problems[0].contains(URL),
        "{problems:?}"
    );
    assert!(
        problems[0].contains("elsewhere.example.com"),
        "the other targets help spot a typo: {problems:?}"
    );

    // An explicit empty secret means unsigned deliveries.
    let unsigned_url = "https://unsigned.example.com/webhooks/twenty";
    add(&client, unsigned_url, &OPERATIONS, Some("")).await;
    let unsigned = subscription::check(&client, unsigned_url).await.unwrap();
    assert!(unsigned.found() && !unsigned.has_secret && !unsigned.passed(), "{unsigned}");
    assert!(unsigned.problems().iter().any(|p| p.contains("no secret")), "{unsigned}");

    let partial_url = "https://partial.example.com/webhooks/twenty";
    add(&client, partial_url, &["*.created", "*.updated", "person.*"], Some("s")).await;
    let partial = subscription::check(&client, partial_url).await.unwrap();
    assert!(partial.passed() && partial.missing_operations.is_empty(), "person.* counts: {partial}");
    assert_eq!(partial.scoped_operations.len(), 3, "{partial}");
    assert!(partial.to_string().contains("*.deleted is sent only for person"), "{partial}");
    let partial_url = "https://partial2.example.com/webhooks/twenty";
    add(&client, partial_url, &["*.created", "*.updated"], Some("s")).await;
    let partial = subscription::check(&client, partial_url).await.unwrap();
    assert_eq!(partial.missing_operations, ["*.deleted", "*.restored", "*.destroyed"]);
    let text = partial.to_string();
    assert!(text.contains("FAIL") && text.contains("*.deleted, *.restored, *.destroyed"), "{text}");

    let mut other_secret = subscription::check(&client, "https://elsewhere.example.com/hook").await.unwrap();
    assert!(other_secret.passed());
    other_secret.compare_secrets(&[SecretString::from("not-it".to_owned())]);
    assert!(!other_secret.passed(), "a secret the service does not have fails: {other_secret}");
}

#[tokio::test]
async fn errors_from_twenty_say_what_to_do() {
    let fake = FakeTwenty::start().await;
    let mut settings = ClientSettings::new(fake.url(), "wrong-key".to_owned().into());
    settings.rate_limits = Vec::new();
    let wrong_key = TwentyClient::new(settings).unwrap();
    let error = subscription::check(&wrong_key, URL).await.unwrap_err();
    let text = format!("{error:#}");
    assert!(text.contains("TWENTY_API_KEY") && text.contains("GET"), "{text}");
    assert!(!text.contains("wrong-key"), "{text}");
}

// ----- the binary -----

/// The binary on `db`, talking to `fake`.
fn twenty_mirror_on(fake: &FakeTwenty, db: &TestDb) -> Command {
    let mut command = twenty_mirror();
    command
        .env("DATABASE_URL", &db.url)
        .env("TWENTY_API_URL", fake.url())
        .env("TWENTY_API_KEY", FakeTwenty::API_KEY)
        .env("TWENTY_RATE_LIMIT", "1000/s");
    command
}

#[tokio::test]
async fn the_webhook_commands_register_print_the_secret_and_check() {
    let fake = FakeTwenty::start().await;
    let db = TestDb::new().await;

    let output = twenty_mirror_on(&fake, &db)
        .args(["webhook", "check", "--url", "https://mirror.example.com"])
        .output()
        .expect("running webhook check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("no webhook subscription points at") && stdout.contains(URL), "{stdout}");

    let output = twenty_mirror_on(&fake, &db)
        .args(["webhook", "register", "--url", "https://mirror.example.com"])
        .output()
        .expect("running webhook register");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let secret = stdout
        .lines()
        .find_map(|line| line.strip_prefix("TWENTY_WEBHOOK_SECRET="))
        .unwrap_or_else(|| panic!("no secret line: {stdout}"));
    assert!(is_hex_64(secret), "{stdout}");
    let webhooks = fake.webhooks();
    assert_eq!(webhooks.len(), 1);
    assert!(stdout.contains("created") && stdout.contains(webhooks[0]["id"].as_str().unwrap()), "{stdout}");
    assert_eq!(webhooks[0]["secret"], secret);
    assert!(!String::from_utf8_lossy(&output.stderr).contains(secret), "the secret is not logged");

    let output = twenty_mirror_on(&fake, &db)
        .env("TWENTY_WEBHOOK_SECRET", format!("old,{secret}"))
        .args(["webhook", "check", "--url", URL])
        .output()
        .expect("running webhook check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("OK") && !stdout.contains(secret), "{stdout}");

    let output = twenty_mirror_on(&fake, &db)
        .env("TWENTY_WEBHOOK_SECRET", "another")
        .args(["webhook", "check", "--url", URL])
        .output()
        .expect("running webhook check");
    assert_eq!(output.status.code(), Some(1), "a secret the service does not have fails");

    let output = twenty_mirror_on(&fake, &db)
        .args(["webhook", "register", "--url", URL, "--secret", "given-0123456789"])
        .output()
        .expect("running webhook register");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && stdout.contains("updated"), "{stdout}");
    assert!(stdout.contains("TWENTY_WEBHOOK_SECRET=given-0123456789"), "{stdout}");
    assert_eq!(fake.webhooks().len(), 1);
}

#[tokio::test]
async fn the_webhook_commands_need_the_api_settings_and_have_help() {
    let db = TestDb::new().await;
    let output = twenty_mirror()
        .env("DATABASE_URL", &db.url)
        .args(["webhook", "check", "--url", URL])
        .output()
        .expect("running webhook check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("TWENTY_API_URL") && stderr.contains("TWENTY_API_KEY"), "{stderr}");

    for args in
        [&["webhook", "--help"][..], &["webhook", "register", "--help"], &["webhook", "check", "--help"]]
    {
        let output = twenty_mirror().args(args).output().expect("help");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && stdout.contains("Usage"), "{args:?}: {stdout}");
    }
    let output = twenty_mirror().args(["webhook", "register", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("--url") && help.contains("--secret") && help.contains("/webhooks/twenty"),
        "{help}"
    );
}

// ----- serve with PUBLIC_URL -----

/// Log lines written while `f` runs on this thread (the test runtime's only thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn the_check_at_start_warns_naming_what_is_wrong_and_says_when_all_is_well() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);
    add(&client, URL, &["*.created"], Some("s3cr3t-of-the-subscription")).await;

    let logs = Captured::default();
    let report = {
        let _guard = tracing::subscriber::set_default(logs.subscriber());
        subscription::check_at_start(client.clone(), URL.to_owned(), vec![], CancellationToken::new()).await
    };
    assert!(!report.expect("the check ran").passed());
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("*.destroyed") && text.contains("webhook register"),
        "{text}"
    );
    assert!(!text.contains("s3cr3t-of-the-subscription"), "{text}");

    let registered = subscription::register(&client, URL, None).await.unwrap();
    let logs = Captured::default();
    let report = {
        let _guard = tracing::subscriber::set_default(logs.subscriber());
        let secrets = vec![registered.secret.clone()];
        subscription::check_at_start(
            client.clone(),
            "https://mirror.example.com".to_owned(),
            secrets,
            CancellationToken::new(),
        )
        .await
    };
    assert!(report.expect("the check ran").passed());
    let text = logs.text();
    assert!(text.contains("INFO") && !text.contains("WARN"), "{text}");

    let cancelled = CancellationToken::new();
    cancelled.cancel();
    assert!(subscription::check_at_start(client, URL.to_owned(), vec![], cancelled).await.is_none());
}

#[tokio::test]
async fn serve_checks_the_subscription_of_public_url_in_the_background() {
    let fake = FakeTwenty::start().await;
    let logs = Captured::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let mut app = TestApp::spawn_with(
        Options::default()
            .var("TWENTY_API_URL", fake.url())
            .var("TWENTY_API_KEY", FakeTwenty::API_KEY)
            .var("TWENTY_RATE_LIMIT", "1000/s")
            .var("RECONCILE_INTERVAL", "off")
            .var("FULL_SWEEP_INTERVAL", "off")
            .var("PUBLIC_URL", "https://mirror.example.com"),
    )
    .await;
    let health = app.client.get(format!("{}/healthz", app.address)).send().await.unwrap();
    assert!(health.status().is_success());

    let warned = eventually(Duration::from_secs(10), || async {
        logs.text().contains("the webhook subscription in Twenty is not right")
    })
    .await;
    let text = logs.text();
    assert!(warned, "{text}");
    assert!(text.contains("no webhook subscription points at") && text.contains(URL), "{text}");
    assert!(
        fake.requests().iter().any(|r| r.method == "GET" && r.path == "/rest/metadata/webhooks"),
        "the check asked Twenty"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn register_and_check_see_a_subscription_on_page_three() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);
    for n in 0..4 {
        add(&client, &format!("https://other.example.com/{n}"), &["*.*"], Some("x")).await;
    }
    let registered = subscription::register(&client, URL, None).await.unwrap();
    assert_eq!(registered.action, Action::Created);
    // Two a page: the mirror's subscription is alone on the third.
    fake.set_webhook_list_paged(true);
    fake.set_webhook_list_page_size(Some(2));
    let fresh = self::client(&fake);
    let again = subscription::register(&fresh, URL, None).await.unwrap();
    assert_eq!(again.action, Action::Updated);
    assert_eq!(fake.webhooks().len(), 5, "no second subscription");
    assert!(subscription::check(&fresh, "https://mirror.example.com/").await.unwrap().passed());
    let lists = fake.requests().iter().filter(|r| r.method == "GET" && r.path.ends_with("/webhooks")).count();
    assert!(lists >= 6, "register and check each read the three pages: {lists}");
}
