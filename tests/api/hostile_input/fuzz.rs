//! Two fuzz targets: a proptest over the pure verify-and-parse path (2,000 cases, `FUZZ_CASES` to
//! change), and a smaller one that posts arbitrary signed bodies to the running app (64 cases,
//! `FUZZ_HTTP_CASES`). Both take a few seconds in a debug build.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use twenty_mirror::http::webhooks::parse_delivery;
use twenty_mirror::mirror::Disposition;
use twenty_mirror::twenty::signature::{
    Refusal, SIGNATURE_HEADER, SignatureHeaders, SignaturePolicy, TIMESTAMP_HEADER, Verified, sign, verify,
};

use super::{as_logged, assert_still_serving, now_ms};
use crate::helpers::{Options, SECRET, TestApp};

// ----- fuzz target: the pure verify-and-parse path -----------------------------------------------

const FUZZ_NOW_MS: i64 = 1_790_000_000_000;
const OTHER_SECRET: &str = "second-secret-for-rotation";

fn fuzz_cases(variable: &str, default: u32) -> u32 {
    std::env::var(variable).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn mac_hex(secret: &str, timestamp_text: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp_text.as_bytes());
    mac.update(b":");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Strings for JSON keys and values; `nul` lets them hold NUL (escaped as `\u0000` in the body).
fn text(nul: bool) -> BoxedStrategy<String> {
    if nul { "(?s).{0,10}".boxed() } else { "[^\\x00]{0,10}".boxed() }
}

fn json_value(nul: bool) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text(nul).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(nul), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// RFC 3339 timestamps whose UTC instant stays inside years 1971–9998, in any offset.
fn timestamp() -> BoxedStrategy<String> {
    (31_536_000_000_i64..253_339_000_000_000, -1_439_i32..1_440, any::<bool>())
        .prop_map(|(ms, offset_minutes, utc)| {
            let at = DateTime::from_timestamp_millis(ms).expect("in range");
            if utc {
                at.to_rfc3339_opts(SecondsFormat::Millis, true)
            } else {
                let offset = FixedOffset::east_opt(offset_minutes * 60).expect("a valid offset");
                at.with_timezone(&offset).to_rfc3339_opts(SecondsFormat::AutoSi, false)
            }
        })
        .boxed()
}

/// Bodies shaped like deliveries, with every field sometimes right and sometimes anything.
fn delivery_shaped(nul: bool) -> BoxedStrategy<Vec<u8>> {
    let event_name = prop_oneof![
        4 => "(person|company|opportunity|a|)\\.(created|updated|deleted|restored|destroyed|merged)"
            .prop_map(Value::from),
        1 => "metadata\\.[a-zA-Z.]{0,16}".prop_map(Value::from),
        1 => json_value(nul),
    ];
    let maybe_date = prop_oneof![
        3 => timestamp().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => json_value(nul),
    ];
    let id = prop_oneof![4 => "[a-c0-2-]{0,4}".prop_map(Value::from), 1 => json_value(nul)];
    let fields = prop::collection::btree_map(text(nul), json_value(nul), 0..3);
    let record = (id, prop::option::of(maybe_date.clone()), prop::option::of(maybe_date.clone()), fields)
        .prop_map(|(id, updated, deleted, fields)| {
            let mut record: serde_json::Map<String, Value> = fields.into_iter().collect();
            record.insert("id".into(), id);
            if let Some(updated) = updated {
                record.insert("updatedAt".into(), updated);
            }
            if let Some(deleted) = deleted {
                record.insert("deletedAt".into(), deleted);
            }
            Value::Object(record)
        });
    let record = prop_oneof![6 => record, 1 => json_value(nul)];
    (event_name, prop::option::of(record), prop::option::of(maybe_date), prop::option::of(json_value(nul)))
        .prop_map(|(event_name, record, event_date, extra)| {
            let mut body = json!({ "eventName": event_name });
            if let Some(record) = record {
                body["record"] = record;
            }
            if let Some(event_date) = event_date {
                body["eventDate"] = event_date;
            }
            if let Some(extra) = extra {
                body["extra"] = extra;
            }
            body.to_string().into_bytes()
        })
        .boxed()
}

/// Arbitrary bytes, delivery-shaped JSON, and delivery-shaped JSON with one byte changed.
fn bodies(max_len: usize, nul: bool) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..max_len),
        3 => delivery_shaped(nul),
        2 => (delivery_shaped(nul), any::<prop::sample::Index>(), any::<u8>(), 0u8..3).prop_map(
            |(mut body, at, byte, how)| {
                let at = at.index(body.len() + 1);
                match how {
                    0 => body.insert(at, byte),
                    1 => body.truncate(at),
                    _ if at < body.len() => body[at] = byte,
                    _ => body.push(byte),
                }
                body
            }
        ),
    ]
    .boxed()
}

