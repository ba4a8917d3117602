//! The reconciler's bookkeeping in the store: discovered objects, per-object state, runs, the
//! single-runner lock, and the writes of a pass (a page with its checkpoint, a sweep's tombstones).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rule::ApplyOutcome;
use super::{Change, Context, Stage, Store, StoreError, postgres, sqlite};

/// An object discovered through Twenty's metadata API: a row of `twenty_objects`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectRow {
    pub name_singular: String,
    pub name_plural: String,
    pub label_singular: String,
    pub label_plural: String,
    pub metadata_id: String,
    pub is_custom: bool,
    pub fields: serde_json::Value,
    pub mirrored: bool,
}

/// A row of `sync_state`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SyncState {
    pub object: String,
    pub watermark: Option<DateTime<Utc>>,
    pub last_delta_at: Option<DateTime<Utc>>,
    pub last_full_at: Option<DateTime<Utc>>,
    pub last_run_id: Option<i64>,
    pub last_counts: Option<Counts>,
}

/// What a run (or one object's pass) did. `repaired` counts the writes that changed the mirror:
/// the changes the webhooks should have brought and did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub fetched: i64,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
    pub destroyed: i64,
    pub unchanged: i64,
    pub repaired: i64,
}

impl Counts {
    /// The counts of one applied page: each read is inserted, updated, deleted (an applied soft
    /// delete) or unchanged.
    pub fn of_page(changes: &[Change], outcomes: &[ApplyOutcome]) -> Counts {
        let mut counts = Counts { fetched: changes.len() as i64, ..Counts::default() };
        for (change, outcome) in changes.iter().zip(outcomes) {
            match (outcome, change.stage()) {
                (ApplyOutcome::Inserted, _) => counts.inserted += 1,
                (ApplyOutcome::Updated, Stage::SoftDeleted) => counts.deleted += 1,
                (ApplyOutcome::Updated, _) => counts.updated += 1,
                (ApplyOutcome::Duplicate | ApplyOutcome::Stale, _) => counts.unchanged += 1,
            }
            if outcome.changed() {
                counts.repaired += 1;
            }
        }
        counts
    }

    /// The counts of a sweep that marked `destroyed` rows.
    pub fn of_sweep(destroyed: u64) -> Counts {
        let destroyed = destroyed as i64;
        Counts { destroyed, repaired: destroyed, ..Counts::default() }
    }

    /// Binds the seven counts, in the order of their `sync_runs` columns (fetched, inserted,
    /// updated, deleted, destroyed, unchanged, repaired), as the query's next parameters.
    pub(crate) fn bind_to<'q, DB>(
        self,
        query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        DB: sqlx::Database,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        query
            .bind(self.fetched)
            .bind(self.inserted)
            .bind(self.updated)
            .bind(self.deleted)
            .bind(self.destroyed)
            .bind(self.unchanged)
            .bind(self.repaired)
    }

    /// Reads the seven count columns of a `sync_runs` row, on either backend.
    pub(crate) fn from_row<'r, R>(row: &'r R) -> Result<Counts, StoreError>
    where
        R: sqlx::Row,
        &'r str: sqlx::ColumnIndex<R>,
        i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let count = |column: &'r str| row.try_get::<i64, _>(column).context("reading a run's count");
        Ok(Counts {
            fetched: count("fetched")?,
            inserted: count("inserted")?,
            updated: count("updated")?,
            deleted: count("deleted")?,
            destroyed: count("destroyed")?,
            unchanged: count("unchanged")?,
            repaired: count("repaired")?,
        })
    }

    pub fn add(&mut self, other: Counts) {
        self.fetched += other.fetched;
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.destroyed += other.destroyed;
        self.unchanged += other.unchanged;
        self.repaired += other.repaired;
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(
    /// What started a run.
    Trigger { Schedule => "schedule", Operator => "operator", Startup => "startup" }
);
text_enum!(
    /// A delta pass reads what changed since the watermark; a full pass reads everything and
    /// then infers what was destroyed.
    Mode { Delta => "delta", Full => "full" }
);
text_enum!(
    RunStatus { Running => "running", Succeeded => "succeeded", Failed => "failed" }
);

/// A row of `sync_runs`; its JSON uses the column names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub trigger: Trigger,
    pub mode: Mode,
    pub objects: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub error: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// How many rows of an object the mirror holds, by stage, and when its last webhook came.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ObjectCounts {
    pub object: String,
    pub live: i64,
    pub soft_deleted: i64,
    pub destroyed: i64,
    pub last_webhook_at: Option<DateTime<Utc>>,
}

