//! The SQLite backend: the embedded default. Timestamps are fixed-width RFC 3339 text, so text order
//! is time order; `data` is canonical JSON text.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::change::{format_timestamp, parse_timestamp};
use super::rule::{ApplyOutcome, Reduced};
use super::{ACQUIRE_TIMEOUT, Change, Context, EventRow, Source, StoreError, StoredEvent, StoredRecord};

pub(crate) mod sync;

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// SQLite has one writer at a time. Another process (a `reconcile` or `replay` command) may hold the
/// write lock for a moment; waiting for it is better than failing, and deliveries give up on their
/// own deadline long before this.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers (health, admin) and the one writer; more connections would only wait on the write lock.
const MAX_CONNECTIONS: u32 = 4;

pub(super) async fn connect(options: SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: an acknowledged delivery survives a power cut, not only a crash of the process.
        // With group commit the cost is one fsync per batch, not per delivery.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        // Checkpoints run on their own connection (see `checkpoint_in_background`), not inside
        // the commit that happens to fill the WAL, which is the one writer's.
        .pragma("wal_autocheckpoint", "0")
        // The statement journal of a multi-row upsert: in memory, not a temporary file.
        .pragma("temp_store", "memory");
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .context("opening the SQLite database")?;
    tokio::spawn(checkpoint_in_background(pool.clone()));
    Ok(pool)
}

/// How often committed pages are copied from the WAL back into the database file.
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(250);

/// A WAL of more pages than this (64 MiB of 4 KiB pages) gets a checkpoint that waits for the
/// writer, so that the WAL can start over even under a load that never pauses.
const WAL_PAGES_LIMIT: i64 = 16_384;

/// Copies the WAL back into the database file every [`CHECKPOINT_PERIOD`], on a connection of its
/// own. SQLite would otherwise do it inside whichever commit crosses its threshold, and the one
/// writer (every delivery, every reconciler page) would wait for the copy and its fsync. A
/// passive checkpoint never blocks the writer; one that found more than [`WAL_PAGES_LIMIT`] pages
/// is followed by a restart checkpoint, which waits for the writer between transactions. Ends
/// when the pool is closed.
async fn checkpoint_in_background(pool: SqlitePool) {
    let mut every = tokio::time::interval(CHECKPOINT_PERIOD);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        every.tick().await;
        let passive: Result<(i64, i64, i64), _> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await;
        let result = match passive {
            Ok((_, wal_pages, _)) if wal_pages > WAL_PAGES_LIMIT => {
                sqlx::query("PRAGMA wal_checkpoint(RESTART)").execute(&pool).await.map(drop)
            }
            other => other.map(drop),
        };
        if let Err(error) = result
            && !pool.is_closed()
        {
            tracing::warn!(%error, "a WAL checkpoint failed; the next one will retry");
        }
    }
}

pub(super) async fn applied_migrations(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_optional(pool)
            .await
            .context("checking the migrations table")?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await
        .context("reading applied migrations")
}

pub(super) async fn record_deliveries(
    pool: &SqlitePool,
    changes: &[&Change],
    events: &mut [EventRow<'_>],
) -> Result<(), StoreError> {
    // IMMEDIATE takes the write lock at once: a deferred transaction that reads first could fail
    // to upgrade its lock (SQLITE_BUSY_SNAPSHOT) without waiting for the busy timeout.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.context("starting a write transaction")?;
    let outcomes = apply(&mut tx, changes).await?;
    super::fill_outcomes(events, outcomes);
    let logged: Vec<LoggedEvent<'_>> = events.iter().map(LoggedEvent::of).collect();
    let batch = serde_json::to_string(&logged).map_err(|e| StoreError::Corrupt(format!("a batch: {e}")))?;
    sqlx::query(LOG_EVENTS).bind(batch).execute(&mut *tx).await.context("logging deliveries")?;
    tx.commit().await.context("committing deliveries")
}

/// The apply rule on SQLite, for a whole batch in two statements: one reads how each incoming
/// change compares with its row (to tell a duplicate from a stale change), one is the guarded
/// upsert. The batch goes in as one JSON array that SQLite unpacks with `json_each`, so the cost
/// is per batch, not per row. The caller holds the write lock, so nothing changes in between.
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    changes: &[&Change],
) -> Result<Vec<ApplyOutcome>, StoreError> {
    let reduced = Reduced::new(changes);
    if reduced.winners.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<BatchRow<'_>> = reduced.winners.iter().map(|&i| BatchRow::of(changes[i])).collect();
    let batch = serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(format!("a batch: {e}")))?;
    let prior: Vec<(bool, bool)> = sqlx::query_as(CLASSIFY)
        .bind(&batch)
        .fetch_all(&mut *conn)
        .await
        .context("reading rows before applying changes")?;
    let returned: Vec<(String, String)> =
        sqlx::query_as(UPSERT).bind(&batch).fetch_all(&mut *conn).await.context("applying changes")?;
    let written: HashSet<(&str, &str)> = returned.iter().map(|(o, i)| (o.as_str(), i.as_str())).collect();
    let winner_outcomes = prior
        .into_iter()
        .zip(&rows)
        .map(|((existed, identical), row)| {
            match (written.contains(&(row.object, row.id)), existed, identical) {
                (true, false, _) => ApplyOutcome::Inserted,
                (true, true, _) => ApplyOutcome::Updated,
                (false, _, true) => ApplyOutcome::Duplicate,
                (false, _, false) => ApplyOutcome::Stale,
            }
        })
        .collect::<Vec<_>>();
    Ok(reduced.outcomes(&winner_outcomes))
}

