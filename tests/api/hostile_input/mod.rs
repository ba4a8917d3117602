//! Hostile input at `POST /webhooks/twenty`: garbage, oversized and malformed requests get the
//! right 4xx, store only what the design says (a verified delivery that cannot be parsed is kept as
//! `failed`; an unverified one never), leave the mirror untouched, and the service keeps serving.
//!
//! Two fuzz targets are in `fuzz`: a proptest over the pure verify-and-parse path (2,000 cases,
//! `FUZZ_CASES` to change), and a smaller one that posts arbitrary signed bodies to the running app
//! (64 cases, `FUZZ_HTTP_CASES`). Both take a few seconds in a debug build.

mod fuzz;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use twenty_mirror::twenty::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

use crate::helpers::{Options, SECRET, TestApp, delivery, outcome};

/// The record every hostile body names; it must never reach the mirror.
const TARGET: &str = "0b8e1c52-2f7a-4d7c-9d8e-51a1f0c2b3d4";

/// Deterministic noise (xorshift64*), so that a failure reproduces.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The body text the event log keeps for raw bytes: lossy UTF-8 with NUL replaced.
fn as_logged(body: &[u8]) -> String {
    String::from_utf8_lossy(body).replace('\0', "\u{FFFD}")
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Asserts that the hostile record is absent from the mirror.
async fn assert_mirror_untouched(app: &TestApp, case: &str) {
    assert!(app.record("person", TARGET).await.is_none(), "{case}: the mirror must be untouched");
}

/// A normal signed delivery still gets 200 and lands: the service keeps serving.
async fn assert_still_serving(app: &TestApp, case: &str) {
    static CANARY: AtomicU32 = AtomicU32::new(0);
    let id = format!("canary-{}", CANARY.fetch_add(1, Ordering::Relaxed));
    let healthz = app.client.get(format!("{}/healthz", app.address)).send().await;
    assert_eq!(healthz.map(|r| r.status().as_u16()).ok(), Some(200), "{case}: /healthz after");
    let answer = app.deliver_json(&delivery("person.created", &id, 0, json!({}))).await;
    assert_eq!(answer, (200, Some("applied".to_owned())), "{case}: a normal delivery after");
    assert!(app.record("person", &id).await.is_some(), "{case}: the normal delivery landed");
}

/// Asserts that the newest logged delivery is a `failed` one holding `body` as text, and answers
/// how many deliveries the log holds.
async fn assert_kept_as_failed(app: &TestApp, body: &[u8], reason: &str, case: &str) -> usize {
    let events = app.events().await;
    let newest = events.first().unwrap_or_else(|| panic!("{case}: nothing was logged"));
    assert_eq!(newest.outcome, "failed", "{case}");
    let error = newest.error.as_deref().unwrap_or_default();
    assert!(error.contains(reason), "{case}: the logged error {error:?} should mention {reason:?}");
    assert!(newest.body == as_logged(body), "{case}: the logged body is the raw body as text");
    assert!(!newest.body.contains('\0'), "{case}: no NUL in the logged body");
    events.len()
}

/// Sends a signed body and asserts a 400 whose error mentions `reason`.
async fn assert_400(app: &TestApp, body: &[u8], reason: &str, case: &str) {
    let response = app.deliver(body).await;
    assert_eq!(response.status().as_u16(), 400, "{case}");
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains(reason), "{case}: {error:?} should mention {reason:?}");
}

/// Writes raw bytes on a fresh connection and reads the status of the answer: `None` when the
/// server closed or reset the connection without one. Writing and reading run at once, since the
/// server may answer (and stop reading) before the request is all sent.
async fn raw_exchange(app: &TestApp, request: Vec<u8>) -> Option<u16> {
    let address = app.address.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(address).await.expect("connecting");
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
        writer
    });
    let mut head = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed the connection within 10 s");
    write.abort();
    let line = String::from_utf8_lossy(&head);
    line.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse().ok())
}

