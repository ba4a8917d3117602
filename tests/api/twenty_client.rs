//! The Twenty client against the fake Twenty: what it sends, what it retries and how long it waits,
//! which failures end a call at once, and what its errors say.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::helpers::fake_twenty::{FakeTwenty, Fault, MetadataShape};
use secrecy::SecretString;
use serde_json::{Value, json};
use twenty_mirror::twenty::client::{
    ClientError, ClientSettings, PAGE_SIZE, RateLimit, RetryPolicy, SubscriptionFields, TransientCause,
    TwentyClient,
};

const SECRET: &str = "hush-hush";

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// No pacing and retries a few milliseconds apart, so that tests of failures stay quick.
fn fast_settings(base_url: &str) -> ClientSettings {
    ClientSettings {
        base_url: base_url.to_owned(),
        api_key: SecretString::from(FakeTwenty::API_KEY),
        rate_limits: Vec::new(),
        timeout: Duration::from_secs(2),
        retry: RetryPolicy { max_attempts: 4, base_delay: ms(1), max_delay: ms(5) },
    }
}

fn client(fake: &FakeTwenty) -> TwentyClient {
    TwentyClient::new(fast_settings(fake.url())).expect("a Twenty client")
}

/// A budget far above what a test spends: a rate-limited retry then waits about a millisecond
/// instead of the second it waits when the client knows no limit.
fn generous_budget() -> Vec<RateLimit> {
    vec![RateLimit::new(1_000, Duration::from_secs(1))]
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// A raw query string as the server decodes it.
fn decoded(raw_query: &str) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://fake.test/?{raw_query}")).expect("a URL");
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn fields() -> SubscriptionFields {
    SubscriptionFields {
        target_url: "https://m.example/webhooks/twenty".into(),
        operations: vec!["*.*".into()],
        description: Some("twenty-mirror".into()),
        secret: Some(SecretString::from(SECRET)),
    }
}

#[tokio::test]
async fn server_errors_are_retried_and_parameters_are_encoded() {
    let fake = FakeTwenty::start().await;
    let people: Vec<Value> = (0..=PAGE_SIZE)
        .map(|i| json!({"id": format!("p{i:03}"), "updatedAt": "2026-01-01T10:00:00.000Z", "extra": true}))
        .collect();
    fake.bulk_insert("person", people);
    fake.inject(Fault::Status(500), 1);
    fake.inject(Fault::Status(503), 1);
    let client = client(&fake);
    let filter = r#"or(updatedAt[gte]:"2020-01-01T00:00:00.000Z",deletedAt[gte]:"2020-01-01T00:00:00.000Z")"#;
    let order_by = "updatedAt[AscNullsFirst]";
    let page = client.list_page("people", Some(filter), Some(order_by), None).await.unwrap();
    assert_eq!(page.records.len(), PAGE_SIZE as usize);
    assert_eq!(page.records[0]["extra"], true, "keys Twenty sends are kept");
    assert!(page.has_next_page);
    assert_eq!(page.total_count, Some(u64::from(PAGE_SIZE) + 1));

    let stats = client.stats();
    assert_eq!(stats.requests, counts(&[("200", 1), ("500", 1), ("503", 1)]));
    assert_eq!(stats.retries, 2);

    let log = fake.requests();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|r| r.method == "GET" && r.path == "/rest/people"), "{log:?}");
    let sent = &log[2];
    assert!(!sent.query.contains(['"', '[', ' ']), "{}", sent.query);
    let pairs = decoded(&sent.query);
    assert_eq!(param(&pairs, "limit"), Some("200"));
    assert_eq!(param(&pairs, "depth"), Some("0"));
    assert_eq!(param(&pairs, "filter"), Some(filter));
    assert_eq!(param(&pairs, "order_by"), Some(order_by));
    assert_eq!(param(&pairs, "starting_after"), None);

    let cursor = page.end_cursor.expect("a cursor");
    let last = client.list_page("people", Some(filter), Some(order_by), Some(&cursor)).await.unwrap();
    assert_eq!(last.records.len(), 1);
    assert!(!last.has_next_page);

    // A cursor is passed through as given; `+`, `/` and `=` reach the server intact.
    let odd = "cursor+/==";
    let refused = client.list_page("people", None, None, Some(odd)).await.unwrap_err();
    assert_eq!(refused.status(), Some(400));
    assert!(
        refused.to_string().contains("Invalid cursor: cursor+/=="),
        "the server saw the cursor sent: {refused}"
    );
    let sent = fake.requests().pop().expect("a request");
    assert_eq!(param(&decoded(&sent.query), "starting_after"), Some(odd));
}

