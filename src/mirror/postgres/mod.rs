//! The PostgreSQL backend: for production and for several instances. A batch is applied with one
//! statement over arrays, so a group commit costs a few round trips however many deliveries share it.

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Executor as _, PgConnection, PgPool, Postgres, Row};

use super::rule::{ApplyOutcome, Reduced};
use super::sync::PageWrite;
use super::{ACQUIRE_TIMEOUT, Change, Context, EventRow, Source, StoreError, StoredEvent, StoredRecord};

pub(crate) mod sync;

pub(super) static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Group commit keeps up to four transactions in flight (see `writer.rs`), a reconciler run holds
/// one for its advisory lock and applies up to three pages at once; the rest serve readiness checks
/// and operators. A managed PostgreSQL often allows 25 to 100 connections per database,
/// shared by every instance.
pub(super) const MAX_CONNECTIONS: u32 = 10;

pub(super) fn connect(options: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _| Box::pin(async move { conn.execute(GENERIC_PLANS).await.map(drop) }))
        .connect_lazy_with(options)
}

/// Every statement here is a keyed lookup or write whose best plan does not depend on its
/// parameters. Left to choose, PostgreSQL re-plans the apply statement on every execution (an
/// array parameter's length makes each custom plan look cheaper than the generic one), and that
/// planning, not the write, took most of the server's CPU: about 1 ms a statement. Set per session
/// rather than as a startup option, which connection poolers such as PgBouncer refuse.
const GENERIC_PLANS: &str = "SET plan_cache_mode = force_generic_plan";

pub(super) async fn applied_migrations(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
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

pub(super) async fn record_deliveries(
    pool: &PgPool,
    changes: &[&Change],
    events: &mut [EventRow<'_>],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.context("starting a transaction")?;
    let outcomes = apply(&mut tx, changes).await?;
    super::fill_outcomes(events, outcomes);
    sqlx::query(
        "INSERT INTO webhook_events \
         (received_at, event_name, object, record_id, record_updated_at, outcome, error, body) \
         SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], \
                              $6::text[], $7::text[], $8::text[])",
    )
    .bind(events.iter().map(|e| e.delivery.received_at).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.delivery.event_name.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.delivery.object.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.delivery.record_id.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.delivery.record_updated_at).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.outcome.map(|o| o.as_str())).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.error).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.delivery.body.as_str()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .context("logging deliveries")?;
    tx.commit().await.context("committing deliveries")
}

/// The apply rule on PostgreSQL: the batch, reduced to one change per row, in one guarded upsert.
pub(super) async fn apply(
    conn: &mut PgConnection,
    changes: &[&Change],
) -> Result<Vec<ApplyOutcome>, StoreError> {
    let reduced = Reduced::new(changes);
    if reduced.winners.is_empty() {
        return Ok(Vec::new());
    }
    let winners: Vec<&Change> = reduced.winners.iter().map(|&i| changes[i]).collect();
    let rows = bind_winners(APPLY, &winners).fetch_all(&mut *conn).await.context("applying changes")?;
    outcomes(&reduced, &rows)
}

/// A reconciler page, its watermark and its run's counts, in one statement (see [`APPLY_PAGE`]).
pub(super) async fn apply_page(
    pool: &PgPool,
    page: &PageWrite<'_>,
    run_id: i64,
) -> Result<Vec<ApplyOutcome>, StoreError> {
    let changes: Vec<&Change> = page.changes.iter().collect();
    let reduced = Reduced::new(&changes);
    let winners: Vec<&Change> = reduced.winners.iter().map(|&i| changes[i]).collect();
    let rows = bind_winners(APPLY_PAGE, &winners)
        .bind(page.object)
        .bind(page.watermark)
        .bind(run_id)
        .bind(changes.len() as i64)
        .fetch_all(pool)
        .await
        .context("applying a page")?;
    outcomes(&reduced, &rows)
}

/// An apply statement with a batch's winners bound as its arrays, $1 to $7.
fn bind_winners<'q>(sql: &'q str, winners: &[&'q Change]) -> Query<'q, Postgres, PgArguments> {
    sqlx::query(sql)
        .bind(winners.iter().map(|c| c.object.as_str()).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.id.as_str()).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.data.as_str()).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.updated_at).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.deleted_at).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.destroyed_at).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.source.as_str()).collect::<Vec<_>>())
}