fn raw_post(headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut request =
        format!("POST /webhooks/twenty HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn signature_headers(body: &[u8]) -> Vec<(String, String)> {
    let ts = now_ms();
    vec![(TIMESTAMP_HEADER.to_owned(), ts.to_string()), (SIGNATURE_HEADER.to_owned(), sign(SECRET, ts, body))]
}

fn target_created(fields: Value) -> Vec<u8> {
    delivery("person.created", TARGET, 0, fields).to_string().into_bytes()
}

/// A delivery of the target whose `notes` field is `len` bytes of text, built without serde_json
/// walking the long string (slow in a debug build).
fn target_with_notes(len: usize) -> Vec<u8> {
    let template = String::from_utf8(target_created(json!({"notes": "NOTES"}))).expect("text");
    template.replacen("NOTES", &"x".repeat(len), 1).into_bytes()
}

// ----- random bytes ------------------------------------------------------------------------------

#[tokio::test]
async fn random_bytes_are_refused_unsigned_and_kept_as_failed_when_signed() {
    let app = TestApp::spawn().await;
    let mut body = noise(4096, 0x5eed);
    body[0] = 0xff; // never valid JSON nor UTF-8, whatever the noise
    body[100] = 0; // and a NUL, which PostgreSQL text cannot hold

    assert_eq!(app.post_webhook(&body, &[]).await.status().as_u16(), 401, "unsigned");
    let forged = hex::encode(noise(32, 7));
    let ts = now_ms().to_string();
    let forged_headers = [(TIMESTAMP_HEADER, ts.as_str()), (SIGNATURE_HEADER, forged.as_str())];
    assert_eq!(app.post_webhook(&body, &forged_headers).await.status().as_u16(), 401, "forged signature");
    assert!(app.events().await.is_empty(), "an unverified delivery is never stored");

    assert_400(&app, &body, "not UTF-8", "signed random bytes").await;
    assert_eq!(assert_kept_as_failed(&app, &body, "not UTF-8", "signed random bytes").await, 1);
    assert_mirror_untouched(&app, "random bytes").await;
    assert_still_serving(&app, "random bytes").await;
}

// ----- huge headers ------------------------------------------------------------------------------

#[tokio::test]
async fn huge_headers_get_401_or_431_and_the_service_keeps_serving() {
    let app = TestApp::spawn().await;
    let body = target_created(json!({}));
    let big = "a".repeat(64 * 1024);

    // 64 KiB is under actix's 128 KiB limit on the request head: the request reaches the handler,
    // and the signature decides. Unsigned or with a 64 KiB signature or timestamp, it is a 401.
    let padding = [("X-Padding", big.as_str())];
    assert_eq!(app.post_webhook(&body, &padding).await.status().as_u16(), 401, "64 KiB, unsigned");
    let ts = now_ms().to_string();
    let long_signature = [(TIMESTAMP_HEADER, ts.as_str()), (SIGNATURE_HEADER, big.as_str())];
    assert_eq!(app.post_webhook(&body, &long_signature).await.status().as_u16(), 401, "64 KiB signature");
    let digits = "1".repeat(64 * 1024);
    let long_timestamp = [(TIMESTAMP_HEADER, digits.as_str()), (SIGNATURE_HEADER, "00")];
    assert_eq!(app.post_webhook(&body, &long_timestamp).await.status().as_u16(), 401, "64 KiB timestamp");
    assert!(app.events().await.is_empty(), "nothing unverified is stored");
    assert_mirror_untouched(&app, "64 KiB headers").await;

    // Over the limit, actix answers 431 (or closes the connection) before any handler runs.
    let mut headers = signature_headers(&body);
    headers.push(("X-Padding".to_owned(), "a".repeat(256 * 1024)));
    let status = raw_exchange(&app, raw_post(&headers, &body)).await;
    assert!(matches!(status, None | Some(431)), "a 256 KiB header: {status:?}");

    // More than actix's 96 header fields: also a 431.
    let mut headers = signature_headers(&body);
    headers.extend((0..200).map(|i| (format!("X-Many-{i}"), "v".to_owned())));
    let status = raw_exchange(&app, raw_post(&headers, &body)).await;
    assert!(matches!(status, None | Some(431)), "200 headers: {status:?}");

    assert!(app.events().await.is_empty(), "nothing is stored from a refused head");
    assert_mirror_untouched(&app, "huge headers").await;
    assert_still_serving(&app, "huge headers").await;

    // And a signed delivery carrying 64 KiB of padding is processed like any other.
    let mut headers = signature_headers(&body);
    headers.push(("X-Padding".to_owned(), big));
    let status = raw_exchange(&app, raw_post(&headers, &body)).await;
    assert_eq!(status, Some(200), "64 KiB of headers is inside actix's 128 KiB head limit");
    assert!(app.record("person", TARGET).await.is_some());
}

// ----- deep nesting ------------------------------------------------------------------------------

#[tokio::test]
async fn deeply_nested_json_is_kept_as_failed_without_a_crash() {
    let app = TestApp::spawn().await;
    // At the top level the envelope's first field refuses a sequence before any recursion.
    let brackets = "[".repeat(100_000).into_bytes();
    assert_400(&app, &brackets, "not a JSON delivery", "100,000 [").await;
    assert_kept_as_failed(&app, &brackets, "not a JSON delivery", "100,000 [").await;

    let objects = r#"{"a":"#.repeat(100_000).into_bytes();
    assert_400(&app, &objects, "not a JSON delivery", "100,000 {, unclosed").await;
    assert_kept_as_failed(&app, &objects, "not a JSON delivery", "100,000 {, unclosed").await;

    // Inside an otherwise valid record: the whole delivery fails, the record is not applied.
    let mut nested = target_created(json!({"deep": "HERE"}));
    let at = nested.windows(6).position(|w| w == b"\"HERE\"").expect("the marker");
    nested.splice(at..at + 6, format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)).into_bytes());
    assert_400(&app, &nested, "recursion limit", "nested inside a record").await;
    assert_eq!(assert_kept_as_failed(&app, &nested, "recursion limit", "nested in a record").await, 3);
    assert_mirror_untouched(&app, "deep nesting").await;

    // In a field the envelope does not read, serde_json skips the value without recursing: no
    // limit applies, and the delivery is handled like any other (the body is only kept as text).
    let mut ignored = target_created(json!({}));
    ignored.truncate(ignored.len() - 1);
    ignored.extend_from_slice(
        format!(r#","extra":{}1{}}}"#, r#"{"a":"#.repeat(100_000), "}".repeat(100_000)).as_bytes(),
    );
    let (status, outcome) = outcome(app.deliver(&ignored).await).await;
    eprintln!("100,000 levels in an unknown field: {status} {outcome:?}");
    assert!(matches!(status, 200 | 400), "100,000 levels in an unknown field: {status}");
    let newest = app.events().await.into_iter().next().expect("logged");
    assert_eq!(newest.body.len(), ignored.len(), "logged whole");
    assert_still_serving(&app, "deep nesting").await;

    // Just under serde_json's limit of 128 (the envelope and the record take two levels), a record
    // is stored as sent, on both backends.
    let depth = 120;
    let mut deep = json!("bottom");
    for _ in 0..depth {
        deep = json!([deep]);
    }
    let answer =
        app.deliver_json(&delivery("person.created", "deep-but-legal", 0, json!({ "deep": deep }))).await;
    assert_eq!(answer, (200, Some("applied".to_owned())), "{depth} levels inside a record");
    let stored = app.record("person", "deep-but-legal").await.expect("stored");
    assert_eq!(stored.data["deep"], deep);
}

