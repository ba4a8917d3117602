//! A change to one record of the mirror, as the webhook path and the reconciler both produce it: the
//! ground that `twenty` (which parses deliveries into changes) and `mirror` (which applies them) both
//! stand on. It imports neither.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde_json::Value;

/// Where a change came from. A reconciler read is the truth about the record at its version; a
/// webhook is a report that may be late, duplicated or reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Webhook,
    Reconcile,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Reconcile => "reconcile",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "webhook" => Some(Source::Webhook),
            "reconcile" => Some(Source::Reconcile),
            _ => None,
        }
    }
}

/// Where a record stands in its life cycle. At the same version, a later stage wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Live,
    SoftDeleted,
    Destroyed,
}

impl Stage {
    pub fn of(deleted_at: Option<DateTime<Utc>>, destroyed_at: Option<DateTime<Utc>>) -> Self {
        match (deleted_at, destroyed_at) {
            (_, Some(_)) => Stage::Destroyed,
            (Some(_), None) => Stage::SoftDeleted,
            (None, None) => Stage::Live,
        }
    }
}

/// One change to the row `(object, id)`. Built only by the constructors below, which derive the
/// version and the life-cycle columns from the record the way the apply rule expects.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub object: String,
    pub id: String,
    /// The record as canonical JSON text (keys sorted), so that identical records compare equal as
    /// text on SQLite as they do as `jsonb` on PostgreSQL.
    pub data: String,
    /// The record carries no `updatedAt` (the bare `{id, deletedAt}` delete of some 2025 releases):
    /// the stored data is kept and only the life-cycle columns change.
    pub partial: bool,
    /// The record's version: its `updatedAt`, or `deletedAt` for a partial record.
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub destroyed_at: Option<DateTime<Utc>>,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("record is not a JSON object")]
    NotAnObject,
    #[error("record.id is missing or not a string")]
    MissingId,
    #[error("record.updatedAt is missing, so the change has no version")]
    MissingVersion,
    #[error("record.{field} is not an RFC 3339 timestamp: {value}")]
    BadTimestamp { field: &'static str, value: String },
}

impl Change {
    /// A record read from Twenty or sent by a created, updated or restored event: the row after the
    /// change, soft-deleted exactly when the record says so.
    pub fn upsert(object: &str, record: &Value, source: Source) -> Result<Self, ChangeError> {
        let fields = RecordFields::of(record)?;
        let updated_at = fields.updated_at.ok_or(ChangeError::MissingVersion)?;
        Ok(Change {
            object: object.to_owned(),
            id: fields.id,
            data: canonical_json(record),
            partial: false,
            updated_at,
            deleted_at: fields.deleted_at,
            destroyed_at: None,
            source,
        })
    }

    /// A soft delete. Newest releases send the row after the delete; 2025 releases sent it before
    /// (with `deletedAt: null`), where the event's date stands in for the deletion time, or only
    /// `{id, deletedAt}`, where the stored data is kept.
    pub fn soft_delete(object: &str, record: &Value, event_date: DateTime<Utc>) -> Result<Self, ChangeError> {
        let fields = RecordFields::of(record)?;
        let deleted_at = fields.deleted_at.unwrap_or(event_date);
        let updated_at = fields.updated_at.unwrap_or(deleted_at);
        Ok(Change {
            object: object.to_owned(),
            id: fields.id,
            data: canonical_json(record),
            partial: fields.updated_at.is_none(),
            updated_at,
            deleted_at: Some(deleted_at),
            destroyed_at: None,
            source: Source::Webhook,
        })
    }

    /// A hard delete: the row as it was before, kept as a tombstone dated by the event, so that a
    /// late update can never bring the record back.
    pub fn destroy(object: &str, record: &Value, event_date: DateTime<Utc>) -> Result<Self, ChangeError> {
        let fields = RecordFields::of(record)?;
        let updated_at = fields.updated_at.or(fields.deleted_at).unwrap_or(event_date);
        Ok(Change {
            object: object.to_owned(),
            id: fields.id,
            data: canonical_json(record),
            partial: fields.updated_at.is_none(),
            updated_at,
            deleted_at: fields.deleted_at,
            destroyed_at: Some(event_date),
            source: Source::Webhook,
        })
    }

    pub fn stage(&self) -> Stage {
        Stage::of(self.deleted_at, self.destroyed_at)
    }
}

/// The fields of a record that the apply rule reads.
struct RecordFields {
    id: String,
    updated_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
}

