//! Rows per object and the last delivery, as the triggers of migration 0007 keep them: a base row
//! per object in `object_stats`, plus the delta rows writers appended since the last fold. Writers
//! only append, so concurrent group commits never wait on a shared counter row; the fold, which
//! does take those rows' locks, runs in the background (`serve` folds every minute, a reconciler
//! run at its end), never in a scrape or a status call: those only read.

use sqlx::PgPool;

use crate::mirror::error::{Context, StoreError};
use crate::mirror::model::ObjectCounts;
use crate::mirror::rows::ObjectCountsRow;

/// Moves the appended deltas into the base rows. Two folds at once are safe: the second skips the
/// delta rows the first deleted once the first commits.
pub(super) async fn fold(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query(
        "WITH moved AS (DELETE FROM object_stats_deltas RETURNING *) \
         INSERT INTO object_stats AS s (object, live, soft_deleted, destroyed, last_delivery_at) \
         SELECT object, sum(live), sum(soft_deleted), sum(destroyed), max(last_delivery_at) \
         FROM moved GROUP BY object \
         ON CONFLICT (object) DO UPDATE SET live = s.live + EXCLUDED.live, \
             soft_deleted = s.soft_deleted + EXCLUDED.soft_deleted, \
             destroyed = s.destroyed + EXCLUDED.destroyed, \
             last_delivery_at = GREATEST(s.last_delivery_at, EXCLUDED.last_delivery_at)",
    )
    .execute(pool)
    .await
    .context("folding the kept counts")?;
    Ok(())
}

/// Reads base and deltas together, writing nothing: the deltas not folded yet count too. Their
/// number is bounded by how often the fold runs (one row per writing statement and object).
pub(super) async fn object_counts(pool: &PgPool) -> Result<Vec<ObjectCounts>, StoreError> {
    let rows: Vec<ObjectCountsRow> = sqlx::query_as(
        "SELECT object, sum(live)::bigint AS live, sum(soft_deleted)::bigint AS soft_deleted, \
                sum(destroyed)::bigint AS destroyed, max(last_delivery_at) AS last_webhook_at \
         FROM (SELECT * FROM object_stats UNION ALL SELECT * FROM object_stats_deltas) kept \
         GROUP BY object ORDER BY object",
    )
    .fetch_all(pool)
    .await
    .context("reading the kept counts")?;
    Ok(rows.into_iter().map(ObjectCounts::from).collect())
}
