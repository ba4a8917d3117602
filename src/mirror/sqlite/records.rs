//! The mirror and the event log on SQLite: the apply rule decided in Rust under the write lock,
//! deliveries logged in one statement, and the reads of records and deliveries.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use sqlx::{SqliteConnection, SqlitePool};

use super::rows::StoredColumns;
use crate::change::{Change, format_timestamp};
use crate::mirror::error::{Context, StoreError};
use crate::mirror::model::{DeliveryBatch, HourlyDeliveries, LoggedDelivery, StoredEvent, StoredRecord};
use crate::mirror::rows::{EventRow, RecordRow, Timestamp};
use crate::mirror::rule::{self, ApplyOutcome, Reduced, StoredRow, Version};

pub(super) async fn record_deliveries(
    pool: &SqlitePool,
    batch: &mut DeliveryBatch<'_>,
) -> Result<(), StoreError> {
    // IMMEDIATE takes the write lock at once: a deferred transaction that reads first could fail
    // to upgrade its lock (SQLITE_BUSY_SNAPSHOT) without waiting for the busy timeout.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.context("starting a write transaction")?;
    let outcomes = apply(&mut tx, &batch.changes).await?;
    batch.fill_outcomes(outcomes);
    let logged: Vec<LoggedEvent<'_>> = batch.logged.iter().map(LoggedEvent::of).collect();
    let rows = serde_json::to_string(&logged).map_err(|e| StoreError::Corrupt(format!("a batch: {e}")))?;
    sqlx::query(LOG_EVENTS).bind(rows).execute(&mut *tx).await.context("logging deliveries")?;
    tx.commit().await.context("committing deliveries")
}

/// The apply rule on SQLite. The batch holds the write lock (`BEGIN IMMEDIATE`) from the read of
/// its rows to their write, so nothing changes in between and the rule can be decided here, in
/// Rust, once per row: one statement reads the stored rows, one writes the rows that change.
/// Rows travel as bound parameters of a multi-row `VALUES`, so no record is escaped, parsed or
/// copied more than SQLite's binding does.
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    changes: &[&Change],
) -> Result<Vec<ApplyOutcome>, StoreError> {
    let reduced = Reduced::new(changes);
    let winners: Vec<&Change> = reduced.winners.iter().map(|&i| changes[i]).collect();
    let mut winner_outcomes = Vec::with_capacity(winners.len());
    for chunk in winners.chunks(MAX_ROWS) {
        winner_outcomes.extend(apply_chunk(conn, chunk).await?);
    }
    Ok(reduced.outcomes(&winner_outcomes))
}

/// At most this many rows per statement (a group commit's batch is at most 256 deliveries, a
/// reconciler page 200 records); the write's 8 parameters a row stay far below SQLite's 32,766.
const MAX_ROWS: usize = 256;

/// Statements are prepared for row counts that are powers of two, up to [`MAX_ROWS`], and a batch
/// is padded with rows of NULLs up to the next one: 9 sizes that each connection prepares once and
/// keeps in its statement cache, however the sizes of batches vary.
const SIZES: usize = MAX_ROWS.trailing_zeros() as usize + 1;