// ----- oversized bodies --------------------------------------------------------------------------

#[tokio::test]
async fn a_signed_ten_megabyte_body_gets_413_and_stores_nothing() {
    let app = TestApp::spawn().await; // the default limit: 2 MiB
    let body = target_with_notes(10 * 1024 * 1024);
    let response = app.deliver(&body).await;
    assert_eq!(response.status().as_u16(), 413);

    // Without a Content-Length the limit holds too: a chunked body is cut off once over it. The
    // limit applies before the signature is checked (here a wrong one): the body is read first.
    let mut request = format!(
        "POST /webhooks/twenty HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n{TIMESTAMP_HEADER}: {}\r\n{SIGNATURE_HEADER}: {}\r\n\r\n",
        now_ms(),
        "00"
    )
    .into_bytes();
    let chunked_body = &body[..3 * 1024 * 1024];
    for chunk in chunked_body.chunks(64 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let status = raw_exchange(&app, request).await;
    assert!(matches!(status, None | Some(413)), "a 3 MiB chunked body: {status:?}");

    assert!(app.events().await.is_empty(), "nothing over the limit is stored");
    assert_mirror_untouched(&app, "10 MB body").await;
    assert_still_serving(&app, "10 MB body").await;
}

#[tokio::test]
async fn a_ten_megabyte_field_under_a_raised_limit_is_answered_cleanly() {
    let app = TestApp::spawn_with(Options::default().var("WEBHOOK_MAX_BODY", "16MiB")).await;
    let notes_len = 10 * 1024 * 1024;
    let body = target_with_notes(notes_len);
    let started = Instant::now();
    let response = app.deliver(&body).await;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    eprintln!("a 10 MB field under a 16 MiB limit: {status} {answer} in {:?}", started.elapsed());
    assert!(matches!(status, 200 | 400..=499 | 503), "a clean answer, not a crash: {status} {answer}");
    if status == 200 {
        assert_eq!(answer["outcome"], "applied");
        let stored = app.record("person", TARGET).await.expect("the record");
        assert_eq!(stored.data["notes"].as_str().map(str::len), Some(notes_len), "stored whole");
        assert_eq!(app.events().await.first().map(|e| e.body.len()), Some(body.len()), "logged whole");
    }
    assert_still_serving(&app, "10 MB field").await;
}

// ----- replays -----------------------------------------------------------------------------------

#[tokio::test]
async fn replays_outside_the_tolerance_are_refused_and_inside_it_are_duplicates() {
    let app = TestApp::spawn().await;
    let body = target_created(json!({"jobTitle": "CTO"}));
    let ten_minutes_ago = now_ms() - 10 * 60 * 1000;
    let response = app.deliver_signed(&body, SECRET, ten_minutes_ago).await;
    assert_eq!(response.status().as_u16(), 401, "a delivery signed 10 minutes ago");
    assert!(app.events().await.is_empty(), "a stale replay is never stored");
    assert_mirror_untouched(&app, "stale replay").await;

    let ts = now_ms();
    assert_eq!(outcome(app.deliver_signed(&body, SECRET, ts).await).await, (200, Some("applied".to_owned())));
    let first = app.record("person", TARGET).await.expect("applied");
    // The very same request again, inside the tolerance: acknowledged, changes nothing.
    let again = outcome(app.deliver_signed(&body, SECRET, ts).await).await;
    assert_eq!(again, (200, Some("duplicate".to_owned())));
    let after = app.record("person", TARGET).await.expect("still there");
    assert_eq!((after.data, after.updated_at), (first.data, first.updated_at));
    let outcomes: Vec<String> = app.events().await.into_iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes, ["duplicate", "applied"]);
}