impl RecordFields {
    fn of(record: &Value) -> Result<Self, ChangeError> {
        let map = record.as_object().ok_or(ChangeError::NotAnObject)?;
        let id = match map.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Err(ChangeError::MissingId),
        };
        Ok(RecordFields {
            id,
            updated_at: timestamp_field(map, "updatedAt")?,
            deleted_at: timestamp_field(map, "deletedAt")?,
        })
    }
}

fn timestamp_field(
    map: &serde_json::Map<String, Value>,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, ChangeError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            parse_timestamp(s).map(Some).ok_or_else(|| ChangeError::BadTimestamp { field, value: s.clone() })
        }
        Some(other) => Err(ChangeError::BadTimestamp { field, value: other.to_string() }),
    }
}

/// Parses an RFC 3339 timestamp to UTC at millisecond precision, the precision Twenty has and the
/// mirror stores on both backends.
/// Instants outside years 0000 to 9999 in UTC are refused: they have no fixed-width text form, so
/// SQLite could not store them in time order.
pub fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(value).ok()?;
    let at = DateTime::from_timestamp_millis(parsed.timestamp_millis())?;
    (0..=9999).contains(&at.year()).then_some(at)
}

/// The fixed-width text form used on SQLite and in JSON: `2026-09-21T10:15:30.412Z`.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// JSON text with object keys sorted (serde_json's map is ordered by key), so the same record
/// always has the same text whatever order Twenty wrote its keys in.
fn canonical_json(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> DateTime<Utc> {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn an_upsert_takes_its_version_from_updated_at() {
        let record = json!({"id": "a", "updatedAt": "2026-09-21T10:00:00.123Z", "deletedAt": null, "b": 1});
        let c = Change::upsert("person", &record, Source::Webhook).unwrap();
        assert_eq!(c.updated_at, ts("2026-09-21T10:00:00.123Z"));
        assert_eq!(c.stage(), Stage::Live);
        assert_eq!(c.data, r#"{"b":1,"deletedAt":null,"id":"a","updatedAt":"2026-09-21T10:00:00.123Z"}"#);
    }

    #[test]
    fn a_2025_soft_delete_uses_the_event_date() {
        let record = json!({"id": "a", "updatedAt": "2026-09-21T10:00:00.000Z", "deletedAt": null});
        let c = Change::soft_delete("company", &record, ts("2026-09-21T11:00:00.010Z")).unwrap();
        assert_eq!(c.deleted_at, Some(ts("2026-09-21T11:00:00.010Z")));
        assert_eq!(c.updated_at, ts("2026-09-21T10:00:00.000Z"));
        assert!(!c.partial);
    }

    #[test]
    fn a_bare_soft_delete_is_versioned_by_deleted_at_and_keeps_stored_data() {
        let record = json!({"id": "a", "deletedAt": "2026-09-21T10:30:00.000Z"});
        let c = Change::soft_delete("company", &record, ts("2026-09-21T11:00:00.000Z")).unwrap();
        assert_eq!(c.updated_at, ts("2026-09-21T10:30:00.000Z"));
        assert!(c.partial);
    }

    #[test]
    fn malformed_records_are_errors() {
        let no_id = json!({"updatedAt": "2026-09-21T10:00:00.000Z"});
        assert_eq!(Change::upsert("p", &no_id, Source::Webhook), Err(ChangeError::MissingId));
        let no_version = json!({"id": "a"});
        assert_eq!(Change::upsert("p", &no_version, Source::Webhook), Err(ChangeError::MissingVersion));
        let bad = json!({"id": "a", "updatedAt": "yesterday"});
        assert!(matches!(Change::upsert("p", &bad, Source::Webhook), Err(ChangeError::BadTimestamp { .. })));
        assert_eq!(Change::upsert("p", &json!([1]), Source::Webhook), Err(ChangeError::NotAnObject));
    }

    #[test]
    fn timestamps_outside_years_0_to_9999_are_refused() {
        assert_eq!(parse_timestamp("9999-12-31T23:00:00-05:00"), None);
        assert_eq!(parse_timestamp("0000-01-01T00:00:00+05:00"), None);
        assert!(parse_timestamp("9999-12-31T23:59:59.999Z").is_some());
    }

    #[test]
    fn timestamps_are_kept_to_the_millisecond_in_utc() {
        assert_eq!(format_timestamp(ts("2026-09-21T12:15:30.412999+02:00")), "2026-09-21T10:15:30.412Z");
    }
}