async fn apply_chunk(conn: &mut SqliteConnection, rows: &[&Change]) -> Result<Vec<ApplyOutcome>, StoreError> {
    let size = rows.len().next_power_of_two();
    let mut read = sqlx::query_as::<_, StoredColumns>(statement(&READ_STORED, size, read_stored_sql));
    for (ord, change) in padded(rows, size) {
        read = read
            .bind(change.map(|_| ord as i64))
            .bind(change.map(|c| c.object.as_str()))
            .bind(change.map(|c| c.id.as_str()))
            .bind(change.map(|c| c.data.as_str()));
    }
    let mut stored: Vec<Option<StoredRow>> = vec![None; rows.len()];
    for columns in read.fetch_all(&mut *conn).await.context("reading rows before applying changes")? {
        let slot = stored
            .get_mut(columns.ord as usize)
            .ok_or_else(|| StoreError::Corrupt(format!("a stored row for batch row {}", columns.ord)))?;
        *slot = Some(columns.into());
    }
    let outcomes: Vec<ApplyOutcome> =
        rows.iter().zip(&stored).map(|(c, s)| rule::outcome(&Version::from(*c), s.as_ref())).collect();

    // A partial record keeps the stored data, so a row it updates is written on its own (they are
    // rare: the bare `{id, deletedAt}` deletes of some Twenty releases).
    let mut written = Vec::new();
    let mut keeping_data = Vec::new();
    for (&change, outcome) in rows.iter().zip(&outcomes) {
        match outcome {
            ApplyOutcome::Updated if change.partial => keeping_data.push(RowText::of(change)),
            ApplyOutcome::Inserted | ApplyOutcome::Updated => written.push(RowText::of(change)),
            ApplyOutcome::Duplicate | ApplyOutcome::Stale => {}
        }
    }
    if !written.is_empty() {
        let size = written.len().next_power_of_two();
        let mut write = sqlx::query(statement(&WRITE, size, write_sql));
        for (_, row) in padded(&written, size) {
            write = write
                .bind(row.map(|r| r.object))
                .bind(row.map(|r| r.id))
                .bind(row.map(|r| r.data))
                .bind(row.map(|r| r.updated_at.as_str()))
                .bind(row.and_then(|r| r.deleted_at.as_deref()))
                .bind(row.and_then(|r| r.destroyed_at.as_deref()))
                .bind(row.map(|r| r.source));
        }
        write.execute(&mut *conn).await.context("applying changes")?;
    }
    for row in keeping_data {
        sqlx::query(UPDATE_KEEPING_DATA)
            .bind(row.object)
            .bind(row.id)
            .bind(row.updated_at)
            .bind(row.deleted_at)
            .bind(row.destroyed_at)
            .bind(row.source)
            .execute(&mut *conn)
            .await
            .context("applying a change without data")?;
    }
    Ok(outcomes)
}

/// A change's columns as SQLite stores them: timestamps as fixed-width text.
struct RowText<'a> {
    object: &'a str,
    id: &'a str,
    data: &'a str,
    updated_at: String,
    deleted_at: Option<String>,
    destroyed_at: Option<String>,
    source: &'static str,
}

impl<'a> RowText<'a> {
    fn of(change: &'a Change) -> Self {
        RowText {
            object: &change.object,
            id: &change.id,
            data: &change.data,
            updated_at: format_timestamp(change.updated_at),
            deleted_at: change.deleted_at.map(format_timestamp),
            destroyed_at: change.destroyed_at.map(format_timestamp),
            source: change.source.as_str(),
        }
    }
}

/// `rows` with their index, then `None` up to `size`.
fn padded<T>(rows: &[T], size: usize) -> impl Iterator<Item = (usize, Option<&T>)> {
    (0..size).map(move |i| (i, rows.get(i)))
}

/// The text of a statement over `size` rows (a power of two), built once.
fn statement(
    built: &'static [OnceLock<String>; SIZES],
    size: usize,
    build: fn(usize) -> String,
) -> &'static str {
    built[size.trailing_zeros() as usize].get_or_init(|| build(size))
}

/// `rows` rows of `columns` parameters each, for a `VALUES` clause.
fn parameter_rows(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(",\n")
}

static READ_STORED: [OnceLock<String>; SIZES] = [const { OnceLock::new() }; SIZES];

/// The stored row of each incoming change that has one, by its index in the batch, with whether
/// its data is the change's. `CROSS JOIN` keeps the batch the outer loop: one primary-key lookup
/// per row, whatever the planner thinks of the table's size. Padding rows (NULL keys) match nothing.
fn read_stored_sql(rows: usize) -> String {
    format!(
        "WITH batch(ord, object, id, data) AS (VALUES {})
         SELECT b.ord, r.updated_at, r.deleted_at, r.destroyed_at, r.source, r.data = b.data AS same_data
         FROM batch AS b CROSS JOIN twenty_records AS r ON r.object = b.object AND r.id = b.id",
        parameter_rows(rows, 4)
    )
}

static WRITE: [OnceLock<String>; SIZES] = [const { OnceLock::new() }; SIZES];

/// Inserts new rows and overwrites the rows the rule let change; padding rows are left out.
fn write_sql(rows: usize) -> String {
    format!(
        "WITH batch(object, id, data, updated_at, deleted_at, destroyed_at, source) AS (VALUES {})
         INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, destroyed_at, source, synced_at)
         SELECT object, id, data, updated_at, deleted_at, destroyed_at, source,
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         FROM batch WHERE object IS NOT NULL
         ON CONFLICT (object, id) DO UPDATE SET
             data = excluded.data,
             updated_at = excluded.updated_at,
             deleted_at = excluded.deleted_at,
             destroyed_at = excluded.destroyed_at,
             source = excluded.source,
             synced_at = excluded.synced_at",
        parameter_rows(rows, 7)
    )
}

