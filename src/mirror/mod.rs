//! The store: the mirror's tables, the apply rule that every write goes through, and the event log.
//!
//! One interface, two backends. SQLite is the embedded default; PostgreSQL serves production and
//! several instances. Each backend module holds its own static SQL; this module picks one.

pub mod change;
mod postgres;
pub mod rule;
mod sqlite;
pub mod sync;
pub mod views;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, SqlitePool};

pub use change::{Change, ChangeError, Source, Stage};
pub use rule::ApplyOutcome;

use crate::config::DatabaseUrl;

/// How long a request may wait for a database connection before the service answers 503. Twenty
/// gives up on a delivery after 5 s; answering well inside that lets it log a clear failure.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

/// What a verified delivery did, as `webhook_events.outcome` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventOutcome {
    Applied,
    Stale,
    Duplicate,
    Ignored,
    Failed,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Applied => "applied",
            EventOutcome::Stale => "stale",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::Ignored => "ignored",
            EventOutcome::Failed => "failed",
        }
    }
}

impl From<ApplyOutcome> for EventOutcome {
    fn from(outcome: ApplyOutcome) -> Self {
        match outcome {
            ApplyOutcome::Inserted | ApplyOutcome::Updated => EventOutcome::Applied,
            ApplyOutcome::Duplicate => EventOutcome::Duplicate,
            ApplyOutcome::Stale => EventOutcome::Stale,
        }
    }
}

/// A verified delivery on its way to the event log, with what to do with it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub received_at: DateTime<Utc>,
    pub event_name: Option<String>,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub record_updated_at: Option<DateTime<Utc>>,
    pub body: String,
    pub disposition: Disposition,
}

#[derive(Debug, Clone)]
pub enum Disposition {
    /// A record event: applied to the mirror, logged with the apply outcome.
    Apply(Change),
    /// Not a record event we apply (`metadata.*`, an unknown action): logged as `ignored`.
    Ignore,
    /// Verified but malformed: logged as `failed` with the reason.
    Fail(String),
}

/// A row of `twenty_records`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub object: String,
    pub id: String,
    pub data: serde_json::Value,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub destroyed_at: Option<DateTime<Utc>>,
    pub source: Source,
    pub synced_at: DateTime<Utc>,
}

/// A row of `webhook_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub event_name: Option<String>,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub record_updated_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub error: Option<String>,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("applying migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database has not applied every migration this build needs; run `twenty-mirror migrate`")]
    MigrationsPending,
    #[error("the database holds a value the mirror cannot read: {0}")]
    Corrupt(String),
    #[error("the reconciler's lease expired while it ran; another reconciler may have taken over")]
    LockLost,
}

impl StoreError {
    /// Whether the database could not be reached or is refusing work for now (the answer is 503),
    /// as opposed to a fault in what we asked of it.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database { source, .. } = self else { return false };
        match source {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(e) => {
                // A FATAL error ends the session: the server refused or dropped the connection
                // (shutting down, not accepting connections, too many clients).
                let fatal = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some_and(|pg| {
                    matches!(
                        pg.severity(),
                        sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
                    )
                });
                let code = e.code().unwrap_or_default();
                // PostgreSQL: connection exceptions (08), insufficient resources (53), operator
                // intervention such as a shutdown or a terminated backend (57). SQLite: BUSY (5) and
                // LOCKED (6), which outlast the busy timeout only when something holds the database.
                fatal
                    || code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57")
                    || matches!(code.as_ref(), "5" | "6" | "517" | "262")
            }
            _ => false,
        }
    }
}

pub(crate) trait Context<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Database { context, source })
    }
}

