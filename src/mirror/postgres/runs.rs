//! The reconciler's bookkeeping on PostgreSQL: discovered objects, per-object state, runs, a page
//! with its checkpoint, and a sweep's tombstones.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::health;
use super::records::{APPLY_PAGE, apply, bind_winners, outcomes};
use crate::change::Change;
use crate::mirror::error::{Context, StoreError};
use crate::mirror::model::{
    Counts, Mode, ObjectRow, PageWrite, PassHealth, RunRow, RunStatus, SyncState, Trigger, mirrored_fields,
};
use crate::mirror::rows::{RunRowColumns, SyncStateRow};
use crate::mirror::rule::{ApplyOutcome, Reduced};
use crate::mirror::views::{self, ViewsReport};

/// Discovery in several instances at once (each rediscovering after the same `metadata.*`
/// webhook) takes turns on this transaction lock: two transactions creating the same view would
/// otherwise fail one another. The bytes of "twviews"; the reconciler's lock uses another key.
const SAVE_OBJECTS_LOCK_KEY: i64 = 0x0074_7776_6965_7773;

pub(super) async fn save_objects(
    pool: &PgPool,
    objects: &[ObjectRow],
    at: DateTime<Utc>,
) -> Result<ViewsReport, StoreError> {
    let mut tx = pool.begin().await.context("starting a transaction")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SAVE_OBJECTS_LOCK_KEY)
        .execute(&mut *tx)
        .await
        .context("waiting for another instance's discovery")?;
    sqlx::query("UPDATE twenty_objects SET mirrored = false")
        .execute(&mut *tx)
        .await
        .context("resetting discovered objects")?;
    for o in objects {
        sqlx::query(
            "INSERT INTO twenty_objects (name_singular, name_plural, label_singular, label_plural, metadata_id, \
                                         is_custom, fields, mirrored, discovered_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (name_singular) DO UPDATE SET name_plural = EXCLUDED.name_plural, \
                 label_singular = EXCLUDED.label_singular, label_plural = EXCLUDED.label_plural, \
                 metadata_id = EXCLUDED.metadata_id, is_custom = EXCLUDED.is_custom, fields = EXCLUDED.fields, \
                 mirrored = EXCLUDED.mirrored, discovered_at = EXCLUDED.discovered_at",
        )
        .bind(&o.name_singular)
        .bind(&o.name_plural)
        .bind(&o.label_singular)
        .bind(&o.label_plural)
        .bind(&o.metadata_id)
        .bind(o.is_custom)
        .bind(&o.fields)
        .bind(o.mirrored)
        .bind(at)
        .execute(&mut *tx)
        .await
        .context("saving a discovered object")?;
    }
    let mirrored = mirrored_fields(objects);
    let report = views::postgres::replace_views(&mut tx, &mirrored).await?;
    tx.commit().await.context("committing discovered objects")?;
    Ok(report)
}

pub(super) async fn objects(pool: &PgPool) -> Result<Vec<ObjectRow>, StoreError> {
    sqlx::query_as(
        "SELECT name_singular, name_plural, label_singular, label_plural, metadata_id, is_custom, fields, mirrored \
         FROM twenty_objects ORDER BY name_singular",
    )
    .fetch_all(pool)
    .await
    .context("reading discovered objects")
}

pub(super) async fn sync_states(pool: &PgPool) -> Result<Vec<SyncState>, StoreError> {
    let rows: Vec<SyncStateRow> = sqlx::query_as(
        "SELECT object, watermark, last_delta_at, last_full_at, last_run_id, last_counts, webhook_health \
         FROM sync_state ORDER BY object",
    )
    .fetch_all(pool)
    .await
    .context("reading sync state")?;
    Ok(rows.into_iter().map(SyncState::from).collect())
}

pub(super) async fn apply_page(pool: &PgPool, page: &PageWrite<'_>) -> Result<Vec<ApplyOutcome>, StoreError> {
    let Some(run_id) = page.run_id else {
        // A dry run: applied, and rolled back.
        let mut tx = pool.begin().await.context("starting a transaction")?;
        let changes: Vec<&Change> = page.changes.iter().collect();
        let outcomes = apply(&mut tx, &changes).await?;
        tx.rollback().await.context("rolling back a dry run")?;
        return Ok(outcomes);
    };
    apply_page_in_one_statement(pool, page, run_id).await
}

/// A reconciler page, its watermark and its run's counts, in one statement (see [`APPLY_PAGE`]).
async fn apply_page_in_one_statement(
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
    Ok(outcomes(&reduced, rows))
}

async fn add_to_run(conn: &mut PgConnection, run_id: i64, c: Counts) -> Result<(), StoreError> {
    c.bind_to(
        sqlx::query(
            "UPDATE sync_runs SET fetched = fetched + $2, inserted = inserted + $3, updated = updated + $4, \
             deleted = deleted + $5, destroyed = destroyed + $6, unchanged = unchanged + $7, \
             repaired = repaired + $8 \
         WHERE id = $1",
        )
        .bind(run_id),
    )
    .execute(conn)
    .await
    .context("adding to a run's counts")?;
    Ok(())
}

