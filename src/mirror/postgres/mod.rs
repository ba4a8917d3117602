//! The PostgreSQL backend: for production and for several instances. A batch is applied with one
//! statement over arrays, so a group commit costs a few round trips however many deliveries share it.

mod health;
mod lock;
mod records;
mod rows;
mod runs;
mod stats;

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor as _, PgPool};

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

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Group commit keeps up to four transactions in flight (see `writer.rs`), a reconciler run holds
/// one for its advisory lock and applies up to three pages at once; the rest serve readiness checks
/// and operators. A managed PostgreSQL often allows 25 to 100 connections per database,
/// shared by every instance.
const MAX_CONNECTIONS: u32 = 10;

/// The read API's own connections (see [`READERS_SESSION`]), opened when it is first used. Apart
/// from the writers' pool, so that a burst of reads never makes a delivery wait for a connection.
/// A listing takes one (its page, `totalCount` and freshness are one statement), a single record
/// two at once (its data and the freshness).
const READER_CONNECTIONS: u32 = 10;

#[derive(Debug)]
pub(super) struct PostgresBackend {
    pool: PgPool,
    /// The read API's pool.
    readers: PgPool,
}

impl PostgresBackend {
    pub(super) fn connect(url: &str) -> Result<Self, StoreError> {
        let options =
            PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid PostgreSQL URL")?;
        Ok(PostgresBackend::with_pool_size(options, MAX_CONNECTIONS))
    }

    pub(super) fn with_pool_size(options: PgConnectOptions, max_connections: u32) -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| Box::pin(async move { conn.execute(GENERIC_PLANS).await.map(drop) }))
            .connect_lazy_with(options.clone());
        let readers = PgPoolOptions::new()
            .max_connections(READER_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| Box::pin(async move { conn.execute(READERS_SESSION).await.map(drop) }))
            .connect_lazy_with(options);
        PostgresBackend { pool, readers }
    }
}

/// Every statement here is a keyed lookup or write whose best plan does not depend on its
/// parameters. Left to choose, PostgreSQL re-plans the apply statement on every execution (an
/// array parameter's length makes each custom plan look cheaper than the generic one), and that
/// planning, not the write, took most of the server's CPU: about 1 ms a statement. Set per session
/// rather than as a startup option, which connection poolers such as PgBouncer refuse.
const GENERIC_PLANS: &str = "SET plan_cache_mode = force_generic_plan";

/// The read API's statements are the opposite: built from a request's filter, whose values decide
/// the plan. A generic plan guesses a third of the rows for `updatedAt[gte]` and scans the table
/// where the index reads 5% of it (measured: 10× slower at 100,000 rows). PostgreSQL's own choice,
/// `auto`, plans with the values until the generic plan proves as cheap, as it does for a page
/// with no filter. Read-only: nothing on this pool may write.
const READERS_SESSION: &str = "SET plan_cache_mode = auto; SET default_transaction_read_only = on";

async fn applied_migrations(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .context("checking the migrations table")?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await
        .context("reading applied migrations")
}

/// The backend's share of the facade: each method is one call into `records`, `runs` or `lock`.
#[async_trait]
impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn pool(&self) -> Pool<'_> {
        Pool::Postgres(&self.pool)
    }

    /// Enough to overlap one batch's commit with the next batch's statements on a small server;
    /// more mostly adds lock contention between batches.
    fn commit_slots(&self) -> usize {
        4
    }

    /// Three, on three of its ten connections: one page at a time left a core idle while a page
    /// waited for its commit's flush or for the client, and on two cores three in flight measured
    /// a third faster than two.
    fn pages_in_flight(&self) -> usize {
        3
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
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
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
        views::postgres::registered_views(&mut connection).await
    }

    fn view_reader_name(&self, name: &str) -> String {
        views::postgres::reader_name(name)
    }

    fn create_view_statement(&self, view: &RegisteredView) -> String {
        views::postgres::create_statement(&view.name, &view.definition)
    }

    fn view_column_type(&self, kind: views::ColumnKind) -> &'static str {
        kind.postgres_type()
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
        stats::object_counts(&self.pool).await
    }

    async fn fold_kept_counts(&self) -> Result<(), StoreError> {
        stats::fold(&self.pool).await
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
        read::postgres::listing(&self.readers, object, query).await
    }

    async fn read_record(&self, object: &str, id: &str) -> Result<Option<String>, StoreError> {
        read::postgres::record(&self.readers, object, id).await
    }

    async fn read_records_by_ids(
        &self,
        object: &str,
        ids: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        read::postgres::records_by_ids(&self.readers, object, ids).await
    }

    async fn read_freshness(&self, object: &str) -> Result<Freshness, StoreError> {
        read::postgres::freshness(&self.readers, object).await
    }

    async fn try_lock_reconciler(&self) -> Result<Option<ReconcilerLock>, StoreError> {
        lock::try_advisory_lock(&self.pool).await
    }

    async fn unlock_reconciler(&self, lock: ReconcilerLock) -> Result<(), StoreError> {
        lock::release_advisory_lock(lock).await
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection as _, PgConnection};

    use super::*;

    /// Reads never wait for the writers' connections, cannot write, and are planned with their
    /// values rather than with the writers' generic plans. Needs `TEST_DATABASE_URL`.
    #[tokio::test]
    async fn the_read_api_has_connections_of_its_own_that_plan_with_their_values_and_cannot_write() {
        let Some(admin_url) = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
            return;
        };
        let name = format!("twenty_mirror_readers_{}", std::process::id());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connecting to TEST_DATABASE_URL");
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("creating a database");
        let options = PgConnectOptions::from_str(&admin_url).expect("a URL").database(&name);
        let backend = PostgresBackend::with_pool_size(options, 2);
        backend.migrate().await.expect("migrating");

        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(backend.pool.acquire().await.expect("a writer's connection"));
        }
        let read = backend.read_freshness("person").await;
        assert!(read.is_ok(), "a read while every writer's connection is taken: {read:?}");
        drop(held);
        for (name, wanted) in [("plan_cache_mode", "auto"), ("transaction_read_only", "on")] {
            let value: String = sqlx::query_scalar(&format!("SHOW {name}"))
                .fetch_one(&backend.readers)
                .await
                .expect("reading a setting");
            assert_eq!(value, wanted, "{name}");
        }
        let write = sqlx::query("DELETE FROM sync_state").execute(&backend.readers).await;
        assert!(write.is_err(), "a reader's connection wrote");

        backend.close().await;
        admin.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await.expect("dropping it");
    }
}