// ----- valid JSON, wrong types -------------------------------------------------------------------

#[tokio::test]
async fn valid_json_with_wrong_types_is_kept_as_failed() {
    let app = TestApp::spawn().await;
    let good = delivery("person.created", TARGET, 0, json!({}));
    let with = |pointer: &str, value: Value| {
        let mut body = good.clone();
        *body.pointer_mut(pointer).expect("a field of the delivery") = value;
        body.to_string().into_bytes()
    };
    let out_of_range = String::from_utf8(with("/record/createdAt", json!("HUGE")))
        .expect("text")
        .replace("\"HUGE\"", "1e400")
        .into_bytes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("eventName a number", with("/eventName", json!(42)), "not a JSON delivery"),
        ("eventName null", with("/eventName", Value::Null), "eventName is missing"),
        ("eventDate a number", with("/eventDate", json!(1)), "not a JSON delivery"),
        ("record a string", with("/record", json!("a string")), "record is not a JSON object"),
        ("record an array", with("/record", json!([TARGET])), "record is not a JSON object"),
        ("record null", with("/record", Value::Null), "record is missing"),
        ("record.id a number", with("/record/id", json!(42)), "record.id"),
        ("record.id empty", with("/record/id", json!("")), "record.id"),
        ("updatedAt not a date", with("/record/updatedAt", json!("yesterday")), "updatedAt"),
        ("updatedAt a number", with("/record/updatedAt", json!(1_758_452_400_000_i64)), "updatedAt"),
        ("updatedAt an object", with("/record/updatedAt", json!({})), "updatedAt"),
        ("deletedAt not a date", with("/record/deletedAt", json!("soon")), "deletedAt"),
        ("the body an array", b"[1,2,3]".to_vec(), "not a JSON delivery"),
        ("the body a string", br#""person.created""#.to_vec(), "not a JSON delivery"),
        ("the body null", b"null".to_vec(), "not a JSON delivery"),
        ("a number out of range", out_of_range, "not a JSON delivery"),
        ("a duplicate key", br#"{"eventName":"person.created","eventName":"x"}"#.to_vec(), "duplicate"),
    ];
    for (index, (case, body, reason)) in cases.into_iter().enumerate() {
        assert_400(&app, &body, reason, case).await;
        assert_eq!(assert_kept_as_failed(&app, &body, reason, case).await, index + 1, "{case}");
    }
    assert_mirror_untouched(&app, "wrong types").await;
    assert_still_serving(&app, "wrong types").await;
}

// ----- NUL bytes, invalid UTF-8 ------------------------------------------------------------------

#[tokio::test]
async fn raw_nul_bytes_and_invalid_utf8_are_kept_as_failed_with_the_body_as_text() {
    let app = TestApp::spawn().await;
    let good = target_created(json!({"name": {"firstName": "MARK"}}));
    let at = good.windows(4).position(|w| w == b"MARK").expect("the marker");
    let with = |bytes: &[u8]| [&good[..at], bytes, &good[at + 4..]].concat();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a raw NUL in a string", with(b"a\0b"), "control character"),
        ("a raw NUL between tokens", [b"\0", &good[..]].concat(), "not a JSON delivery"),
        ("invalid UTF-8 in a string", with(b"\xff\xfe\xc3"), "not UTF-8"),
        ("an overlong encoding", with(b"\xc0\xaf"), "not UTF-8"),
        ("a lone surrogate escape", with(b"\\ud800"), "not a JSON delivery"),
    ];
    for (index, (case, body, reason)) in cases.into_iter().enumerate() {
        assert_400(&app, &body, reason, case).await;
        assert_eq!(assert_kept_as_failed(&app, &body, reason, case).await, index + 1, "{case}");
    }
    assert_mirror_untouched(&app, "NUL and invalid UTF-8").await;

    // Invalid UTF-8 in a field the envelope does not read (serde_json would skip it unchecked) is
    // refused all the same, and the log holds the body as text.
    let mut lax = target_created(json!({}));
    lax.truncate(lax.len() - 1);
    lax.extend_from_slice(b",\"unknown\":\"\xff\xfe\"}");
    let (status, _) = outcome(app.deliver(&lax).await).await;
    assert_eq!(status, 400, "invalid UTF-8 in an unknown field");
    let newest = app.events().await.into_iter().next().expect("logged");
    assert_eq!(newest.body, as_logged(&lax), "logged as text");
    assert_still_serving(&app, "NUL and invalid UTF-8").await;
}