pub(super) async fn finish_pass(
    pool: &PgPool,
    object: &str,
    mode: Mode,
    run_id: i64,
    counts: Counts,
    at: DateTime<Utc>,
) -> Result<Option<PassHealth>, StoreError> {
    let mut tx = pool.begin().await.context("starting a transaction")?;
    // A full pass reads everything a delta would, so it counts as both; only a delta pass judges
    // the webhooks (a first full pass repairs everything, as it should).
    let (statement, health) = match mode {
        Mode::Delta => (
            "INSERT INTO sync_state (object, last_delta_at, last_run_id, last_counts, webhook_health) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (object) DO UPDATE SET last_delta_at = EXCLUDED.last_delta_at, \
                 last_run_id = EXCLUDED.last_run_id, last_counts = EXCLUDED.last_counts, \
                 webhook_health = EXCLUDED.webhook_health",
            Some(health::judge(&mut tx, object, counts.repaired).await?),
        ),
        Mode::Full => (
            "INSERT INTO sync_state (object, last_delta_at, last_full_at, last_run_id, last_counts) \
             VALUES ($1, $2, $2, $3, $4) \
             ON CONFLICT (object) DO UPDATE SET last_delta_at = EXCLUDED.last_delta_at, \
                 last_full_at = EXCLUDED.last_full_at, last_run_id = EXCLUDED.last_run_id, \
                 last_counts = EXCLUDED.last_counts",
            None,
        ),
    };
    let counts = serde_json::to_value(counts).map_err(|e| StoreError::Corrupt(format!("counts: {e}")))?;
    let mut query = sqlx::query(statement).bind(object).bind(at).bind(run_id).bind(counts);
    if let Some(health) = &health {
        query = query.bind(health.current.as_str());
    }
    query.execute(&mut *tx).await.context("recording a finished pass")?;
    health::close_window(&mut tx, object).await?;
    tx.commit().await.context("committing a finished pass")?;
    Ok(health)
}

/// From the kept counts (migration 0007): the base row plus the deltas not folded yet.
pub(super) async fn count_present(pool: &PgPool, object: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(live + soft_deleted), 0)::bigint FROM ( \
             SELECT live, soft_deleted FROM object_stats WHERE object = $1 \
             UNION ALL SELECT live, soft_deleted FROM object_stats_deltas WHERE object = $1) kept",
    )
    .bind(object)
    .fetch_one(pool)
    .await
    .context("counting rows")
}

pub(super) async fn destroy_candidates(
    pool: &PgPool,
    object: &str,
    written_before: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT id FROM twenty_records WHERE object = $1 AND destroyed_at IS NULL AND synced_at < $2",
    )
    .bind(object)
    .bind(written_before)
    .fetch_all(pool)
    .await
    .context("listing rows a sweep may destroy")
}

pub(super) async fn mark_destroyed(
    pool: &PgPool,
    object: &str,
    ids: &[String],
    destroyed_at: DateTime<Utc>,
    written_before: DateTime<Utc>,
    run_id: i64,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await.context("starting a transaction")?;
    let result = sqlx::query(
        "UPDATE twenty_records SET destroyed_at = $2, source = 'reconcile', synced_at = now() \
         WHERE object = $1 AND destroyed_at IS NULL AND synced_at < $3 AND id = ANY($4)",
    )
    .bind(object)
    .bind(destroyed_at)
    .bind(written_before)
    .bind(ids)
    .execute(&mut *tx)
    .await
    .context("marking rows destroyed")?;
    add_to_run(&mut tx, run_id, Counts::of_sweep(result.rows_affected())).await?;
    tx.commit().await.context("committing tombstones")?;
    Ok(result.rows_affected())
}

pub(super) async fn create_run(
    pool: &PgPool,
    trigger: Trigger,
    mode: Mode,
    objects: &[String],
    started_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO sync_runs (trigger, mode, objects, started_at, status) \
         VALUES ($1, $2, to_jsonb($3::text[]), $4, 'running') RETURNING id",
    )
    .bind(trigger.as_str())
    .bind(mode.as_str())
    .bind(objects)
    .bind(started_at)
    .fetch_one(pool)
    .await
    .context("recording a new run")
}

pub(super) async fn set_run_objects(
    pool: &PgPool,
    run_id: i64,
    objects: &[String],
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sync_runs SET objects = to_jsonb($2::text[]) WHERE id = $1")
        .bind(run_id)
        .bind(objects)
        .execute(pool)
        .await
        .context("recording a run's objects")?;
    Ok(())
}

pub(super) async fn finish_run(
    pool: &PgPool,
    run_id: i64,
    status: RunStatus,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sync_runs SET status = $2, error = $3, ended_at = $4 WHERE id = $1")
        .bind(run_id)
        .bind(status.as_str())
        .bind(error)
        .bind(at)
        .execute(pool)
        .await
        .context("recording the end of a run")?;
    Ok(())
}

pub(super) async fn fail_abandoned_runs(pool: &PgPool, at: DateTime<Utc>) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "UPDATE sync_runs SET status = 'failed', ended_at = $1, \
             error = 'the process running it stopped before it finished' \
         WHERE status = 'running'",
    )
    .bind(at)
    .execute(pool)
    .await
    .context("closing abandoned runs")?;
    Ok(result.rows_affected())
}

pub(super) async fn running_run(pool: &PgPool) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT id FROM sync_runs WHERE status = 'running' ORDER BY id DESC LIMIT 1")
        .fetch_optional(pool)
        .await
        .context("looking for a running run")
}

pub(super) async fn runs(pool: &PgPool, id: Option<i64>, limit: i64) -> Result<Vec<RunRow>, StoreError> {
    let rows: Vec<RunRowColumns> = sqlx::query_as(
        "SELECT id, trigger, mode, objects, started_at, ended_at, status, error, \
                fetched, inserted, updated, deleted, destroyed, unchanged, repaired \
         FROM sync_runs WHERE $1::bigint IS NULL OR id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading runs")?;
    Ok(rows.into_iter().map(RunRow::from).collect())
}
