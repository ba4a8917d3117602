//! The SQLite backend: the embedded default. Timestamps are fixed-width RFC 3339 text, so text order
//! is time order; `data` is canonical JSON text.

mod health;
mod lease;
mod records;
mod rows;
mod runs;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::backend::{ACQUIRE_TIMEOUT, Backend, Pool};
use super::error::{Context, StoreError};
use super::model::{
    Counts, DeliveryBatch, HourlyDeliveries, Mode, ObjectCounts, ObjectRow, PageWrite, PassHealth,
    ReconcilerLock, RefusedDeliveries, RunRow, RunStatus, StoredEvent, StoredRecord, SyncState, Trigger,
};
use super::read::{self, Freshness, Listing};
use super::rule::ApplyOutcome;
use super::views::{self, RegisteredView, ViewsReport};
use crate::change::Change;
use crate::query::ListQuery;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// SQLite has one writer at a time. Another process (a `reconcile` or `replay` command) may hold the
/// write lock for a moment; waiting for it is better than failing, and deliveries give up on their
/// own deadline long before this.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers (health, admin) and the one writer; more connections would only wait on the write lock.
const MAX_CONNECTIONS: u32 = 4;

/// The read API's own connections, opened when it is first used: apart from the writer's, so that
/// a burst of reads never makes a delivery wait for a connection. SQLite reads run on the
/// connection's own thread, so more of them than cores only take turns: four serve two cores.
/// Measured with two instead, the read benchmark's pages were no faster.
const READER_CONNECTIONS: u32 = 4;

/// Rows a reader's thread may hand over before it waits for them to be taken. sqlx's default of 50
/// is less than a page (up to 201 rows with the one that says whether more follow): the thread
/// and the request would take turns row by row.
const READER_ROW_BUFFER: usize = 256;

#[derive(Debug)]
pub(super) struct SqliteBackend {
    pool: SqlitePool,
    /// The read API's pool.
    readers: SqlitePool,
}

impl SqliteBackend {
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let options =
            SqliteConnectOptions::from_str(url).context("DATABASE_URL is not a valid SQLite URL")?;
        let pool = connect(options.clone()).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READER_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A ping is a round trip to the connection's thread before every read; an in-process
            // connection has no server or network to lose.
            .test_before_acquire(false)
            .connect_lazy_with(
                configured(options)
                    .row_buffer_size(READER_ROW_BUFFER)
                    // Not `read_only`: a read-only connection cannot open a WAL database whose
                    // -wal and -shm files are gone, as they are once every other connection closed.
                    .pragma("query_only", "ON"),
            );
        Ok(SqliteBackend { pool, readers })
    }
}

/// The settings of every connection, the writer's and the readers'.
fn configured(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
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
        .pragma("temp_store", "memory")
}

