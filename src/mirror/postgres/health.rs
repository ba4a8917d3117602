//! Webhook health on PostgreSQL: the refusals since each object's last pass, and the verdict of a
//! delta pass, judged in the transaction that records the pass.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::mirror::error::{Context, StoreError};
use crate::mirror::model::{HealthWindow, PassHealth, RefusedDeliveries, WebhookHealth};
use crate::mirror::rows::RefusalRow;

/// Adds each count to its object's row, or to the `''` row when the mirror knows no such object
/// (discovered, or seen in a verified delivery): so a body cannot add rows of its own. Instances
/// add to the same rows; each addition is one short row lock.
pub(super) async fn add_refusals(
    pool: &PgPool,
    refused: &[RefusedDeliveries],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.context("starting a transaction")?;
    for r in refused {
        sqlx::query(
            "INSERT INTO webhook_refusals AS r (object, reason, refused, last_refused_at) \
             SELECT CASE WHEN EXISTS (SELECT 1 FROM twenty_objects WHERE name_singular = $1) \
                           OR EXISTS (SELECT 1 FROM object_stats WHERE object = $1) \
                         THEN $1 ELSE '' END, $2, $3, $4 \
             ON CONFLICT (object, reason) DO UPDATE SET refused = r.refused + EXCLUDED.refused, \
                 last_refused_at = GREATEST(r.last_refused_at, EXCLUDED.last_refused_at)",
        )
        .bind(r.object.as_deref().unwrap_or_default())
        .bind(&r.reason)
        .bind(r.refused)
        .bind(at)
        .execute(&mut *tx)
        .await
        .context("counting refused deliveries")?;
    }
    tx.commit().await.context("committing refused deliveries")
}

pub(super) async fn refusals(pool: &PgPool) -> Result<Vec<RefusedDeliveries>, StoreError> {
    let rows: Vec<RefusalRow> =
        sqlx::query_as("SELECT object, reason, refused FROM webhook_refusals ORDER BY object, reason")
            .fetch_all(pool)
            .await
            .context("reading refused deliveries")?;
    Ok(rows.into_iter().map(RefusedDeliveries::from).collect())
}

/// What the window of `object` since its previous pass says, read before the pass is recorded.
/// The last delivery is the newest of the kept row and the deltas not folded yet.
pub(super) async fn judge(
    conn: &mut PgConnection,
    object: &str,
    repaired: i64,
) -> Result<PassHealth, StoreError> {
    let previous: Option<(Option<DateTime<Utc>>, Option<WebhookHealth>)> =
        sqlx::query_as("SELECT last_delta_at, webhook_health FROM sync_state WHERE object = $1")
            .bind(object)
            .fetch_optional(&mut *conn)
            .await
            .context("reading the previous pass")?;
    let last_delivery_at: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT max(last_delivery_at) FROM (SELECT last_delivery_at FROM object_stats WHERE object = $1 \
         UNION ALL SELECT last_delivery_at FROM object_stats_deltas WHERE object = $1) kept",
    )
    .bind(object)
    .fetch_one(&mut *conn)
    .await
    .context("reading the last delivery")?;
    let refused: Vec<RefusalRow> = sqlx::query_as(
        "SELECT object, reason, refused FROM webhook_refusals WHERE object IN ($1, '') ORDER BY object, reason",
    )
    .bind(object)
    .fetch_all(&mut *conn)
    .await
    .context("reading refused deliveries")?;
    let (previous_pass_at, previous) = previous.unwrap_or_default();
    Ok(HealthWindow {
        object,
        repaired,
        previous,
        previous_pass_at,
        last_delivery_at,
        refused: refused.into_iter().map(RefusedDeliveries::from).collect(),
    }
    .judge())
}

/// Starts the object's next window of refusals (and that of deliveries of no known object).
pub(super) async fn close_window(conn: &mut PgConnection, object: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM webhook_refusals WHERE object IN ($1, '')")
        .bind(object)
        .execute(conn)
        .await
        .context("starting a new window of refusals")?;
    Ok(())
}