/// `\u0000` is a valid JSON escape: the body parses, and the NUL reaches the record, its id or the
/// event name. PostgreSQL holds NUL in neither `text` nor `jsonb`, so both backends refuse it: 400,
/// and logged as failed, never 5xx.
#[tokio::test]
async fn escaped_nul_characters_get_400_and_are_logged_as_failed() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, Value)> = vec![
        ("in a field", delivery("person.created", TARGET, 0, json!({"jobTitle": "a\u{0}b"}))),
        ("in a field name", delivery("person.created", TARGET, 0, json!({"job\u{0}Title": "CTO"}))),
        ("in the record id", delivery("person.created", "nul\u{0}id", 0, json!({}))),
        ("in the object", delivery("per\u{0}son.created", TARGET, 0, json!({}))),
        ("in a metadata event name", json!({"eventName": "metadata.\u{0}", "record": {}})),
    ];
    let mut failures = Vec::new();
    for (case, body) in cases {
        let logged_before = app.store.recent_events(1_000).await.map(|e| e.len()).unwrap_or_default();
        let (status, outcome) = app.deliver_json(&body).await;
        let logged_after = app.store.recent_events(1_000).await.map(|e| e.len()).unwrap_or_default();
        if status != 400 || logged_after != logged_before + 1 {
            failures
                .push(format!("NUL {case}: {status} {outcome:?}, logged {}", logged_after - logged_before));
        }
    }
    assert_still_serving(&app, "escaped NUL").await;

    // Whatever happens to it, a bad delivery must not take down the good ones that share its
    // group commit: fire one with NUL among sixteen good ones, all at once.
    let post = |body: Vec<u8>| {
        let (client, url) = (app.client.clone(), format!("{}/webhooks/twenty", app.address));
        tokio::spawn(async move {
            let ts = now_ms();
            let response = client
                .post(url)
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(SIGNATURE_HEADER, sign(SECRET, ts, &body))
                .body(body)
                .send()
                .await;
            response.map(|r| r.status().as_u16()).unwrap_or_default()
        })
    };
    let bad =
        post(delivery("person.created", "nul-batch", 0, json!({"x": "\u{0}"})).to_string().into_bytes());
    let good: Vec<_> = (0..16)
        .map(|i| {
            post(delivery("person.created", &format!("batch-{i}"), 0, json!({})).to_string().into_bytes())
        })
        .collect();
    for (i, answer) in good.into_iter().enumerate() {
        assert_eq!(answer.await.expect("a task"), 200, "good delivery {i} beside a bad one");
    }
    let bad = bad.await.expect("a task");
    if bad != 400 {
        failures.push(format!("NUL among good deliveries: {bad}"));
    }
    assert!(failures.is_empty(), "on {}: {failures:#?}", app.store.backend());
}

