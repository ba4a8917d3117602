//! Parsing a verified delivery into what Twenty says happened. Pure: bytes in, a [`WebhookEvent`]
//! out, whatever the bytes are. It knows nothing of the store: a record event's [`Change`] is the
//! ground both stand on.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::change::{Change, Source, parse_timestamp};

/// The record events Twenty sends, by the action part of `eventName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Deleted,
    Restored,
    Destroyed,
}

impl Action {
    pub fn parse(action: &str) -> Option<Self> {
        match action {
            "created" => Some(Action::Created),
            "updated" => Some(Action::Updated),
            "deleted" => Some(Action::Deleted),
            "restored" => Some(Action::Restored),
            "destroyed" => Some(Action::Destroyed),
            _ => None,
        }
    }
}

/// A verified delivery, as far as it could be read: the names it carries, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// `eventName`, with any NUL character replaced (no database stores one in text).
    pub event_name: Option<String>,
    /// The object of a record event (`person` of `person.updated`).
    pub object: Option<String>,
    pub record_id: Option<String>,
    /// The record's version: the change's, or the record's `updatedAt` when no change could be made.
    pub record_updated_at: Option<DateTime<Utc>>,
    pub kind: EventKind,
}

/// What a delivery is.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A record was created, updated, deleted, restored or destroyed.
    Record(Change),
    /// A schema event (`metadata.*`).
    Schema,
    /// An event name without an action this parser knows (`person.merged`, or no action at all).
    UnknownAction,
    /// Not a delivery that can be read, with the reason.
    Malformed(String),
}

/// The envelope fields we read; everything else in the body is kept in the event log only.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    /// What some 2024 releases sent instead of `eventName`: the event's name, or the
    /// subscription's pattern (`*.*`), which names no event.
    #[serde(rename = "eventType")]
    event_type: Option<String>,
    #[serde(rename = "eventDate")]
    event_date: Option<String>,
    record: Option<Value>,
}

/// Whether an `eventType` names one event (`person.updated`), not a pattern (`*.*`, `person.*`).
fn is_concrete_event(event_type: &str) -> bool {
    event_type
        .split_once('.')
        .is_some_and(|(object, action)| !object.is_empty() && !action.is_empty() && !event_type.contains('*'))
}

/// Twenty's object names are short identifiers; anything longer names nothing the mirror knows.
const MAX_OBJECT_NAME: usize = 63;

/// The object a delivery names (`person` of `person.updated`, in `eventName` or `eventType`), read
/// from a body that may not be verified: only to count a refusal by object, never to apply it.
/// Only a plain identifier is taken.
pub fn named_object(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        #[serde(rename = "eventName")]
        event_name: Option<String>,
        #[serde(rename = "eventType")]
        event_type: Option<String>,
    }
    let named: Named = serde_json::from_slice(body).ok()?;
    let name = named.event_name.or(named.event_type)?;
    let (object, _) = name.split_once('.')?;
    let identifier = !object.is_empty()
        && object.len() <= MAX_OBJECT_NAME
        && object.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    identifier.then(|| object.to_owned())
}