/// Header text as a handler could see it, including near misses of a valid timestamp.
fn timestamp_header() -> BoxedStrategy<Option<String>> {
    prop::option::weighted(
        0.9,
        prop_oneof![
            3 => (-400_000_i64..400_000).prop_map(|skew| (FUZZ_NOW_MS - skew).to_string()),
            1 => (-400_000_i64..400_000, "[ \t+]{0,2}", "[ \t]{0,2}")
                .prop_map(|(skew, pre, post)| format!("{pre}{}{post}", FUZZ_NOW_MS - skew)),
            1 => prop_oneof![
                Just(i64::MIN.to_string()),
                Just(i64::MAX.to_string()),
                Just("99999999999999999999999".to_owned()),
                Just("-0".to_owned()),
                Just(String::new()),
            ],
            1 => ".{0,24}",
        ],
    )
    .boxed()
}

fn signature_header() -> BoxedStrategy<Option<String>> {
    prop::option::weighted(
        0.9,
        prop_oneof![
            2 => prop::collection::vec(any::<u8>(), 0..40).prop_map(hex::encode),
            1 => "[0-9a-fA-F]{0,70}",
            1 => ".{0,70}",
        ],
    )
    .boxed()
}

fn policy_variant() -> BoxedStrategy<SignaturePolicy> {
    let secrets = prop_oneof![
        4 => Just(vec![SECRET]),
        2 => Just(vec![OTHER_SECRET, SECRET]),
        1 => Just(vec![]),
    ];
    let tolerance = prop_oneof![
        4 => Just(Duration::from_secs(300)),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::MAX),
    ];
    (secrets, any::<bool>(), tolerance)
        .prop_map(|(secrets, allow_unsigned, tolerance)| SignaturePolicy {
            secrets: secrets.into_iter().map(|s| SecretString::from(s.to_owned())).collect(),
            allow_unsigned,
            tolerance,
        })
        .boxed()
}