#[tokio::test]
async fn a_429_empties_our_budget_and_waits_a_refill_interval() {
    let fake = FakeTwenty::start().await;
    fake.inject(Fault::Status(429), 1);
    let mut settings = fast_settings(fake.url());
    // A token every 202 ms (1% under 5 a second): the retry may not go out sooner.
    settings.rate_limits = vec![RateLimit::new(5, Duration::from_secs(1))];
    let client = TwentyClient::new(settings).unwrap();
    let started = Instant::now();
    client.list_page("people", None, None, None).await.unwrap();
    assert!(started.elapsed() >= ms(200), "{:?}", started.elapsed());
    let stats = client.stats();
    assert_eq!(stats.requests, counts(&[("200", 1), ("429", 1)]));
    assert_eq!(stats.retries, 1);
    assert!(stats.retry_wait >= ms(200), "{stats:?}");
    assert_eq!(stats.rate_limit_wait, Duration::ZERO, "{stats:?}");

    // Our bucket was emptied as the server's was: the next request waits for a token rather than
    // spending one of the three that were left before the 429.
    client.list_page("people", None, None, None).await.unwrap();
    let stats = client.stats();
    assert!(stats.rate_limit_wait >= ms(100), "{stats:?}");
}

#[tokio::test]
async fn an_old_limit_reached_400_is_a_rate_limit_and_without_limits_waits_a_second() {
    let fake = FakeTwenty::start().await;
    fake.inject(Fault::LimitReached400, 1);
    let client = client(&fake);
    let started = Instant::now();
    client.list_page("people", None, None, None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(client.stats().requests, counts(&[("200", 1), ("400", 1)]));
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn a_refused_key_fails_at_once_and_says_so() {
    let fake = FakeTwenty::start().await;
    // A 401 that quotes the key it was sent: the client's report must not.
    fake.inject(Fault::Quoting(401), 1);
    let client = client(&fake);
    let error = client.list_page("people", None, None, None).await.unwrap_err();
    assert!(matches!(error, ClientError::Unauthorized { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("TWENTY_API_KEY") && text.contains("Bearer [redacted]"), "{text}");
    assert!(!text.contains(FakeTwenty::API_KEY), "{text}");
    assert!(!format!("{error:?}").contains(FakeTwenty::API_KEY), "{error:?}");
    assert_eq!(client.stats().requests, counts(&[("401", 1)]));
    assert_eq!(client.stats().retries, 0);

    let mut settings = fast_settings(fake.url());
    settings.api_key = SecretString::from("not-the-key");
    let stranger = TwentyClient::new(settings).unwrap();
    let error = stranger.objects().await.unwrap_err();
    assert!(matches!(error, ClientError::Unauthorized { .. }), "{error:?}");
    assert_eq!(stranger.stats().retries, 0);
}

#[tokio::test]
async fn other_client_errors_fail_at_once_with_their_message() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);
    let unknown = client.list_page("peoples", None, None, None).await.unwrap_err();
    assert!(matches!(unknown, ClientError::Rejected { status: 400, .. }), "{unknown:?}");
    let text = unknown.to_string();
    assert!(text.contains(&format!("{}/rest/peoples", fake.url())), "{text}");
    assert!(text.contains("object 'peoples' not found"), "Twenty's message is kept: {text}");

    fake.inject(Fault::Status(403), 1);
    let forbidden = client.list_page("people", None, None, None).await.unwrap_err();
    assert!(matches!(forbidden, ClientError::Forbidden { .. }), "{forbidden}");
    assert!(forbidden.to_string().contains("read access to this object"), "{forbidden}");

    let rejected = client.list_page("people", Some("x"), None, None).await.unwrap_err();
    assert!(matches!(rejected, ClientError::Rejected { status: 400, .. }), "{rejected:?}");
    assert!(rejected.to_string().contains("invalid filter"), "{rejected}");
    assert!(!rejected.is_transient());
    assert_eq!(client.stats().requests, counts(&[("400", 2), ("403", 1)]));
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn exhausted_retries_name_the_last_cause_and_the_attempts() {
    let fake = FakeTwenty::start().await;
    fake.fail_always(Some(Fault::Status(503)));
    let client = client(&fake);
    let error = client.list_page("people", None, None, None).await.unwrap_err();
    match &error {
        ClientError::Exhausted {
            attempts: 4,
            cause: TransientCause::Server { status: 503, message },
            ..
        } => {
            assert!(message.contains("503 Service Unavailable"), "the proxy's page, as text: {message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(error.is_transient() && error.to_string().contains("4 times"), "{error}");
    assert_eq!(error.status(), Some(503));
    assert_eq!(client.stats().requests, counts(&[("503", 4)]));
    assert_eq!(client.stats().retries, 3);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let fake = FakeTwenty::start().await;
    fake.inject(Fault::Delay(ms(1_000)), 1);
    let mut settings = fast_settings(fake.url());
    settings.timeout = ms(150);
    let client = TwentyClient::new(settings).unwrap();
    client.list_page("people", None, None, None).await.unwrap();
    assert_eq!(client.stats().requests, counts(&[("200", 1), ("error", 1)]));
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut settings = fast_settings(&format!("http://127.0.0.1:{port}"));
    settings.retry.max_attempts = 3;
    let client = TwentyClient::new(settings).unwrap();
    let error = client.objects().await.unwrap_err();
    assert!(
        matches!(error, ClientError::Exhausted { attempts: 3, cause: TransientCause::Connection(_), .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("cannot connect"), "{error}");
    assert_eq!(client.stats().requests, counts(&[("error", 3)]));
}

#[tokio::test]
async fn objects_follow_the_metadata_pages_in_both_shapes() {
    for shape in [MetadataShape::Nested, MetadataShape::Flat] {
        let fake = FakeTwenty::start().await;
        fake.set_metadata_shape(shape);
        fake.set_metadata_page_size(Some(2));
        let client = client(&fake);
        let objects = client.objects().await.unwrap();
        let names: Vec<&str> = objects.iter().map(|o| o.name_plural.as_str()).collect();
        assert_eq!(names, ["people", "companies", "opportunities", "workspaceMembers", "legacyThings"]);
        let mirrored: Vec<&str> =
            objects.iter().filter(|o| o.is_mirrored_by_default()).map(|o| o.name_singular.as_str()).collect();
        assert_eq!(mirrored, ["person", "company", "opportunity"], "{shape:?}");

        let log = fake.requests();
        assert_eq!(log.len(), 3, "{shape:?}: {log:?}");
        assert!(log.iter().all(|r| r.path == "/rest/metadata/objects"));
        let cursors: Vec<Option<String>> =
            log.iter().map(|r| param(&decoded(&r.query), "starting_after").map(str::to_owned)).collect();
        assert_eq!(cursors[0], None);
        assert!(cursors[1].is_some() && cursors[2].is_some() && cursors[1] != cursors[2], "{cursors:?}");
    }
}

#[tokio::test]
async fn subscription_pages_are_followed() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);
    let mut created = Vec::new();
    for _ in 0..3 {
        created.push(client.create_subscription(&fields()).await.unwrap().id);
    }
    fake.set_webhook_list_paged(true);
    fake.set_webhook_list_page_size(Some(2));
    fake.reset_requests();
    let listed: Vec<String> = client.subscriptions().await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, created);
    let log = fake.requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log.iter().all(|r| r.path == "/rest/metadata/webhooks"));
    assert_eq!(param(&decoded(&log[0].query), "starting_after"), None);
    assert!(param(&decoded(&log[1].query), "starting_after").is_some(), "{log:?}");
}

#[tokio::test]
async fn a_create_is_not_repeated_once_twenty_may_have_acted() {
    let fake = FakeTwenty::start().await;
    fake.inject_webhooks(Fault::Status(429), 1);
    // A 500 that quotes the request, the secret in its body included.
    fake.inject_webhooks(Fault::Quoting(500), 1);
    let mut settings = fast_settings(fake.url());
    settings.rate_limits = generous_budget();
    let client = TwentyClient::new(settings).unwrap();
    let error = client.create_subscription(&fields()).await.unwrap_err();
    assert!(matches!(error, ClientError::NotRetried { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.starts_with("POST ") && text.contains("not retried"), "{text}");
    assert!(
        !text.contains(SECRET) && text.contains(r#""secret":"[redacted]""#),
        "the secret is scrubbed: {text}"
    );
    assert!(!text.contains(FakeTwenty::API_KEY), "{text}");
    assert!(error.is_transient());
    assert_eq!(error.status(), Some(500));
    assert_eq!(client.stats().requests, counts(&[("429", 1), ("500", 1)]), "the 429 alone was retried");
    assert!(fake.webhooks().is_empty());
}

#[tokio::test]
async fn an_update_is_retried_like_a_read() {
    let fake = FakeTwenty::start().await;
    let client = client(&fake);
    let id = client.create_subscription(&fields()).await.unwrap().id;
    fake.reset_requests();
    fake.inject_webhooks(Fault::Status(503), 1);
    let changed = SubscriptionFields { operations: vec!["person.*".into()], ..fields() };
    let updated = client.update_subscription(&id, &changed).await.unwrap();
    assert_eq!(updated.id, id);
    assert_eq!(updated.operations, ["person.*"]);
    assert_eq!(client.webhooks_path(), Some("/rest/metadata/webhooks"));
    let log: Vec<(String, String)> = fake.requests().into_iter().map(|r| (r.method, r.path)).collect();
    let path = format!("/rest/metadata/webhooks/{id}");
    assert_eq!(log, [("PATCH".to_owned(), path.clone()), ("PATCH".to_owned(), path)]);
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn neither_webhooks_path_says_so_and_a_403_names_the_permission() {
    let fake = FakeTwenty::start().await;
    // The metadata path answers 404 once; the older path is not served at all.
    fake.inject_webhooks(Fault::Status(404), 1);
    let client = client(&fake);
    let error = client.subscriptions().await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("/rest/webhooks") && text.contains("/rest/metadata/webhooks answered 404"),
        "{text}"
    );
    assert!(text.contains("the webhook subscription exists"), "{text}");
    assert_eq!(client.webhooks_path(), None, "nothing was found, nothing is kept");
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/rest/metadata/webhooks", "/rest/webhooks"]);

    fake.inject_webhooks(Fault::Status(403), 1);
    let forbidden = client.create_subscription(&fields()).await.unwrap_err();
    assert!(matches!(forbidden, ClientError::Forbidden { .. }), "{forbidden:?}");
    assert!(forbidden.to_string().contains("manage API keys and webhooks"), "{forbidden}");
}

#[tokio::test]
async fn a_body_that_is_not_twentys_is_reported() {
    let fake = FakeTwenty::start().await;
    fake.inject(Fault::Body("<!doctype html><title>Twenty</title>".into()), 1);
    let other_object = json!({"data": {"companies": []}, "pageInfo": {"hasNextPage": false}});
    fake.inject(Fault::Body(other_object.to_string()), 1);
    let client = client(&fake);
    let html = client.list_page("people", None, None, None).await.unwrap_err();
    assert!(matches!(html, ClientError::UnexpectedResponse { status: 200, .. }), "{html:?}");
    assert!(html.to_string().contains("TWENTY_API_URL"), "{html}");
    let wrong = client.list_page("people", None, None, None).await.unwrap_err();
    assert!(matches!(wrong, ClientError::UnexpectedResponse { status: 200, .. }), "{wrong:?}");
    assert!(wrong.to_string().contains("companies"), "{wrong}");
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn retry_after_holds_the_retry_and_every_other_request() {
    let fake = FakeTwenty::start().await;
    fake.inject(Fault::RetryAfter(1), 1);
    let mut settings = fast_settings(fake.url());
    settings.rate_limits = generous_budget();
    settings.retry.max_attempts = 1;
    let client = TwentyClient::new(settings).unwrap();
    let error = client.list_page("people", None, None, None).await.unwrap_err();
    assert!(
        matches!(
            &error,
            ClientError::Exhausted { cause: TransientCause::RateLimited { retry_after: Some(_), .. }, .. }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("asked to wait 1 s"), "{error}");
    // Another kind of request, right after: it waits for the Retry-After too.
    client.objects().await.unwrap();
    let log = fake.requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[1].at - log[0].at >= Duration::from_secs(1), "{:?}", log[1].at - log[0].at);

    // With retries, the retry waits as long.
    fake.inject(Fault::RetryAfter(1), 1);
    let client = self::client(&fake);
    fake.reset_requests();
    client.list_page("people", None, None, None).await.unwrap();
    let log = fake.requests();
    assert_eq!(log.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    assert!(log[1].at - log[0].at >= Duration::from_secs(1), "{:?}", log[1].at - log[0].at);
}

#[tokio::test]
async fn a_key_budget_below_ours_yields_few_429s() {
    let fake = FakeTwenty::start().await;
    // 4 a second for this key, while the client thinks it may send 100 a second.
    fake.set_key_limit(Some((4, 1)));
    let mut settings = fast_settings(fake.url());
    settings.rate_limits = vec![RateLimit::new(100, Duration::from_secs(1))];
    let client = TwentyClient::new(settings).unwrap();
    for _ in 0..14 {
        client.list_page("people", None, None, None).await.unwrap();
    }
    let log = fake.requests();
    let refused = log.iter().filter(|r| r.status == 429).count();
    assert!(refused <= 1, "{refused} 429s: {:?}", log.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(log.len() - refused, 14);
}

#[tokio::test]
async fn a_spent_quota_fails_at_once_and_says_when_to_try_again() {
    let fake = FakeTwenty::start().await;
    fake.set_quota(2, Some(3_600));
    let client = client(&fake);
    for _ in 0..2 {
        client.list_page("people", None, None, None).await.unwrap();
    }
    let error = client.list_page("people", None, None, None).await.unwrap_err();
    assert!(error.is_quota_exhausted() && !error.is_transient(), "{error:?}");
    assert_eq!(error.status(), Some(402));
    let retry_at = error.quota_retry_after().expect("Twenty said when");
    let wait = retry_at - chrono::Utc::now();
    assert!((3_590..=3_600).contains(&wait.num_seconds()), "{wait}");
    let text = error.to_string();
    assert!(text.contains("quota is exhausted") && text.contains("try again after"), "{text}");
    assert_eq!(client.stats().requests, counts(&[("200", 2), ("402", 1)]));
    assert_eq!(client.stats().retries, 0);

    // Without a time, the message says so.
    let fake = FakeTwenty::start().await;
    fake.set_quota(0, None);
    let error = self::client(&fake).objects().await.unwrap_err();
    assert!(error.is_quota_exhausted() && error.quota_retry_after().is_none(), "{error:?}");
    assert!(error.to_string().contains("did not say when"), "{error}");
    assert_eq!(fake.request_count(), 1);
}
