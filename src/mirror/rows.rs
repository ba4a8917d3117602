//! The rows both backends read, mapped to the store's types once. The SQL stays with each backend;
//! so does how a column encodes a timestamp (each backend's `rows.rs` implements [`Timestamp`] for
//! its database). JSON columns (JSONB on PostgreSQL, JSON text on SQLite) decode through
//! `sqlx::types::Json` on both, and the names of sources, triggers, modes and statuses are text on
//! both.

use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;

use super::model::{
    Counts, Mode, ObjectCounts, RefusedDeliveries, RunRow, RunStatus, StoredEvent, StoredRecord, SyncState,
    Trigger, WebhookHealth,
};
use crate::change::Source;

/// A timestamp column, as its backend stores it: `timestamptz` on PostgreSQL, fixed-width RFC 3339
/// text on SQLite (see `sqlite/rows.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp(pub DateTime<Utc>);

impl From<Timestamp> for DateTime<Utc> {
    fn from(at: Timestamp) -> Self {
        at.0
    }
}

fn instant(at: Option<Timestamp>) -> Option<DateTime<Utc>> {
    at.map(DateTime::from)
}

/// Decodes a text column into one of the store's names, refusing a name it does not know.
macro_rules! decode_as_text {
    ($($name:ident),+) => {$(
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as sqlx::Decode<DB>>::decode(value)?;
                $name::parse(text)
                    .ok_or_else(|| format!("{text:?} is not a {}", stringify!($name).to_lowercase()).into())
            }
        }
    )+};
}

decode_as_text!(Source, Trigger, Mode, RunStatus, WebhookHealth);

/// A row of `twenty_records`.
#[derive(sqlx::FromRow)]
pub(crate) struct RecordRow {
    object: String,
    id: String,
    data: serde_json::Value,
    updated_at: Timestamp,
    deleted_at: Option<Timestamp>,
    destroyed_at: Option<Timestamp>,
    source: Source,
    synced_at: Timestamp,
}

impl From<RecordRow> for StoredRecord {
    fn from(row: RecordRow) -> Self {
        StoredRecord {
            object: row.object,
            id: row.id,
            data: row.data,
            updated_at: row.updated_at.into(),
            deleted_at: instant(row.deleted_at),
            destroyed_at: instant(row.destroyed_at),
            source: row.source,
            synced_at: row.synced_at.into(),
        }
    }
}

/// A row of `webhook_events`.
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: i64,
    received_at: Timestamp,
    event_name: Option<String>,
    object: Option<String>,
    record_id: Option<String>,
    record_updated_at: Option<Timestamp>,
    outcome: String,
    error: Option<String>,
    body: String,
}

impl From<EventRow> for StoredEvent {
    fn from(row: EventRow) -> Self {
        StoredEvent {
            id: row.id,
            received_at: row.received_at.into(),
            event_name: row.event_name,
            object: row.object,
            record_id: row.record_id,
            record_updated_at: instant(row.record_updated_at),
            outcome: row.outcome,
            error: row.error,
            body: row.body,
        }
    }
}

/// A row of `sync_state`.
#[derive(sqlx::FromRow)]
pub(crate) struct SyncStateRow {
    object: String,
    watermark: Option<Timestamp>,
    last_delta_at: Option<Timestamp>,
    last_full_at: Option<Timestamp>,
    last_run_id: Option<i64>,
    #[sqlx(json(nullable))]
    last_counts: Option<Counts>,
    /// Null until the object's first delta pass.
    webhook_health: Option<WebhookHealth>,
}

impl From<SyncStateRow> for SyncState {
    fn from(row: SyncStateRow) -> Self {
        SyncState {
            object: row.object,
            watermark: instant(row.watermark),
            last_delta_at: instant(row.last_delta_at),
            last_full_at: instant(row.last_full_at),
            last_run_id: row.last_run_id,
            last_counts: row.last_counts,
            webhook_health: row.webhook_health.unwrap_or_default(),
        }
    }
}

/// A row of `sync_runs`.
#[derive(sqlx::FromRow)]
pub(crate) struct RunRowColumns {
    id: i64,
    trigger: Trigger,
    mode: Mode,
    #[sqlx(json)]
    objects: Vec<String>,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    status: RunStatus,
    error: Option<String>,
    #[sqlx(flatten)]
    counts: Counts,
}

impl From<RunRowColumns> for RunRow {
    fn from(row: RunRowColumns) -> Self {
        RunRow {
            id: row.id,
            trigger: row.trigger,
            mode: row.mode,
            objects: row.objects,
            started_at: row.started_at.into(),
            ended_at: instant(row.ended_at),
            status: row.status,
            error: row.error,
            counts: row.counts,
        }
    }
}

/// An object's rows by stage, and when its last webhook came.
#[derive(sqlx::FromRow)]
pub(crate) struct ObjectCountsRow {
    object: String,
    live: i64,
    soft_deleted: i64,
    destroyed: i64,
    last_webhook_at: Option<Timestamp>,
}

impl From<ObjectCountsRow> for ObjectCounts {
    fn from(row: ObjectCountsRow) -> Self {
        ObjectCounts {
            object: row.object,
            live: row.live,
            soft_deleted: row.soft_deleted,
            destroyed: row.destroyed,
            last_webhook_at: instant(row.last_webhook_at),
        }
    }
}

/// A row of `webhook_refusals`; `''` is the object of deliveries that named none the mirror knows.
#[derive(sqlx::FromRow)]
pub(crate) struct RefusalRow {
    object: String,
    reason: String,
    refused: i64,
}

impl From<RefusalRow> for RefusedDeliveries {
    fn from(row: RefusalRow) -> Self {
        RefusedDeliveries {
            object: Some(row.object).filter(|o| !o.is_empty()),
            reason: row.reason,
            refused: row.refused,
        }
    }
}
