//! The one interface both backends implement. `Store` holds one as `dyn Backend`, so a method
//! that one backend forgets is a compile error, not a missing match arm.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::{PgPool, SqlitePool};

use super::error::StoreError;
use super::model::{
    Counts, DeliveryBatch, HourlyDeliveries, Mode, ObjectCounts, ObjectRow, PageWrite, PassHealth,
    ReconcilerLock, RefusedDeliveries, RunRow, RunStatus, StoredEvent, StoredRecord, SyncState, Trigger,
};
use super::read::{Freshness, Listing};
use super::rule::ApplyOutcome;
use super::views::{ColumnKind, RegisteredView, ViewsReport};
use crate::change::Change;
use crate::query::ListQuery;

/// How long a request may wait for a database connection before the service answers 503. Twenty
/// gives up on a delivery after 5 s; answering well inside that lets it log a clear failure.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The pool beneath a store, for tests and tools that need SQL of their own.
#[derive(Debug, Clone, Copy)]
pub enum Pool<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

/// `async_trait` because `Store` needs the trait as an object, which native `async fn` in traits
/// cannot be: it boxes each call's future, one allocation a call, never one a row.
#[async_trait]
pub(crate) trait Backend: std::fmt::Debug + Send + Sync {
    fn name(&self) -> &'static str;
    fn pool(&self) -> Pool<'_>;
    /// How many group-commit transactions may be in flight at once.
    fn commit_slots(&self) -> usize;
    /// How many reconciler pages are applied at once.
    fn pages_in_flight(&self) -> usize;

    fn migrator(&self) -> &'static Migrator;
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError>;
    async fn close(&self);

    // The mirror and the event log (`records.rs`).
    async fn record_deliveries(&self, batch: &mut DeliveryBatch<'_>) -> Result<(), StoreError>;
    async fn apply(&self, changes: &[&Change]) -> Result<Vec<ApplyOutcome>, StoreError>;
    async fn prune_events(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
    async fn fetch_record(&self, object: &str, id: &str) -> Result<Option<StoredRecord>, StoreError>;
    async fn events_since(
        &self,
        since: DateTime<Utc>,
        object: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    async fn recent_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError>;
    async fn deliveries_per_hour(&self, since: DateTime<Utc>) -> Result<Vec<HourlyDeliveries>, StoreError>;

    // The reconciler's bookkeeping (`runs.rs`).
    async fn save_objects(&self, objects: &[ObjectRow], at: DateTime<Utc>)
    -> Result<ViewsReport, StoreError>;
    async fn objects(&self) -> Result<Vec<ObjectRow>, StoreError>;

    // The typed views (`views/`).
    async fn registered_views(&self) -> Result<Vec<RegisteredView>, StoreError>;
    /// A view's name as a reader writes it: `twenty.person` on PostgreSQL, `person` on SQLite.
    fn view_reader_name(&self, name: &str) -> String;
    /// The statement that created a registered view.
    fn create_view_statement(&self, view: &RegisteredView) -> String;
    /// The type a view's column of `kind` has here.
    fn view_column_type(&self, kind: ColumnKind) -> &'static str;
    async fn sync_states(&self) -> Result<Vec<SyncState>, StoreError>;
    async fn apply_page(&self, page: &PageWrite<'_>) -> Result<Vec<ApplyOutcome>, StoreError>;
    async fn finish_pass(
        &self,
        object: &str,
        mode: Mode,
        run_id: i64,
        counts: Counts,
        at: DateTime<Utc>,
    ) -> Result<Option<PassHealth>, StoreError>;
    async fn count_present(&self, object: &str) -> Result<i64, StoreError>;
    async fn destroy_candidates(
        &self,
        object: &str,
        written_before: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;
    async fn mark_destroyed(
        &self,
        object: &str,
        ids: &[String],
        destroyed_at: DateTime<Utc>,
        written_before: DateTime<Utc>,
        run_id: i64,
    ) -> Result<u64, StoreError>;
    async fn create_run(
        &self,
        trigger: Trigger,
        mode: Mode,
        objects: &[String],
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError>;
    async fn set_run_objects(&self, run_id: i64, objects: &[String]) -> Result<(), StoreError>;
    async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn fail_abandoned_runs(&self, at: DateTime<Utc>) -> Result<u64, StoreError>;
    async fn running_run(&self) -> Result<Option<i64>, StoreError>;
    /// Runs, newest first: the one run `id`, or the latest `limit`.
    async fn runs(&self, id: Option<i64>, limit: i64) -> Result<Vec<RunRow>, StoreError>;
    async fn object_counts(&self) -> Result<Vec<ObjectCounts>, StoreError>;
    /// Folds what writers appended into the kept counts, where a backend keeps them apart.
    async fn fold_kept_counts(&self) -> Result<(), StoreError>;

    // Refused deliveries since each object's last pass (`health.rs`).
    async fn add_refusals(&self, refused: &[RefusedDeliveries], at: DateTime<Utc>) -> Result<(), StoreError>;
    async fn refusals(&self) -> Result<Vec<RefusedDeliveries>, StoreError>;

    // The read API (`read/`).
    async fn read_listing(&self, object: &str, query: &ListQuery)
    -> Result<(Listing, Freshness), StoreError>;
    async fn read_record(&self, object: &str, id: &str) -> Result<Option<String>, StoreError>;
    async fn read_records_by_ids(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<(String, String)>, StoreError>;
    async fn read_freshness(&self, object: &str) -> Result<Freshness, StoreError>;

    // The single-runner lock (`lease.rs`, `lock.rs`).
    async fn try_lock_reconciler(&self) -> Result<Option<ReconcilerLock>, StoreError>;
    async fn unlock_reconciler(&self, lock: ReconcilerLock) -> Result<(), StoreError>;
}