/// A page read by the reconciler, with where it leaves the object's checkpoint.
pub struct PageWrite<'a> {
    pub object: &'a str,
    pub changes: &'a [Change],
    /// Where the watermark moves, up and never down: the newest `updatedAt` of this page and the
    /// pages before it, once nothing before it can still fail to commit.
    pub watermark: Option<DateTime<Utc>>,
    /// The run whose counts the page adds to; `None` in a dry run, which writes nothing.
    pub run_id: Option<i64>,
    /// The run's lock. A SQLite lease is renewed in the page's own transaction, so a page commits
    /// only while its run still holds the lease, and costs no commit of its own.
    pub lock: Option<&'a ReconcilerLock>,
}

/// Proof that this process is the one reconciler; released by `Store::unlock_reconciler`.
pub struct ReconcilerLock(pub(crate) LockKind);

pub(crate) enum LockKind {
    /// A session advisory lock, held by this connection for as long as it lives.
    Postgres(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>),
    /// A lease row in `sync_lease`, renewed while the run goes on; it expires on its own if the
    /// holder dies.
    Sqlite { holder: String },
}

/// A new holder of the SQLite lease: `host/pid/n`, unique to one acquisition (two runs of one
/// process must exclude each other too), and naming the process, so that a lease left by a process
/// that died on this machine (killed mid-run) can be taken over at once instead of after its expiry.
fn lease_holder() -> String {
    static ACQUISITIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = ACQUISITIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}/{}/{}-{n}", hostname(), std::process::id(), Utc::now().timestamp_millis())
}