/// Classifies a verified delivery. `metadata.*` events and unknown actions are recognised before a
/// record is required: newest releases send schema events without one.
pub fn parse_event(body: &[u8], received_at: DateTime<Utc>) -> WebhookEvent {
    let mut event = WebhookEvent {
        event_name: None,
        object: None,
        record_id: None,
        record_updated_at: None,
        kind: EventKind::UnknownAction,
    };
    // JSON is UTF-8; serde_json only checks the fields it reads, so check the whole body first.
    if std::str::from_utf8(body).is_err() {
        event.kind = EventKind::Malformed("the body is not UTF-8 text".to_owned());
        return event;
    }
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(e) => {
            event.kind = EventKind::Malformed(format!("the body is not a JSON delivery: {e}"));
            return event;
        }
    };
    let event_name = match (envelope.event_name, envelope.event_type) {
        (Some(event_name), _) => event_name,
        (None, Some(event_type)) if is_concrete_event(&event_type) => event_type,
        (None, Some(event_type)) => {
            event.kind = EventKind::Malformed(format!(
                "eventName is missing and eventType {:?} names no single object.action",
                event_type.replace('\0', "\u{FFFD}")
            ));
            return event;
        }
        (None, None) => {
            event.kind = EventKind::Malformed("eventName is missing (and so is eventType)".to_owned());
            return event;
        }
    };
    event.event_name = Some(event_name.replace('\0', "\u{FFFD}"));
    // PostgreSQL stores no NUL character, in text or in jsonb; Twenty, itself on PostgreSQL, never
    // sends one. Refusing it on both backends keeps them alike.
    if event_name.contains('\0') || envelope.record.as_ref().is_some_and(contains_nul) {
        event.kind = EventKind::Malformed(
            "the delivery contains a NUL character (\\u0000), which the mirror cannot store".to_owned(),
        );
        return event;
    }
    if event_name.starts_with("metadata.") {
        event.kind = EventKind::Schema;
        return event;
    }
    let Some((object, action)) = event_name.split_once('.') else { return event };
    let Some(action) = Action::parse(action) else { return event };
    event.object = Some(object.to_owned());

    let Some(record) = envelope.record else {
        event.kind = EventKind::Malformed("record is missing".to_owned());
        return event;
    };
    event.record_id = record.get("id").and_then(Value::as_str).map(str::to_owned);
    event.record_updated_at = record.get("updatedAt").and_then(Value::as_str).and_then(parse_timestamp);
    // eventDate is when Twenty queued the delivery: the best date a deletion has when the record
    // does not carry one. Without it, our own receipt is the closest.
    let event_date = envelope.event_date.as_deref().and_then(parse_timestamp).unwrap_or(received_at);
    let change = match action {
        Action::Created | Action::Updated | Action::Restored => {
            Change::upsert(object, &record, Source::Webhook)
        }
        Action::Deleted => Change::soft_delete(object, &record, event_date),
        Action::Destroyed => Change::destroy(object, &record, event_date),
    };
    event.kind = match change {
        Ok(change) => {
            event.record_updated_at = Some(change.updated_at);
            EventKind::Record(change)
        }
        Err(e) => EventKind::Malformed(e.to_string()),
    };
    event
}