/// The mirror's database. Cloning shares the pool.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Opens a pool; a SQLite file is created if missing. Does not wait for a PostgreSQL server to
    /// answer: connections are made when needed, so the service starts and reports 503 until the
    /// database is back.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, StoreError> {
        let url = url.expose();
        if url.starts_with("sqlite:") {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .context("DATABASE_URL is not a valid SQLite URL")?;
            sqlite::connect(options).await.map(Store::Sqlite)
        } else {
            let options = sqlx::postgres::PgConnectOptions::from_str(url)
                .context("DATABASE_URL is not a valid PostgreSQL URL")?;
            Ok(Store::Postgres(postgres::connect(options, postgres::MAX_CONNECTIONS)))
        }
    }

    /// A PostgreSQL store with a pool of another size, set up as [`Store::connect`] sets it up: for
    /// load generators that compare a connection per task with the service's own pool.
    pub fn postgres_with_pool_size(options: sqlx::postgres::PgConnectOptions, max_connections: u32) -> Self {
        Store::Postgres(postgres::connect(options, max_connections))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations. Safe to run from several instances at once: each backend's
    /// migrator takes a lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::MIGRATOR.run(pool).await?,
            Store::Postgres(pool) => postgres::MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// The database answers and has applied every migration this build knows.
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        let (applied, expected) = match self {
            Store::Sqlite(pool) => (sqlite::applied_migrations(pool).await?, &sqlite::MIGRATOR),
            Store::Postgres(pool) => (postgres::applied_migrations(pool).await?, &postgres::MIGRATOR),
        };
        let all_applied = expected.iter().all(|m| applied.contains(&m.version));
        if all_applied { Ok(()) } else { Err(StoreError::MigrationsPending) }
    }

    /// Applies and logs a batch of deliveries in one transaction (group commit), returning each
    /// delivery's outcome in order. Nothing is committed unless everything is.
    pub async fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<Vec<EventOutcome>, StoreError> {
        let mut changes = Vec::new();
        let mut logged = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let (outcome, error) = match &delivery.disposition {
                Disposition::Apply(change) => {
                    changes.push(change);
                    (None, None)
                }
                Disposition::Ignore => (Some(EventOutcome::Ignored), None),
                Disposition::Fail(reason) => (Some(EventOutcome::Failed), Some(reason.as_str())),
            };
            logged.push(EventRow { delivery, outcome, error });
        }
        match self {
            Store::Sqlite(pool) => sqlite::record_deliveries(pool, &changes, &mut logged).await?,
            Store::Postgres(pool) => postgres::record_deliveries(pool, &changes, &mut logged).await?,
        }
        logged
            .iter()
            .map(|e| e.outcome.ok_or_else(|| StoreError::Corrupt("an outcome was lost".into())))
            .collect()
    }

    /// Applies changes in one transaction, without the event log; returns each change's outcome.
    pub async fn apply(&self, changes: &[Change]) -> Result<Vec<ApplyOutcome>, StoreError> {
        let changes: Vec<&Change> = changes.iter().collect();
        match self {
            Store::Sqlite(pool) => {
                let mut tx =
                    pool.begin_with("BEGIN IMMEDIATE").await.context("starting a write transaction")?;
                let outcomes = sqlite::apply(&mut tx, &changes).await?;
                tx.commit().await.context("committing changes")?;
                Ok(outcomes)
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await.context("starting a transaction")?;
                let outcomes = postgres::apply(&mut tx, &changes).await?;
                tx.commit().await.context("committing changes")?;
                Ok(outcomes)
            }
        }
    }

    /// Deletes deliveries received before `cutoff`; returns how many.
    pub async fn prune_events(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::prune_events(pool, cutoff).await,
            Store::Postgres(pool) => postgres::prune_events(pool, cutoff).await,
        }
    }

    /// One row of the mirror, tombstones included.
    pub async fn fetch_record(&self, object: &str, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::fetch_record(pool, object, id).await,
            Store::Postgres(pool) => postgres::fetch_record(pool, object, id).await,
        }
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
        match self {
            Store::Sqlite(pool) => sqlite::events_since(pool, since, object, after_id, limit).await,
            Store::Postgres(pool) => postgres::events_since(pool, since, object, after_id, limit).await,
        }
    }

    /// The newest deliveries in the event log, newest first.
    pub async fn recent_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::recent_events(pool, limit).await,
            Store::Postgres(pool) => postgres::recent_events(pool, limit).await,
        }
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
    }
}

/// A `webhook_events` row being written; `outcome` is filled in by the apply step for record events.
#[derive(Debug)]
struct EventRow<'a> {
    delivery: &'a Delivery,
    outcome: Option<EventOutcome>,
    error: Option<&'a str>,
}

/// Fills in the outcome of each record event, in order, from the apply step's outcomes.
fn fill_outcomes(events: &mut [EventRow<'_>], outcomes: Vec<ApplyOutcome>) {
    let mut outcomes = outcomes.into_iter();
    for event in events.iter_mut().filter(|e| e.outcome.is_none()) {
        event.outcome = outcomes.next().map(EventOutcome::from);
    }
}