/// What `verify` must answer, from the documented rules: an opted-in unsigned delivery passes;
/// then the headers must be there, the timestamp a number of milliseconds inside the tolerance,
/// the signature hex, and equal to the HMAC of `"<timestamp header>:<body>"` under some secret.
fn expected_verdict(
    policy: &SignaturePolicy,
    secrets: &[&str],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Verified, Refusal> {
    if policy.allow_unsigned && ((timestamp.is_none() && signature.is_none()) || secrets.is_empty()) {
        return Ok(Verified::Unsigned);
    }
    if secrets.is_empty() {
        return Err(Refusal::NoSecretConfigured);
    }
    let signature = signature.ok_or(Refusal::MissingSignature)?;
    let timestamp = timestamp.ok_or(Refusal::MissingTimestamp)?;
    let sent: i64 = timestamp.trim().parse().map_err(|_| Refusal::MalformedTimestamp)?;
    let tolerance = i64::try_from(policy.tolerance.as_millis()).unwrap_or(i64::MAX);
    let skew = FUZZ_NOW_MS.saturating_sub(sent);
    if skew > tolerance {
        return Err(Refusal::TimestampTooOld);
    }
    if skew < -tolerance {
        return Err(Refusal::TimestampInFuture);
    }
    let tag = hex::decode(signature.trim()).map_err(|_| Refusal::MalformedSignature)?;
    let matches =
        secrets.iter().any(|secret| hex::decode(mac_hex(secret, timestamp, body)).ok() == Some(tag.clone()));
    if matches { Ok(Verified::Signed) } else { Err(Refusal::BadSignature) }
}

fn check_parse(body: &[u8]) -> Result<(), TestCaseError> {
    let received = DateTime::from_timestamp_millis(FUZZ_NOW_MS).expect("a time");
    let delivery = parse_delivery(body, received);
    prop_assert!(!delivery.body.contains('\0'), "the logged body never holds NUL");
    prop_assert_eq!(&delivery.body, &as_logged(body));
    if let Ok(text) = std::str::from_utf8(body)
        && !text.contains('\0')
    {
        prop_assert_eq!(delivery.body.as_str(), text, "a text body is logged byte for byte");
    }
    prop_assert_eq!(delivery.received_at, received);
    // serde_json skips unknown fields without checking that their strings are UTF-8, so a body
    // with invalid bytes there can still be applied (and is logged with them replaced).
    // JSON syntax, not what fits a `Value`: a number such as -1E309 is valid JSON that no f64
    // holds, and a metadata event that carries one is still ignored, not failed.
    let is_json = serde_json::from_str::<serde::de::IgnoredAny>(&String::from_utf8_lossy(body)).is_ok();
    match &delivery.disposition {
        Disposition::Fail(why) => prop_assert!(!why.is_empty(), "a failure says why"),
        Disposition::Ignore => {
            prop_assert!(is_json, "only JSON is ever ignored rather than failed");
            prop_assert!(delivery.event_name.is_some(), "an ignored delivery has an event name");
        }
        Disposition::Apply(change) => {
            prop_assert!(is_json, "only JSON is ever applied");
            let event_name = delivery.event_name.as_deref().unwrap_or_default();
            prop_assert!(
                event_name.starts_with(&format!("{}.", change.object)),
                "{event_name} vs {}",
                change.object
            );
            prop_assert_eq!(delivery.object.as_deref(), Some(change.object.as_str()));
            prop_assert_eq!(delivery.record_id.as_deref(), Some(change.id.as_str()));
            prop_assert!(!change.id.is_empty());
            prop_assert_eq!(delivery.record_updated_at, Some(change.updated_at));
            let data: Value =
                serde_json::from_str(&change.data).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(data.is_object(), "the stored data is the record object");
            prop_assert_eq!(data.get("id").and_then(Value::as_str), Some(change.id.as_str()));
        }
    }
    if delivery.event_name.is_none() {
        prop_assert!(matches!(delivery.disposition, Disposition::Fail(_)), "no event name, no success");
    }
    // Deterministic: the same bytes classify the same way.
    let again = parse_delivery(body, received);
    prop_assert_eq!(format!("{:?}", again.disposition), format!("{:?}", delivery.disposition));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: fuzz_cases("FUZZ_CASES", 2_000),
        failure_persistence: None,
        max_shrink_time: 10_000,
        ..ProptestConfig::default()
    })]

    /// The fuzz target: arbitrary bodies and header values through `verify` and `parse_delivery`.
    #[test]
    fn fuzz_verify_and_parse(
        body in bodies(1_024, true),
        policy in policy_variant(),
        timestamp in timestamp_header(),
        signature in signature_header(),
        skew in -400_000_i64..400_000,
        flip in any::<prop::sample::Index>(),
    ) {
        let now = DateTime::from_timestamp_millis(FUZZ_NOW_MS).expect("a time");
        let secrets: Vec<&str> = policy.secrets.iter().map(|s| s.expose_secret()).collect();

        // Arbitrary headers: never a panic, always the documented verdict.
        let headers = SignatureHeaders { timestamp: timestamp.as_deref(), signature: signature.as_deref() };
        prop_assert_eq!(
            verify(&policy, headers, &body, now),
            expected_verdict(&policy, &secrets, timestamp.as_deref(), signature.as_deref(), &body)
        );

        // Signed correctly by any configured secret: signed inside the tolerance, refused outside.
        let sent = FUZZ_NOW_MS - skew;
        let sent_text = sent.to_string();
        for secret in &secrets {
            let good = sign(secret, sent, &body);
            prop_assert_eq!(&good, &mac_hex(secret, &sent_text, &body), "sign is the documented HMAC");
            let headers = SignatureHeaders { timestamp: Some(&sent_text), signature: Some(&good) };
            let got = verify(&policy, headers, &body, now);
            prop_assert_eq!(got, expected_verdict(&policy, &secrets, Some(&sent_text), Some(&good), &body));
            if !policy.allow_unsigned && policy.tolerance == Duration::from_secs(300) {
                let inside = skew.abs() <= 300_000;
                prop_assert_eq!(got.is_ok(), inside, "skew {}", skew);
                if inside {
                    prop_assert_eq!(got, Ok(Verified::Signed));
                    // Any change to the signed bytes is refused.
                    let mut tampered = body.clone();
                    if tampered.is_empty() {
                        tampered.push(b' ');
                    } else {
                        let at = flip.index(tampered.len());
                        tampered[at] ^= 0x01;
                    }
                    prop_assert_eq!(verify(&policy, headers, &tampered, now), Err(Refusal::BadSignature));
                    let wrong = sign("not-a-configured-secret", sent, &body);
                    let forged = SignatureHeaders { timestamp: Some(&sent_text), signature: Some(&wrong) };
                    prop_assert_eq!(verify(&policy, forged, &body, now), Err(Refusal::BadSignature));
                }
            }
        }

        check_parse(&body)?;
    }
}

