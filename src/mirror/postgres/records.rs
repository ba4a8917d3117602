//! The mirror and the event log on PostgreSQL: the apply rule as one guarded upsert over arrays,
//! deliveries logged in one statement, and the reads of records and deliveries.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgConnection, PgPool, Postgres};

use super::rows::WinnerOutcome;
use crate::change::Change;
use crate::mirror::error::{Context, StoreError};
use crate::mirror::model::{DeliveryBatch, HourlyDeliveries, StoredEvent, StoredRecord};
use crate::mirror::rows::{EventRow, RecordRow};
use crate::mirror::rule::{ApplyOutcome, Reduced};

pub(super) async fn record_deliveries(
    pool: &PgPool,
    batch: &mut DeliveryBatch<'_>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.context("starting a transaction")?;
    let outcomes = apply(&mut tx, &batch.changes).await?;
    batch.fill_outcomes(outcomes);
    let events = &batch.logged;
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
    Ok(outcomes(&reduced, rows))
}

/// An apply statement with a batch's winners bound as its arrays, $1 to $7.
pub(super) fn bind_winners<'q>(
    sql: &'q str,
    winners: &[&'q Change],
) -> QueryAs<'q, Postgres, WinnerOutcome, PgArguments> {
    sqlx::query_as(sql)
        .bind(winners.iter().map(|c| c.object.as_str()).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.id.as_str()).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.data.as_str()).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.updated_at).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.deleted_at).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.destroyed_at).collect::<Vec<_>>())
        .bind(winners.iter().map(|c| c.source.as_str()).collect::<Vec<_>>())
}

/// Every change's outcome, from the statement's rows for the winners (in `winners` order).
pub(super) fn outcomes(reduced: &Reduced, rows: Vec<WinnerOutcome>) -> Vec<ApplyOutcome> {
    let winner_outcomes: Vec<ApplyOutcome> = rows.into_iter().map(ApplyOutcome::from).collect();
    reduced.outcomes(&winner_outcomes)
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
pub(super) const APPLY_PAGE: &str = concat!(
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
    let row: Option<RecordRow> = sqlx::query_as(
        "SELECT object, id, data, updated_at, deleted_at, destroyed_at, source, synced_at \
         FROM twenty_records WHERE object = $1 AND id = $2",
    )
    .bind(object)
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("reading a record")?;
    Ok(row.map(StoredRecord::from))
}

pub(super) async fn recent_events(pool: &PgPool, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, received_at, event_name, object, record_id, record_updated_at, outcome, error, body \
         FROM webhook_events ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading the event log")?;
    Ok(rows.into_iter().map(StoredEvent::from).collect())
}

pub(super) async fn deliveries_per_hour(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> Result<Vec<HourlyDeliveries>, StoreError> {
    // date_trunc with a time zone: the hours are UTC's whatever the session's zone.
    let rows: Vec<(DateTime<Utc>, String, i64)> = sqlx::query_as(
        "SELECT date_trunc('hour', received_at, 'UTC') AS hour, outcome, count(*) \
         FROM webhook_events WHERE received_at >= $1 GROUP BY hour, outcome ORDER BY hour, outcome",
    )
    .bind(since)
    .fetch_all(pool)
    .await
    .context("counting deliveries per hour")?;
    rows.into_iter()
        .map(|(hour, outcome, deliveries)| HourlyDeliveries::read(hour, &outcome, deliveries))
        .collect()
}

pub(super) async fn events_since(
    pool: &PgPool,
    since: DateTime<Utc>,
    object: Option<&str>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(
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
    Ok(rows.into_iter().map(StoredEvent::from).collect())
}