/// Whether a string or a key anywhere in `value` holds a NUL character.
fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(key, value)| key.contains('\0') || contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Stage;

    #[test]
    fn an_unverified_body_names_an_object_only_as_a_plain_identifier() {
        assert_eq!(named_object(br#"{"eventName":"person.updated"}"#).as_deref(), Some("person"));
        assert_eq!(named_object(br#"{"eventType":"opportunity.created"}"#).as_deref(), Some("opportunity"));
        let long = format!(r#"{{"eventName":"{}.updated"}}"#, "a".repeat(64));
        for body in [
            br#"{"eventName":"person"}"#.as_slice(),
            br#"{"eventName":"a b.updated"}"#,
            b"not json",
            long.as_bytes(),
        ] {
            assert_eq!(named_object(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    fn now() -> DateTime<Utc> {
        parse_timestamp("2026-09-21T12:00:00.000Z").unwrap()
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/webhooks/{name}.body.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).unwrap()
    }

    fn change(event: &WebhookEvent) -> &Change {
        match &event.kind {
            EventKind::Record(change) => change,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn record_events_become_changes() {
        let created = parse_event(&fixture("person.created"), now());
        assert_eq!(created.event_name.as_deref(), Some("person.created"));
        assert_eq!(created.object.as_deref(), Some("person"));
        assert_eq!(created.record_id.as_deref(), Some("0b8e1c52-2f7a-4d7c-9d8e-51a1f0c2b3d4"));
        assert_eq!(change(&created).stage(), Stage::Live);

        let deleted = parse_event(&fixture("company.deleted"), now());
        assert_eq!(change(&deleted).deleted_at, parse_timestamp("2026-09-21T11:00:00.000Z"));

        let old_format = parse_event(&fixture("company.deleted-2025-format"), now());
        assert_eq!(change(&old_format).deleted_at, parse_timestamp("2026-09-21T11:00:00.010Z"));

        let destroyed = parse_event(&fixture("opportunity.destroyed"), now());
        assert_eq!(change(&destroyed).destroyed_at, parse_timestamp("2026-09-21T11:00:00.010Z"));
        assert_eq!(change(&destroyed).stage(), Stage::Destroyed);
    }

    #[test]
    fn schema_events_and_unknown_actions_are_classified_before_a_record_is_required() {
        let metadata = parse_event(&fixture("metadata.field-created"), now());
        assert_eq!(metadata.kind, EventKind::Schema);
        assert_eq!(metadata.event_name.as_deref(), Some("metadata.fieldMetadata.created"));
        let unknown = parse_event(br#"{"eventName":"person.merged"}"#, now());
        assert_eq!(unknown.kind, EventKind::UnknownAction);
        let no_action = parse_event(br#"{"eventName":"person"}"#, now());
        assert_eq!(no_action.kind, EventKind::UnknownAction);
    }

    #[test]
    fn an_event_type_is_read_as_the_event_name_when_it_names_one_event() {
        let record = r#""record":{"id":"a","updatedAt":"2026-09-21T10:00:00.000Z"}"#;
        let concrete = parse_event(format!(r#"{{"eventType":"person.updated",{record}}}"#).as_bytes(), now());
        assert_eq!(concrete.event_name.as_deref(), Some("person.updated"));
        assert!(matches!(concrete.kind, EventKind::Record(_)), "{concrete:?}");
        let both = parse_event(
            format!(r#"{{"eventName":"person.created","eventType":"*.*",{record}}}"#).as_bytes(),
            now(),
        );
        assert_eq!(both.event_name.as_deref(), Some("person.created"), "eventName wins");
        for pattern in ["*.*", "person.*", "*.updated", "person", ""] {
            let body = format!(r#"{{"eventType":{pattern:?},{record}}}"#);
            match parse_event(body.as_bytes(), now()).kind {
                EventKind::Malformed(why) => assert!(why.contains("eventType"), "{why}"),
                other => panic!("{pattern:?} names no event, got {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_deliveries_fail_with_a_reason() {
        for (body, reason) in [
            (&b"not json"[..], "not a JSON delivery"),
            (b"[1,2]", "not a JSON delivery"),
            (br#"{"record":{}}"#, "eventName is missing"),
            (br#"{"eventName":"person.updated"}"#, "record is missing"),
            (br#"{"eventName":"person.updated","record":{"updatedAt":"2026-01-01T00:00:00Z"}}"#, "record.id"),
            (br#"{"eventName":"person.updated","record":{"id":"a"}}"#, "updatedAt"),
        ] {
            match parse_event(body, now()).kind {
                EventKind::Malformed(why) => {
                    assert!(why.contains(reason), "{why:?} should mention {reason:?}")
                }
                other => panic!("{} should fail, got {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn nul_characters_and_bytes_that_are_not_utf8_fail() {
        for body in [
            &br#"{"eventName":"person.created","record":{"id":"a","updatedAt":"2026-09-21T10:00:00.000Z","n":"a\u0000b"}}"#[..],
            br#"{"eventName":"metadata.\u0000"}"#,
            b"{\"eventName\":\"person.created\",\"x\":\"\xff\"}",
        ] {
            let event = parse_event(body, now());
            assert!(matches!(event.kind, EventKind::Malformed(_)), "{event:?}");
            assert!(!event.event_name.unwrap_or_default().contains('\0'));
        }
    }
}