/// Found by the fuzz target: valid JSON whose number no f64 holds, in a field nobody reads.
#[test]
fn a_metadata_event_with_an_out_of_range_number_is_ignored() {
    let body = br#"{"eventName":"metadata.","extra":{"":-1E00309}}"#;
    check_parse(body).expect("the parse invariants hold");
    let received = DateTime::from_timestamp_millis(FUZZ_NOW_MS).expect("a time");
    assert!(matches!(parse_delivery(body, received).disposition, Disposition::Ignore));
}

// ----- fuzz target: arbitrary signed bodies against the running app ------------------------------

#[test]
fn arbitrary_signed_bodies_over_http_get_200_400_or_413_never_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // A small limit, so that some of the bodies are over it.
    let app = runtime.block_on(TestApp::spawn_with(Options::default().var("WEBHOOK_MAX_BODY", "2KiB")));
    let header_value = prop::collection::vec(prop_oneof![Just(b'\t'), 0x20_u8..0x7f, 0x80_u8..=0xff], 0..64);
    let strategy = (bodies(3_000, true), header_value, prop::option::of("[a-z/+;= -]{0,40}"));
    let mut runner = TestRunner::new(Config {
        cases: fuzz_cases("FUZZ_HTTP_CASES", 64),
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = runner.run(&strategy, |(body, extra, content_type)| {
        let status = runtime.block_on(async {
            let ts = now_ms();
            let mut request = app
                .client
                .post(format!("{}/webhooks/twenty", app.address))
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(SIGNATURE_HEADER, sign(SECRET, ts, &body))
                .header("X-Fuzz", reqwest::header::HeaderValue::from_bytes(&extra).expect("a header value"))
                .body(body.clone());
            if let Some(content_type) = &content_type {
                request = request.header("Content-Type", content_type.as_str());
            }
            request.send().await.map(|r| r.status().as_u16())
        });
        let status = status.map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
        *seen.borrow_mut().entry(status).or_default() += 1;
        prop_assert!(
            matches!(status, 200 | 400 | 413),
            "{status} for a signed body of {} bytes: {:?}",
            body.len(),
            String::from_utf8_lossy(&body)
        );
        Ok(())
    });
    runtime.block_on(async {
        eprintln!("statuses over HTTP: {:?}", seen.borrow());
        assert_still_serving(&app, "the HTTP fuzz").await;
        let events = app.store.recent_events(10_000).await;
        assert!(events.is_ok(), "the event log still reads back: {events:?}");
        let mut app = app;
        app.stop().await.expect("a clean stop");
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
