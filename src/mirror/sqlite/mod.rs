//! The SQLite backend: the embedded default. Timestamps are fixed-width RFC 3339 text, so text order
//! is time order; `data` is canonical JSON text.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::change::Stage;
use super::change::{format_timestamp, parse_timestamp};
use super::rule::{self, ApplyOutcome, Reduced, StoredRow, Version};
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
    let mut read = sqlx::query(statement(&READ_STORED, size, read_stored_sql));
    for (ord, change) in padded(rows, size) {
        read = read
            .bind(change.map(|_| ord as i64))
            .bind(change.map(|c| c.object.as_str()))
            .bind(change.map(|c| c.id.as_str()))
            .bind(change.map(|c| c.data.as_str()));
    }
    let mut stored: Vec<Option<StoredRow>> = vec![None; rows.len()];
    for row in read.fetch_all(&mut *conn).await.context("reading rows before applying changes")? {
        let ord: i64 = row.try_get("ord").context("reading ord")?;
        let slot = stored
            .get_mut(ord as usize)
            .ok_or_else(|| StoreError::Corrupt(format!("a stored row for batch row {ord}")))?;
        *slot = Some(StoredRow {
            updated_at: timestamp(&row, "updated_at")?
                .ok_or_else(|| StoreError::Corrupt("updated_at".into()))?,
            stage: Stage::of(timestamp(&row, "deleted_at")?, timestamp(&row, "destroyed_at")?),
            source: source(&row)?,
            same_data: row.try_get("same_data").context("reading same_data")?,
        });
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