async fn connect(options: SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(configured(options))
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

async fn applied_migrations(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
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

/// The backend's share of the facade: each method is one call into `records`, `runs` or `lease`.
#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn pool(&self) -> Pool<'_> {
        Pool::Sqlite(&self.pool)
    }

    /// One: SQLite's writes are serial anyway.
    fn commit_slots(&self) -> usize {
        1
    }

    /// One: SQLite has one writer, so a second page would only wait for the first's lock.
    fn pages_in_flight(&self) -> usize {
        1
    }

    fn migrator(&self) -> &'static Migrator {
        &MIGRATOR
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        Ok(MIGRATOR.run(&self.pool).await?)
    }

    async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        applied_migrations(&self.pool).await
    }

    async fn close(&self) {
        tokio::join!(self.readers.close(), self.pool.close());
    }

    async fn record_deliveries(&self, batch: &mut DeliveryBatch<'_>) -> Result<(), StoreError> {
        records::record_deliveries(&self.pool, batch).await
    }

    async fn apply(&self, changes: &[&Change]) -> Result<Vec<ApplyOutcome>, StoreError> {
        // IMMEDIATE takes the write lock at once (see `records::record_deliveries`).
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.context("starting a write transaction")?;
        let outcomes = records::apply(&mut tx, changes).await?;
        tx.commit().await.context("committing changes")?;
        Ok(outcomes)
    }

    async fn prune_events(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        records::prune_events(&self.pool, cutoff).await
    }

    async fn fetch_record(&self, object: &str, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        records::fetch_record(&self.pool, object, id).await
    }

    async fn events_since(
        &self,
        since: DateTime<Utc>,
        object: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        records::events_since(&self.pool, since, object, after_id, limit).await
    }

    async fn recent_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        records::recent_events(&self.pool, limit).await
    }

    async fn deliveries_per_hour(&self, since: DateTime<Utc>) -> Result<Vec<HourlyDeliveries>, StoreError> {
        records::deliveries_per_hour(&self.pool, since).await
    }

    async fn save_objects(
        &self,
        objects: &[ObjectRow],
        at: DateTime<Utc>,
    ) -> Result<ViewsReport, StoreError> {
        runs::save_objects(&self.pool, objects, at).await
    }

    async fn registered_views(&self) -> Result<Vec<RegisteredView>, StoreError> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        views::sqlite::registered_views(&mut connection).await
    }

    fn view_reader_name(&self, name: &str) -> String {
        views::sqlite::reader_name(name)
    }

    fn create_view_statement(&self, view: &RegisteredView) -> String {
        views::sqlite::create_statement(&view.name, &view.definition)
    }

    fn view_column_type(&self, kind: views::ColumnKind) -> &'static str {
        kind.sqlite_type()
    }

    async fn objects(&self) -> Result<Vec<ObjectRow>, StoreError> {
        runs::objects(&self.pool).await
    }

    async fn sync_states(&self) -> Result<Vec<SyncState>, StoreError> {
        runs::sync_states(&self.pool).await
    }

    async fn apply_page(&self, page: &PageWrite<'_>) -> Result<Vec<ApplyOutcome>, StoreError> {
        runs::apply_page(&self.pool, page).await
    }

    async fn finish_pass(
        &self,
        object: &str,
        mode: Mode,
        run_id: i64,
        counts: Counts,
        at: DateTime<Utc>,
    ) -> Result<Option<PassHealth>, StoreError> {
        runs::finish_pass(&self.pool, object, mode, run_id, counts, at).await
    }

    async fn count_present(&self, object: &str) -> Result<i64, StoreError> {
        runs::count_present(&self.pool, object).await
    }

    async fn destroy_candidates(
        &self,
        object: &str,
        written_before: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        runs::destroy_candidates(&self.pool, object, written_before).await
    }

    async fn mark_destroyed(
        &self,
        object: &str,
        ids: &[String],
        destroyed_at: DateTime<Utc>,
        written_before: DateTime<Utc>,
        run_id: i64,
    ) -> Result<u64, StoreError> {
        runs::mark_destroyed(&self.pool, object, ids, destroyed_at, written_before, run_id).await
    }

    async fn create_run(
        &self,
        trigger: Trigger,
        mode: Mode,
        objects: &[String],
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        runs::create_run(&self.pool, trigger, mode, objects, started_at).await
    }

    async fn set_run_objects(&self, run_id: i64, objects: &[String]) -> Result<(), StoreError> {
        runs::set_run_objects(&self.pool, run_id, objects).await
    }

    async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        runs::finish_run(&self.pool, run_id, status, error, at).await
    }

    async fn fail_abandoned_runs(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        runs::fail_abandoned_runs(&self.pool, at).await
    }

    async fn running_run(&self) -> Result<Option<i64>, StoreError> {
        runs::running_run(&self.pool).await
    }

    async fn runs(&self, id: Option<i64>, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        runs::runs(&self.pool, id, limit).await
    }

    async fn object_counts(&self) -> Result<Vec<ObjectCounts>, StoreError> {
        runs::object_counts(&self.pool).await
    }

    /// The triggers of migration 0007 update the counters in the writer's transaction: SQLite has
    /// one writer at a time, so a shared counter row costs no concurrency and there is no delta.
    async fn fold_kept_counts(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn add_refusals(&self, refused: &[RefusedDeliveries], at: DateTime<Utc>) -> Result<(), StoreError> {
        health::add_refusals(&self.pool, refused, at).await
    }

    async fn refusals(&self) -> Result<Vec<RefusedDeliveries>, StoreError> {
        health::refusals(&self.pool).await
    }

    async fn read_listing(
        &self,
        object: &str,
        query: &ListQuery,
    ) -> Result<(Listing, Freshness), StoreError> {
        read::sqlite::listing(&self.readers, object, query).await
    }

    async fn read_record(&self, object: &str, id: &str) -> Result<Option<String>, StoreError> {
        read::sqlite::record(&self.readers, object, id).await
    }

    async fn read_records_by_ids(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        read::sqlite::records_by_ids(&self.readers, object, ids).await
    }

    async fn read_freshness(&self, object: &str) -> Result<Freshness, StoreError> {
        read::sqlite::freshness(&self.readers, object).await
    }

    async fn try_lock_reconciler(&self) -> Result<Option<ReconcilerLock>, StoreError> {
        lease::try_lease(&self.pool, &lease::new_holder()).await
    }

    async fn unlock_reconciler(&self, lock: ReconcilerLock) -> Result<(), StoreError> {
        lease::release_lease(&self.pool, lock).await
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use serde_json::json;

    use super::*;
    use crate::change::Source;

    /// Reads never wait for the writers' connections, and cannot write.
    #[tokio::test]
    async fn the_read_api_has_connections_of_its_own_that_cannot_write() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
        let backend = SqliteBackend::connect(&url).await.expect("opening the database");
        backend.migrate().await.expect("migrating");
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(backend.pool.acquire().await.expect("a writer's connection"));
        }
        let read = backend.read_freshness("person").await;
        assert!(read.is_ok(), "a read while every writer's connection is taken: {read:?}");
        drop(held);
        let write = sqlx::query("DELETE FROM sync_state").execute(&backend.readers).await;
        assert!(write.is_err(), "a reader's connection wrote");
        backend.close().await;
    }

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
        records::apply(&mut tx, &changes.iter().collect::<Vec<_>>()).await.expect("applying");
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