/// Every change's outcome, from the statement's rows for the winners (in `winners` order).
fn outcomes(reduced: &Reduced, rows: &[PgRow]) -> Result<Vec<ApplyOutcome>, StoreError> {
    let winner_outcomes = rows
        .iter()
        .map(|row| {
            let inserted: Option<bool> = row.try_get("inserted").context("reading an apply outcome")?;
            let identical: bool = row.try_get("identical").context("reading an apply outcome")?;
            Ok(match (inserted, identical) {
                (Some(true), _) => ApplyOutcome::Inserted,
                (Some(false), _) => ApplyOutcome::Updated,
                (None, true) => ApplyOutcome::Duplicate,
                (None, false) => ApplyOutcome::Stale,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(reduced.outcomes(&winner_outcomes))
}

/// The guarded upsert over arrays, one element per row, in `(object, id)` order so that concurrent
/// batches lock rows in the same order. Rows the rule would not change are left out before the
/// insert (`ON CONFLICT` locks every row it considers, a write even when its guard fails), and the
/// guard is checked again in `ON CONFLICT` against the row as it is then. `xmax = 0` tells an
/// insert from an update; `prior` tells a duplicate from a stale change among the rows not written.
/// `prior` is a lateral lookup (its `LIMIT` keeps the planner from turning it into a join) so that
/// each row is found through the primary key: a plan made while the table was small would
/// otherwise hash-join over a sequential scan of the whole table, on every batch, for good.
/// `outcomes` has one row per change, by `ord`.
macro_rules! apply_ctes {
    () => {
        "\
WITH incoming AS (
    SELECT i.object, i.id, i.data::jsonb AS data, i.updated_at, i.deleted_at, i.destroyed_at, i.source, i.ord
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                $6::timestamptz[], $7::text[])
        WITH ORDINALITY AS i(object, id, data, updated_at, deleted_at, destroyed_at, source, ord)
), prior AS (
    SELECT i.ord, r.data, r.updated_at, r.deleted_at, r.destroyed_at, r.source
    FROM incoming i CROSS JOIN LATERAL (
        SELECT r.data, r.updated_at, r.deleted_at, r.destroyed_at, r.source
        FROM twenty_records r WHERE r.object = i.object AND r.id = i.id
        LIMIT 1
    ) r
), written AS (
    INSERT INTO twenty_records AS r (object, id, data, updated_at, deleted_at, destroyed_at, source, synced_at)
    SELECT i.object, i.id, i.data, i.updated_at, i.deleted_at, i.destroyed_at, i.source, now()
    FROM incoming i LEFT JOIN prior p ON p.ord = i.ord
    WHERE p.ord IS NULL
       OR twenty_mirror_supersedes(i.updated_at, i.deleted_at, i.destroyed_at, i.source, i.data,
                                   p.updated_at, p.deleted_at, p.destroyed_at, p.source, p.data)
    ORDER BY i.ord
    ON CONFLICT (object, id) DO UPDATE SET
        data = CASE WHEN EXCLUDED.data->>'updatedAt' IS NULL THEN r.data ELSE EXCLUDED.data END,
        updated_at = EXCLUDED.updated_at,
        deleted_at = EXCLUDED.deleted_at,
        destroyed_at = EXCLUDED.destroyed_at,
        source = EXCLUDED.source,
        synced_at = EXCLUDED.synced_at
    WHERE twenty_mirror_supersedes(EXCLUDED.updated_at, EXCLUDED.deleted_at, EXCLUDED.destroyed_at,
                                   EXCLUDED.source, EXCLUDED.data,
                                   r.updated_at, r.deleted_at, r.destroyed_at, r.source, r.data)
    RETURNING r.object, r.id, (r.xmax = 0) AS inserted
), outcomes AS (
    SELECT i.ord, w.inserted,
           (p.ord IS NOT NULL
            AND p.updated_at = i.updated_at
            AND (p.deleted_at IS NULL) = (i.deleted_at IS NULL)
            AND (p.destroyed_at IS NULL) = (i.destroyed_at IS NULL)
            AND (i.data->>'updatedAt' IS NULL OR p.data = i.data)) AS identical,
           (i.deleted_at IS NOT NULL AND i.destroyed_at IS NULL) AS soft_deleted
    FROM incoming i
    LEFT JOIN written w ON w.object = i.object AND w.id = i.id
    LEFT JOIN prior p ON p.ord = i.ord
)"
    };
}

const APPLY: &str = concat!(apply_ctes!(), "\nSELECT inserted, identical FROM outcomes ORDER BY ord");

/// A reconciler page in one statement, so in one transaction without `BEGIN` and `COMMIT` of its
/// own: the apply, the watermark ($8, $9: moved up, never down, when not null) and the run's
/// counts ($10: the run, $11: the page's records). Every round trip is a wait for the client's
/// turn on a busy machine, and a page in five of them spent more time waiting than writing. The
/// counts are `Counts::of_page`'s: a change not written is unchanged, a written soft delete is a
/// delete; a change the batch's reduction left out (a repeat of an id) is never written.
const APPLY_PAGE: &str = concat!(
    apply_ctes!(),
    "
, watermark AS (
    INSERT INTO sync_state AS s (object, watermark)
    SELECT $8, $9 WHERE $9::timestamptz IS NOT NULL
    ON CONFLICT (object) DO UPDATE SET watermark = GREATEST(s.watermark, EXCLUDED.watermark)
), page AS (
    SELECT count(*) FILTER (WHERE inserted) AS inserted,
           count(*) FILTER (WHERE NOT inserted AND NOT soft_deleted) AS updated,
           count(*) FILTER (WHERE NOT inserted AND soft_deleted) AS deleted,
           count(*) FILTER (WHERE inserted IS NOT NULL) AS written
    FROM outcomes
), counted AS (
    UPDATE sync_runs SET fetched = fetched + $11, inserted = sync_runs.inserted + page.inserted,
           updated = sync_runs.updated + page.updated, deleted = sync_runs.deleted + page.deleted,
           unchanged = unchanged + $11 - page.written, repaired = repaired + page.written
    FROM page WHERE id = $10
)
SELECT inserted, identical FROM outcomes ORDER BY ord"
);

pub(super) async fn prune_events(pool: &PgPool, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    let result = sqlx::query("DELETE FROM webhook_events WHERE received_at < $1")
        .bind(cutoff)
        .execute(pool)
        .await
        .context("pruning old deliveries")?;
    Ok(result.rows_affected())
}

pub(super) async fn fetch_record(
    pool: &PgPool,
    object: &str,
    id: &str,
) -> Result<Option<StoredRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT object, id, data, updated_at, deleted_at, destroyed_at, source, synced_at \
         FROM twenty_records WHERE object = $1 AND id = $2",
    )
    .bind(object)
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("reading a record")?;
    row.map(|row| record(&row)).transpose()
}