/// A version outside years 0000–9999 once in UTC: chrono writes it `+10000-…` or `-0001-…`, which
/// is not the fixed-width text the SQLite backend orders and parses. It must be refused (400,
/// logged as failed) or stored so that the record and the event log still read back.
#[tokio::test]
async fn versions_outside_years_0_to_9999_are_refused_or_read_back() {
    let app = TestApp::spawn().await;
    for (id, updated_at) in
        [("after-9999", "9999-12-31T23:00:00-05:00"), ("before-0", "0000-01-01T00:00:00+05:00")]
    {
        let body = json!({"eventName": "person.created", "record": {"id": id, "updatedAt": updated_at}});
        let (status, _) = app.deliver_json(&body).await;
        assert!(matches!(status, 200 | 400), "{id}: {status}");
        let record = app.store.fetch_record("person", id).await;
        assert!(record.is_ok(), "{id}: the record reads back on {}: {record:?}", app.store.backend());
        let events = app.store.recent_events(1_000).await;
        assert!(events.is_ok(), "{id}: the event log reads back on {}: {events:?}", app.store.backend());
        if status == 200 {
            let expected = DateTime::parse_from_rfc3339(updated_at).expect("a date").with_timezone(&Utc);
            assert_eq!(record.ok().flatten().map(|r| r.updated_at), Some(expected), "{id}");
        }
    }
    assert_still_serving(&app, "out-of-range years").await;
}

// ----- Content-Type and method -------------------------------------------------------------------

#[tokio::test]
async fn the_content_type_does_not_matter_and_other_methods_are_not_served() {
    let app = TestApp::spawn().await;
    for (index, content_type) in
        [Some("text/plain"), None, Some("application/x-www-form-urlencoded")].into_iter().enumerate()
    {
        let body = delivery("person.updated", TARGET, index as i64 * 1_000, json!({})).to_string();
        let ts = now_ms();
        let mut request = app
            .client
            .post(format!("{}/webhooks/twenty", app.address))
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign(SECRET, ts, body.as_bytes()))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let answer = outcome(request.send().await.expect("sending")).await;
        assert_eq!(answer, (200, Some("applied".to_owned())), "Content-Type {content_type:?}");
    }

    // Other methods on the path: actix answers 404 (not 405) for a path whose only route is
    // `web::post()`. Either is fine; nothing is stored.
    let url = format!("{}/webhooks/twenty", app.address);
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let response = app.client.request(method.clone(), &url).send().await.expect("sending");
        assert!(matches!(response.status().as_u16(), 404 | 405), "{method}: {}", response.status());
    }
    assert_eq!(app.events().await.len(), 3, "only the three POSTs are logged");
}
