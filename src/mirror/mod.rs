//! The store: the mirror's tables, the apply rule that every write goes through, and the event log.
//!
//! One interface, two backends. SQLite is the embedded default; PostgreSQL serves production and
//! several instances. Below the [`Store`]: its vocabulary (`model`), its errors, the rows both
//! backends read (`rows`) and the [`Backend`](backend::Backend) trait; each backend holds its own
//! static SQL and implements that trait. Nothing here knows the transport, the reconciler or the
//! application's settings.

mod backend;
mod error;
mod model;
mod postgres;
pub mod read;
mod rows;
pub mod rule;
mod sqlite;
pub mod views;
pub mod writer;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use backend::Pool;
pub use error::StoreError;
pub use model::{
    Counts, Delivery, Disposition, EventOutcome, HourlyDeliveries, Mode, ObjectCounts, ObjectRow, PageWrite,
    PassHealth, ReconcilerLock, RefusedDeliveries, RunRow, RunStatus, StoredEvent, StoredRecord, SyncState,
    Trigger, WebhookHealth,
};
pub use rule::ApplyOutcome;

use backend::Backend;
use model::DeliveryBatch;
use postgres::PostgresBackend;
use sqlite::SqliteBackend;

use crate::change::Change;
use crate::query::ListQuery;
use read::{Freshness, Listing};