/// Whether `holder` names a process of this machine that no longer runs.
pub(crate) fn holder_is_dead(holder: &str) -> bool {
    let mut parts = holder.split('/');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else { return false };
    host == hostname()
        && pid != std::process::id().to_string()
        && !std::path::Path::new("/proc").join(pid).exists()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

impl Drop for ReconcilerLock {
    /// A lock dropped without `unlock_reconciler` (a failed or cancelled task) must not go back to
    /// the pool still holding the advisory lock: its connection is closed instead, ending the session.
    fn drop(&mut self) {
        if let LockKind::Postgres(connection) = &mut self.0
            && let Some(connection) = connection.take()
        {
            drop(connection.detach());
        }
    }
}

impl Store {
    /// Records what discovery found; objects no longer listed stay, marked not mirrored.
    pub async fn save_objects(&self, objects: &[ObjectRow], at: DateTime<Utc>) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::save_objects(pool, objects, at).await,
            Store::Postgres(pool) => postgres::sync::save_objects(pool, objects, at).await,
        }
    }

    pub async fn objects(&self) -> Result<Vec<ObjectRow>, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::objects(pool).await,
            Store::Postgres(pool) => postgres::sync::objects(pool).await,
        }
    }

    pub async fn sync_states(&self) -> Result<Vec<SyncState>, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::sync_states(pool).await,
            Store::Postgres(pool) => postgres::sync::sync_states(pool).await,
        }
    }

    /// How many pages the reconciler applies at once. SQLite has one writer, so a second page would
    /// only wait for the first's lock. PostgreSQL applies three, on three of its ten connections:
    /// one page at a time left a core idle while a page waited for its commit's flush or for the
    /// client, and on two cores three in flight measured a third faster than two.
    pub fn pages_in_flight(&self) -> usize {
        match self {
            Store::Sqlite(_) => 1,
            Store::Postgres(_) => 3,
        }
    }

    /// Applies a page and advances its checkpoint and its run's counts, in one transaction; a dry
    /// run rolls the transaction back and only reports the outcomes.
    pub async fn apply_page(&self, page: &PageWrite<'_>) -> Result<Vec<ApplyOutcome>, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::apply_page(pool, page).await,
            Store::Postgres(pool) => postgres::sync::apply_page(pool, page).await,
        }
    }

    /// Records that an object's pass completed.
    pub async fn finish_pass(
        &self,
        object: &str,
        mode: Mode,
        run_id: i64,
        counts: Counts,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::finish_pass(pool, object, mode, run_id, counts, at).await,
            Store::Postgres(pool) => {
                postgres::sync::finish_pass(pool, object, mode, run_id, counts, at).await
            }
        }
    }

    /// Rows of `object` that are live or soft-deleted.
    pub async fn count_present(&self, object: &str) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::count_present(pool, object).await,
            Store::Postgres(pool) => postgres::sync::count_present(pool, object).await,
        }
    }

    /// Ids of the rows of `object` that are not destroyed and that the mirror last wrote before
    /// `written_before`: the only rows a sweep may mark destroyed.
    pub async fn destroy_candidates(
        &self,
        object: &str,
        written_before: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::destroy_candidates(pool, object, written_before).await,
            Store::Postgres(pool) => postgres::sync::destroy_candidates(pool, object, written_before).await,
        }
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
        match self {
            Store::Sqlite(pool) => {
                sqlite::sync::mark_destroyed(pool, object, ids, destroyed_at, written_before, run_id).await
            }
            Store::Postgres(pool) => {
                postgres::sync::mark_destroyed(pool, object, ids, destroyed_at, written_before, run_id).await
            }
        }
    }

    pub async fn create_run(
        &self,
        trigger: Trigger,
        mode: Mode,
        objects: &[String],
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::create_run(pool, trigger, mode, objects, started_at).await,
            Store::Postgres(pool) => {
                postgres::sync::create_run(pool, trigger, mode, objects, started_at).await
            }
        }
    }

    /// Sets the objects a run covers, once discovery has told which they are.
    pub async fn set_run_objects(&self, run_id: i64, objects: &[String]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::set_run_objects(pool, run_id, objects).await,
            Store::Postgres(pool) => postgres::sync::set_run_objects(pool, run_id, objects).await,
        }
    }

    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::finish_run(pool, run_id, status, error, at).await,
            Store::Postgres(pool) => postgres::sync::finish_run(pool, run_id, status, error, at).await,
        }
    }

    /// Ends, as failed, runs left `running` by a process that died. Call only with the lock held.
    pub async fn fail_abandoned_runs(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::fail_abandoned_runs(pool, at).await,
            Store::Postgres(pool) => postgres::sync::fail_abandoned_runs(pool, at).await,
        }
    }

    /// The newest run still `running`, if any.
    pub async fn running_run(&self) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::running_run(pool).await,
            Store::Postgres(pool) => postgres::sync::running_run(pool).await,
        }
    }

    pub async fn runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::runs(pool, None, limit).await,
            Store::Postgres(pool) => postgres::sync::runs(pool, None, limit).await,
        }
    }

    pub async fn run(&self, id: i64) -> Result<Option<RunRow>, StoreError> {
        let rows = match self {
            Store::Sqlite(pool) => sqlite::sync::runs(pool, Some(id), 1).await?,
            Store::Postgres(pool) => postgres::sync::runs(pool, Some(id), 1).await?,
        };
        Ok(rows.into_iter().next())
    }

    pub async fn object_counts(&self) -> Result<Vec<ObjectCounts>, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::object_counts(pool).await,
            Store::Postgres(pool) => postgres::sync::object_counts(pool).await,
        }
    }

    /// Takes the single-runner lock, or answers `None` when another run (of this process or another)
    /// holds it.
    pub async fn try_lock_reconciler(&self) -> Result<Option<ReconcilerLock>, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::sync::try_lease(pool, &lease_holder()).await,
            Store::Postgres(pool) => postgres::sync::try_advisory_lock(pool).await,
        }
    }

    pub async fn unlock_reconciler(&self, mut lock: ReconcilerLock) -> Result<(), StoreError> {
        match (self, &mut lock.0) {
            (Store::Sqlite(pool), LockKind::Sqlite { holder }) => {
                sqlite::sync::release_lease(pool, holder).await
            }
            (_, LockKind::Postgres(connection)) => match connection.take() {
                Some(connection) => postgres::sync::release_advisory_lock(connection).await,
                None => Ok(()),
            },
            (Store::Postgres(_), LockKind::Sqlite { .. }) => Ok(()),
        }
    }
}