/// One change as the batch's JSON carries it; `data` is the record's JSON as a string, so that
/// SQLite stores exactly that text.
#[derive(serde::Serialize)]
struct BatchRow<'a> {
    object: &'a str,
    id: &'a str,
    data: &'a str,
    partial: bool,
    updated_at: String,
    deleted_at: Option<String>,
    destroyed_at: Option<String>,
    source: &'static str,
}

impl<'a> BatchRow<'a> {
    fn of(change: &'a Change) -> Self {
        BatchRow {
            object: &change.object,
            id: &change.id,
            data: &change.data,
            partial: change.partial,
            updated_at: format_timestamp(change.updated_at),
            deleted_at: change.deleted_at.map(format_timestamp),
            destroyed_at: change.destroyed_at.map(format_timestamp),
            source: change.source.as_str(),
        }
    }
}

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
    fn of(event: &EventRow<'a>) -> Self {
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

/// Per incoming change, in batch order: whether its row exists, and whether the change is a
/// repeat of it (same version, same stage, same data; a partial record's data is not compared).
const CLASSIFY: &str = "\
SELECT r.id IS NOT NULL AS existed,
       coalesce(r.updated_at = j.value->>'updated_at'
                AND (r.deleted_at IS NULL) = (j.value->>'deleted_at' IS NULL)
                AND (r.destroyed_at IS NULL) = (j.value->>'destroyed_at' IS NULL)
                AND (j.value->>'partial' OR r.data = j.value->>'data'),
                0) AS identical
FROM json_each(?1) AS j
LEFT JOIN twenty_records AS r ON r.object = j.value->>'object' AND r.id = j.value->>'id'
ORDER BY CAST(j.key AS INTEGER)";

/// The guarded upsert over the batch. The `WHERE` is `rule::supersedes`, case for case; a partial
/// record (no `updatedAt`) keeps the stored data. (`WHERE true` is SQLite's way to let an
/// `INSERT … SELECT` take an `ON CONFLICT` clause.)
const UPSERT: &str = "\
INSERT INTO twenty_records AS r (object, id, data, updated_at, deleted_at, destroyed_at, source, synced_at)
SELECT j.value->>'object', j.value->>'id', j.value->>'data', j.value->>'updated_at',
       j.value->>'deleted_at', j.value->>'destroyed_at', j.value->>'source',
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM json_each(?1) AS j WHERE true
ON CONFLICT (object, id) DO UPDATE SET
    data = CASE WHEN json_extract(excluded.data, '$.updatedAt') IS NULL THEN r.data ELSE excluded.data END,
    updated_at = excluded.updated_at,
    deleted_at = excluded.deleted_at,
    destroyed_at = excluded.destroyed_at,
    source = excluded.source,
    synced_at = excluded.synced_at
WHERE CASE
    WHEN r.destroyed_at IS NOT NULL AND r.source = 'reconcile'
         AND excluded.source = 'reconcile' AND excluded.destroyed_at IS NULL
        THEN excluded.updated_at >= r.updated_at
    WHEN excluded.updated_at <> r.updated_at
        THEN excluded.updated_at > r.updated_at
    WHEN (CASE WHEN excluded.destroyed_at IS NOT NULL THEN 2 WHEN excluded.deleted_at IS NOT NULL THEN 1 ELSE 0 END)
      <> (CASE WHEN r.destroyed_at IS NOT NULL THEN 2 WHEN r.deleted_at IS NOT NULL THEN 1 ELSE 0 END)
        THEN (CASE WHEN excluded.destroyed_at IS NOT NULL THEN 2 WHEN excluded.deleted_at IS NOT NULL THEN 1 ELSE 0 END)
           > (CASE WHEN r.destroyed_at IS NOT NULL THEN 2 WHEN r.deleted_at IS NOT NULL THEN 1 ELSE 0 END)
    ELSE (excluded.source = 'reconcile' AND json_extract(excluded.data, '$.updatedAt') IS NOT NULL
          AND excluded.data <> r.data)
      OR (r.destroyed_at IS NOT NULL AND r.source = 'reconcile' AND excluded.source = 'webhook')
END
RETURNING object, id";

fn timestamp(row: &SqliteRow, column: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let text: Option<String> = row.try_get(column).context("reading a timestamp column")?;
    text.map(|t| parse_timestamp(&t).ok_or_else(|| StoreError::Corrupt(format!("{column} = {t:?}"))))
        .transpose()
}

fn source(row: &SqliteRow) -> Result<Source, StoreError> {
    let text: String = row.try_get("source").context("reading source")?;
    Source::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("source = {text:?}")))
}