/// The mirror's database. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl Store {
    /// Opens a pool on `url` (`sqlite:…` or `postgres://…`); a SQLite file is created if missing.
    /// Does not wait for a PostgreSQL server to answer: connections are made when needed, so the
    /// service starts and reports 503 until the database is back.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let backend: Arc<dyn Backend> = if url.starts_with("sqlite:") {
            Arc::new(SqliteBackend::connect(url).await?)
        } else {
            Arc::new(PostgresBackend::connect(url)?)
        };
        Ok(Store { backend })
    }

    /// A PostgreSQL store with a pool of another size, set up as [`Store::connect`] sets it up: for
    /// load generators that compare a connection per task with the service's own pool.
    pub fn postgres_with_pool_size(options: sqlx::postgres::PgConnectOptions, max_connections: u32) -> Self {
        Store { backend: Arc::new(PostgresBackend::with_pool_size(options, max_connections)) }
    }

    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// The pool beneath, for tests and tools that need SQL of their own.
    pub fn pool(&self) -> Pool<'_> {
        self.backend.pool()
    }

    /// How many group-commit transactions suit the backend (see `writer.rs`).
    pub fn commit_slots(&self) -> usize {
        self.backend.commit_slots()
    }

    /// How many pages the reconciler applies at once.
    pub fn pages_in_flight(&self) -> usize {
        self.backend.pages_in_flight()
    }

    /// Applies pending migrations. Safe to run from several instances at once: each backend's
    /// migrator takes a lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.backend.migrate().await
    }

    /// The database answers and has applied every migration this build knows.
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        let applied = self.backend.applied_migrations().await?;
        let all_applied = self.backend.migrator().iter().all(|m| applied.contains(&m.version));
        if all_applied { Ok(()) } else { Err(StoreError::MigrationsPending) }
    }

    /// Whether the database answers a trivial query: what `database_up` reports.
    pub async fn ping(&self) -> Result<(), StoreError> {
        use error::Context as _;
        match self.backend.pool() {
            Pool::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Pool::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
        .context("pinging the database")
    }

    /// Applies and logs a batch of deliveries in one transaction (group commit), returning each
    /// delivery's outcome in order. Nothing is committed unless everything is.
    pub async fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<Vec<EventOutcome>, StoreError> {
        let mut batch = DeliveryBatch::new(deliveries);
        self.backend.record_deliveries(&mut batch).await?;
        batch.outcomes()
    }

    /// Applies changes in one transaction, without the event log; returns each change's outcome.
    pub async fn apply(&self, changes: &[Change]) -> Result<Vec<ApplyOutcome>, StoreError> {
        let changes: Vec<&Change> = changes.iter().collect();
        self.backend.apply(&changes).await
    }

    /// Deletes deliveries received before `cutoff`; returns how many.
    pub async fn prune_events(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.backend.prune_events(cutoff).await
    }

    /// One row of the mirror, tombstones included.
    pub async fn fetch_record(&self, object: &str, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        self.backend.fetch_record(object, id).await
    }

    /// Deliveries received at or after `since` (of one object, if given) with an id above
    /// `after_id`, oldest first: the pages a replay walks through.
    pub async fn events_since(
        &self,
        since: DateTime<Utc>,
        object: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.backend.events_since(since, object, after_id, limit).await
    }

    /// The newest deliveries in the event log, newest first.
    pub async fn recent_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        self.backend.recent_events(limit).await
    }

    /// Deliveries received since `since`, counted per hour and outcome, oldest hour first. The
    /// range is bounded by `since` and read through the index on `received_at`.
    pub async fn deliveries_per_hour(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<HourlyDeliveries>, StoreError> {
        self.backend.deliveries_per_hour(since).await
    }

    pub async fn close(&self) {
        self.backend.close().await
    }

    /// Records what discovery found; objects no longer listed stay, marked not mirrored. The typed
    /// views follow in the same transaction: a reader sees the old views or the new ones, never a
    /// half-made one. Answers what became of each view.
    pub async fn save_objects(
        &self,
        objects: &[ObjectRow],
        at: DateTime<Utc>,
    ) -> Result<views::ViewsReport, StoreError> {
        self.backend.save_objects(objects, at).await
    }

    /// The typed views the service created, by name.
    pub async fn views(&self) -> Result<Vec<views::RegisteredView>, StoreError> {
        self.backend.registered_views().await
    }

    /// A view's name as a reader writes it: `twenty.person` on PostgreSQL, `person` on SQLite.
    pub fn view_reader_name(&self, name: &str) -> String {
        self.backend.view_reader_name(name)
    }

    /// The type a view's column of `kind` has in this database.
    pub fn view_column_type(&self, kind: views::ColumnKind) -> &'static str {
        self.backend.view_column_type(kind)
    }

    /// The statement that created a registered view, as `twenty-mirror views --sql` prints it.
    pub fn create_view_statement(&self, view: &views::RegisteredView) -> String {
        self.backend.create_view_statement(view)
    }

    pub async fn objects(&self) -> Result<Vec<ObjectRow>, StoreError> {
        self.backend.objects().await
    }

    pub async fn sync_states(&self) -> Result<Vec<SyncState>, StoreError> {
        self.backend.sync_states().await
    }

    /// Applies a page and advances its checkpoint and its run's counts, in one transaction; a dry
    /// run rolls the transaction back and only reports the outcomes.
    pub async fn apply_page(&self, page: &PageWrite<'_>) -> Result<Vec<ApplyOutcome>, StoreError> {
        self.backend.apply_page(page).await
    }

    /// Records that an object's pass completed, and closes its window of refusals. A delta pass
    /// also judges the object's webhooks (see [`WebhookHealth`]) and answers with the verdict.
    pub async fn finish_pass(
        &self,
        object: &str,
        mode: Mode,
        run_id: i64,
        counts: Counts,
        at: DateTime<Utc>,
    ) -> Result<Option<PassHealth>, StoreError> {
        self.backend.finish_pass(object, mode, run_id, counts, at).await
    }

    /// Adds refused deliveries to the counts since each object's last pass. A delivery that names
    /// an object the mirror does not know counts as naming none.
    pub async fn add_refusals(
        &self,
        refused: &[RefusedDeliveries],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.backend.add_refusals(refused, at).await
    }

    /// The deliveries refused since each object's last pass, by object and reason.
    pub async fn refusals(&self) -> Result<Vec<RefusedDeliveries>, StoreError> {
        self.backend.refusals().await
    }

    /// Rows of `object` that are live or soft-deleted, from the kept counts: no scan of the mirror.
    pub async fn count_present(&self, object: &str) -> Result<i64, StoreError> {
        self.backend.count_present(object).await
    }

    /// Ids of the rows of `object` that are not destroyed and that the mirror last wrote before
    /// `written_before`: the only rows a sweep may mark destroyed.
    pub async fn destroy_candidates(
        &self,
        object: &str,
        written_before: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.backend.destroy_candidates(object, written_before).await
    }

    /// Marks rows destroyed by inference (source `reconcile`, dated `destroyed_at`), re-checking in
    /// the same statement that each is still a candidate, and adds the count to the run. Returns
    /// how many rows changed.
    pub async fn mark_destroyed(
        &self,
        object: &str,
        ids: &[String],
        destroyed_at: DateTime<Utc>,
        written_before: DateTime<Utc>,
        run_id: i64,
    ) -> Result<u64, StoreError> {
        self.backend.mark_destroyed(object, ids, destroyed_at, written_before, run_id).await
    }

    pub async fn create_run(
        &self,
        trigger: Trigger,
        mode: Mode,
        objects: &[String],
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.backend.create_run(trigger, mode, objects, started_at).await
    }

    /// Sets the objects a run covers, once discovery has told which they are.
    pub async fn set_run_objects(&self, run_id: i64, objects: &[String]) -> Result<(), StoreError> {
        self.backend.set_run_objects(run_id, objects).await
    }

    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.backend.finish_run(run_id, status, error, at).await
    }

    /// Ends, as failed, runs left `running` by a process that died. Call only with the lock held.
    pub async fn fail_abandoned_runs(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        self.backend.fail_abandoned_runs(at).await
    }

    /// The newest run still `running`, if any.
    pub async fn running_run(&self) -> Result<Option<i64>, StoreError> {
        self.backend.running_run().await
    }

    pub async fn runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        self.backend.runs(None, limit).await
    }

    pub async fn run(&self, id: i64) -> Result<Option<RunRow>, StoreError> {
        Ok(self.backend.runs(Some(id), 1).await?.into_iter().next())
    }

    /// The kept counts per object: a read of a few rows, whatever the mirror's size.
    pub async fn object_counts(&self) -> Result<Vec<ObjectCounts>, StoreError> {
        self.backend.object_counts().await
    }

    /// Folds the deltas that writers appended into the kept counts (PostgreSQL; nothing to do on
    /// SQLite), so that reading them stays a read of a few rows.
    pub async fn fold_kept_counts(&self) -> Result<(), StoreError> {
        self.backend.fold_kept_counts().await
    }

    /// A page of a read API listing and its `totalCount`, with the object's freshness, read at
    /// once. An unfiltered listing's `totalCount` is the kept count of live records, so that paging
    /// through a million records does not count them for every page.
    pub async fn list_records(
        &self,
        object: &str,
        query: &ListQuery,
    ) -> Result<(Listing, Freshness), StoreError> {
        self.backend.read_listing(object, query).await
    }

    /// One live record's data for `GET /rest/{plural}/{id}`, with the object's freshness.
    pub async fn read_record(
        &self,
        object: &str,
        id: &str,
    ) -> Result<(Option<String>, Freshness), StoreError> {
        tokio::try_join!(self.backend.read_record(object, id), self.backend.read_freshness(object))
    }

    /// The live records of `object` among `ids`, as `(id, data)`: the targets of a page's
    /// many-to-one relations, in one statement.
    pub async fn records_by_ids(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.backend.read_records_by_ids(object, ids).await
    }

    /// Takes the single-runner lock, or answers `None` when another run (of this process or another)
    /// holds it.
    pub async fn try_lock_reconciler(&self) -> Result<Option<ReconcilerLock>, StoreError> {
        self.backend.try_lock_reconciler().await
    }

    pub async fn unlock_reconciler(&self, lock: ReconcilerLock) -> Result<(), StoreError> {
        self.backend.unlock_reconciler(lock).await
    }
}