/// A change without data (no `updatedAt`) to a stored row: the life-cycle columns only.
const UPDATE_KEEPING_DATA: &str = "\
UPDATE twenty_records
SET updated_at = ?3, deleted_at = ?4, destroyed_at = ?5, source = ?6,
    synced_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
WHERE object = ?1 AND id = ?2";

/// One `webhook_events` row as the batch's JSON carries it.
#[derive(serde::Serialize)]
struct LoggedEvent<'a> {
    received_at: String,
    event_name: Option<&'a str>,
    object: Option<&'a str>,
    record_id: Option<&'a str>,
    record_updated_at: Option<String>,
    outcome: Option<&'static str>,
    error: Option<&'a str>,
    body: &'a str,
}

impl<'a> LoggedEvent<'a> {
    fn of(event: &LoggedDelivery<'a>) -> Self {
        let delivery = event.delivery;
        LoggedEvent {
            received_at: format_timestamp(delivery.received_at),
            event_name: delivery.event_name.as_deref(),
            object: delivery.object.as_deref(),
            record_id: delivery.record_id.as_deref(),
            record_updated_at: delivery.record_updated_at.map(format_timestamp),
            outcome: event.outcome.map(|o| o.as_str()),
            error: event.error,
            body: &delivery.body,
        }
    }
}

/// A batch's deliveries in one statement: every statement is a round trip to SQLite's worker
/// thread, and one per delivery made the log, not the mirror, the writer's bottleneck. Ordered by
/// array index, so ids follow the batch's order.
const LOG_EVENTS: &str = "\
INSERT INTO webhook_events
    (received_at, event_name, object, record_id, record_updated_at, outcome, error, body)
SELECT e.value->>'received_at', e.value->>'event_name', e.value->>'object', e.value->>'record_id',
       e.value->>'record_updated_at', e.value->>'outcome', e.value->>'error', e.value->>'body'
FROM json_each(?1) AS e
ORDER BY CAST(e.key AS INTEGER)";

pub(super) async fn prune_events(pool: &SqlitePool, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    let result = sqlx::query("DELETE FROM webhook_events WHERE received_at < ?1")
        .bind(Timestamp(cutoff))
        .execute(pool)
        .await
        .context("pruning old deliveries")?;
    Ok(result.rows_affected())
}

pub(super) async fn fetch_record(
    pool: &SqlitePool,
    object: &str,
    id: &str,
) -> Result<Option<StoredRecord>, StoreError> {
    let row: Option<RecordRow> = sqlx::query_as(
        "SELECT object, id, data, updated_at, deleted_at, destroyed_at, source, synced_at \
         FROM twenty_records WHERE object = ?1 AND id = ?2",
    )
    .bind(object)
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("reading a record")?;
    Ok(row.map(StoredRecord::from))
}

pub(super) async fn recent_events(pool: &SqlitePool, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, received_at, event_name, object, record_id, record_updated_at, outcome, error, body \
         FROM webhook_events ORDER BY id DESC LIMIT ?1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading the event log")?;
    Ok(rows.into_iter().map(StoredEvent::from).collect())
}

/// The hour is the first 13 characters of the fixed-width text (`2026-09-21T10`), completed into
/// a timestamp of the same form.
pub(super) async fn deliveries_per_hour(
    pool: &SqlitePool,
    since: DateTime<Utc>,
) -> Result<Vec<HourlyDeliveries>, StoreError> {
    let rows: Vec<(Timestamp, String, i64)> = sqlx::query_as(
        "SELECT substr(received_at, 1, 13) || ':00:00.000Z' AS hour, outcome, count(*) \
         FROM webhook_events WHERE received_at >= ?1 GROUP BY hour, outcome ORDER BY hour, outcome",
    )
    .bind(Timestamp(since))
    .fetch_all(pool)
    .await
    .context("counting deliveries per hour")?;
    rows.into_iter()
        .map(|(hour, outcome, deliveries)| HourlyDeliveries::read(hour.0, &outcome, deliveries))
        .collect()
}

pub(super) async fn events_since(
    pool: &SqlitePool,
    since: DateTime<Utc>,
    object: Option<&str>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, received_at, event_name, object, record_id, record_updated_at, outcome, error, body \
         FROM webhook_events \
         WHERE received_at >= ?1 AND (?2 IS NULL OR object = ?2) AND id > ?3 ORDER BY id LIMIT ?4",
    )
    .bind(Timestamp(since))
    .bind(object)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading the event log")?;
    Ok(rows.into_iter().map(StoredEvent::from).collect())
}