fn record(row: &PgRow) -> Result<StoredRecord, StoreError> {
    let source: String = row.try_get("source").context("reading source")?;
    Ok(StoredRecord {
        object: row.try_get("object").context("reading object")?,
        id: row.try_get("id").context("reading id")?,
        data: row.try_get("data").context("reading data")?,
        updated_at: row.try_get("updated_at").context("reading updated_at")?,
        deleted_at: row.try_get("deleted_at").context("reading deleted_at")?,
        destroyed_at: row.try_get("destroyed_at").context("reading destroyed_at")?,
        source: Source::parse(&source).ok_or_else(|| StoreError::Corrupt(format!("source = {source:?}")))?,
        synced_at: row.try_get("synced_at").context("reading synced_at")?,
    })
}

pub(super) async fn recent_events(pool: &PgPool, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, received_at, event_name, object, record_id, record_updated_at, outcome, error, body \
         FROM webhook_events ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading the event log")?;
    rows.iter().map(event_row).collect()
}

pub(super) async fn events_since(
    pool: &PgPool,
    since: DateTime<Utc>,
    object: Option<&str>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, received_at, event_name, object, record_id, record_updated_at, outcome, error, body \
         FROM webhook_events \
         WHERE received_at >= $1 AND ($2::text IS NULL OR object = $2) AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(since)
    .bind(object)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading the event log")?;
    rows.iter().map(event_row).collect()
}

fn event_row(row: &PgRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: row.try_get("id").context("reading id")?,
        received_at: row.try_get("received_at").context("reading received_at")?,
        event_name: row.try_get("event_name").context("reading event_name")?,
        object: row.try_get("object").context("reading object")?,
        record_id: row.try_get("record_id").context("reading record_id")?,
        record_updated_at: row.try_get("record_updated_at").context("reading record_updated_at")?,
        outcome: row.try_get("outcome").context("reading outcome")?,
        error: row.try_get("error").context("reading error")?,
        body: row.try_get("body").context("reading body")?,
    })
}