pub(super) async fn prune_events(pool: &SqlitePool, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    let result = sqlx::query("DELETE FROM webhook_events WHERE received_at < ?1")
        .bind(format_timestamp(cutoff))
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
    let row = sqlx::query(
        "SELECT object, id, data, updated_at, deleted_at, destroyed_at, source, synced_at \
         FROM twenty_records WHERE object = ?1 AND id = ?2",
    )
    .bind(object)
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("reading a record")?;
    row.map(|row| {
        let data: String = row.try_get("data").context("reading data")?;
        Ok(StoredRecord {
            object: row.try_get("object").context("reading object")?,
            id: row.try_get("id").context("reading id")?,
            data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(format!("data: {e}")))?,
            updated_at: timestamp(&row, "updated_at")?
                .ok_or_else(|| StoreError::Corrupt("updated_at".into()))?,
            deleted_at: timestamp(&row, "deleted_at")?,
            destroyed_at: timestamp(&row, "destroyed_at")?,
            source: source(&row)?,
            synced_at: timestamp(&row, "synced_at")?
                .ok_or_else(|| StoreError::Corrupt("synced_at".into()))?,
        })
    })
    .transpose()
}

pub(super) async fn recent_events(pool: &SqlitePool, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, received_at, event_name, object, record_id, record_updated_at, outcome, error, body \
         FROM webhook_events ORDER BY id DESC LIMIT ?1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading the event log")?;
    rows.iter().map(event_row).collect()
}

pub(super) async fn events_since(
    pool: &SqlitePool,
    since: DateTime<Utc>,
    object: Option<&str>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, received_at, event_name, object, record_id, record_updated_at, outcome, error, body \
         FROM webhook_events \
         WHERE received_at >= ?1 AND (?2 IS NULL OR object = ?2) AND id > ?3 ORDER BY id LIMIT ?4",
    )
    .bind(format_timestamp(since))
    .bind(object)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading the event log")?;
    rows.iter().map(event_row).collect()
}

fn event_row(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: row.try_get("id").context("reading id")?,
        received_at: timestamp(row, "received_at")?
            .ok_or_else(|| StoreError::Corrupt("received_at".into()))?,
        event_name: row.try_get("event_name").context("reading event_name")?,
        object: row.try_get("object").context("reading object")?,
        record_id: row.try_get("record_id").context("reading record_id")?,
        record_updated_at: timestamp(row, "record_updated_at")?,
        outcome: row.try_get("outcome").context("reading outcome")?,
        error: row.try_get("error").context("reading error")?,
        body: row.try_get("body").context("reading body")?,
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use serde_json::json;

    use super::*;

    /// With SQLite's own checkpoints off, only the background task moves committed pages from the
    /// WAL into the database file.
    #[tokio::test]
    async fn committed_pages_reach_the_database_file_without_an_autocheckpoint() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("mirror.db");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display())).expect("a URL");
        let pool = connect(options).await.expect("opening the database");
        MIGRATOR.run(&pool).await.expect("migrating");
        let settled_size = std::fs::metadata(&path).expect("the database file").len();

        let padding = "x".repeat(2_000);
        let changes: Vec<Change> = (0..500)
            .map(|i| {
                let record =
                    json!({"id": format!("p{i}"), "updatedAt": "2026-09-21T10:00:00.000Z", "bio": padding});
                Change::upsert("person", &record, Source::Webhook).expect("a change")
            })
            .collect();
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("a transaction");
        apply(&mut tx, &changes.iter().collect::<Vec<_>>()).await.expect("applying");
        tx.commit().await.expect("committing");

        let deadline = tokio::time::Instant::now() + 10 * CHECKPOINT_PERIOD;
        loop {
            let size = std::fs::metadata(&path).expect("the database file").len();
            if size > settled_size + 1_000_000 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the database file stayed at {size} bytes");
            tokio::time::sleep(CHECKPOINT_PERIOD / 5).await;
        }
        pool.close().await;
    }
}
