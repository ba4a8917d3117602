//! The reconciler's bookkeeping on SQLite: discovered objects, per-object state, runs, a page with
//! its checkpoint, and a sweep's tombstones.

use chrono::{DateTime, Utc};
use sqlx::{SqliteConnection, SqlitePool};

use super::health;
use super::lease::{self, LEASE_TTL};
use super::records::apply;
use crate::change::Change;
use crate::mirror::error::{Context, StoreError};
use crate::mirror::model::{
    Counts, Mode, ObjectCounts, ObjectRow, PageWrite, PassHealth, RunRow, RunStatus, SyncState, Trigger,
    mirrored_fields,
};
use crate::mirror::rows::{ObjectCountsRow, RunRowColumns, SyncStateRow, Timestamp};
use crate::mirror::rule::ApplyOutcome;
use crate::mirror::views::{self, ViewsReport};

/// Ids per `UPDATE` when marking tombstones: one transaction per chunk keeps the write lock short.
const DESTROY_CHUNK: usize = 500;

pub(super) async fn save_objects(
    pool: &SqlitePool,
    objects: &[ObjectRow],
    at: DateTime<Utc>,
) -> Result<ViewsReport, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.context("starting a write transaction")?;
    sqlx::query("UPDATE twenty_objects SET mirrored = 0")
        .execute(&mut *tx)
        .await
        .context("resetting discovered objects")?;
    for o in objects {
        sqlx::query(
            "INSERT INTO twenty_objects (name_singular, name_plural, label_singular, label_plural, metadata_id, \
                                         is_custom, fields, mirrored, discovered_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (name_singular) DO UPDATE SET name_plural = excluded.name_plural, \
                 label_singular = excluded.label_singular, label_plural = excluded.label_plural, \
                 metadata_id = excluded.metadata_id, is_custom = excluded.is_custom, fields = excluded.fields, \
                 mirrored = excluded.mirrored, discovered_at = excluded.discovered_at",
        )
        .bind(&o.name_singular)
        .bind(&o.name_plural)
        .bind(&o.label_singular)
        .bind(&o.label_plural)
        .bind(&o.metadata_id)
        .bind(o.is_custom)
        .bind(o.fields.to_string())
        .bind(o.mirrored)
        .bind(Timestamp(at))
        .execute(&mut *tx)
        .await
        .context("saving a discovered object")?;
    }
    let mirrored = mirrored_fields(objects);
    let report = views::sqlite::replace_views(&mut tx, &mirrored).await?;
    tx.commit().await.context("committing discovered objects")?;
    Ok(report)
}

pub(super) async fn objects(pool: &SqlitePool) -> Result<Vec<ObjectRow>, StoreError> {
    sqlx::query_as(
        "SELECT name_singular, name_plural, label_singular, label_plural, metadata_id, is_custom, fields, mirrored \
         FROM twenty_objects ORDER BY name_singular",
    )
    .fetch_all(pool)
    .await
    .context("reading discovered objects")
}

pub(super) async fn sync_states(pool: &SqlitePool) -> Result<Vec<SyncState>, StoreError> {
    let rows: Vec<SyncStateRow> = sqlx::query_as(
        "SELECT object, watermark, last_delta_at, last_full_at, last_run_id, last_counts, webhook_health \
         FROM sync_state ORDER BY object",
    )
    .fetch_all(pool)
    .await
    .context("reading sync state")?;
    Ok(rows.into_iter().map(SyncState::from).collect())
}

pub(super) async fn apply_page(
    pool: &SqlitePool,
    page: &PageWrite<'_>,
) -> Result<Vec<ApplyOutcome>, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.context("starting a write transaction")?;
    let changes: Vec<&Change> = page.changes.iter().collect();
    let outcomes = apply(&mut tx, &changes).await?;
    let Some(run_id) = page.run_id else {
        tx.rollback().await.context("rolling back a dry run")?;
        return Ok(outcomes);
    };
    let holder = lease::holder(page.lock);
    let bookkeeping =
        sqlx::query(PAGE_BOOKKEEPING).bind(page.object).bind(page.watermark.map(Timestamp)).bind(run_id);
    let renewed = Counts::of_page(page.changes, &outcomes)
        .bind_to(bookkeeping)
        .bind(holder)
        .bind(Timestamp(Utc::now() + LEASE_TTL))
        .fetch_all(&mut *tx)
        .await
        .context("advancing the watermark and the run's counts")?;
    if holder.is_some() && renewed.is_empty() {
        return Err(StoreError::LockLost);
    }
    tx.commit().await.context("committing a page")?;
    Ok(outcomes)
}

/// A page's checkpoint in one round trip to SQLite's thread, three statements sharing their
/// parameters: the watermark moves up to ?2 (when not null), the run ?3 adds the page's counts, and
/// the lease of holder ?11 (when not null) is renewed until ?12; it returns a row only when it was.
/// Every round trip waits for that thread's turn on a busy machine.
const PAGE_BOOKKEEPING: &str = "\
INSERT INTO sync_state (object, watermark) SELECT ?1, ?2 WHERE ?2 IS NOT NULL
ON CONFLICT (object) DO UPDATE SET
    watermark = max(coalesce(sync_state.watermark, excluded.watermark), excluded.watermark);
UPDATE sync_runs SET fetched = fetched + ?4, inserted = inserted + ?5, updated = updated + ?6,
    deleted = deleted + ?7, destroyed = destroyed + ?8, unchanged = unchanged + ?9, repaired = repaired + ?10
WHERE id = ?3;
UPDATE sync_lease SET expires_at = ?12 WHERE name = 'reconciler' AND holder = ?11 RETURNING holder";

async fn add_to_run(conn: &mut SqliteConnection, run_id: i64, c: Counts) -> Result<(), StoreError> {
    c.bind_to(
        sqlx::query(
            "UPDATE sync_runs SET fetched = fetched + ?2, inserted = inserted + ?3, updated = updated + ?4, \
             deleted = deleted + ?5, destroyed = destroyed + ?6, unchanged = unchanged + ?7, \
             repaired = repaired + ?8 \
         WHERE id = ?1",
        )
        .bind(run_id),
    )
    .execute(conn)
    .await
    .context("adding to a run's counts")?;
    Ok(())
}

pub(super) async fn finish_pass(
    pool: &SqlitePool,
    object: &str,
    mode: Mode,
    run_id: i64,
    counts: Counts,
    at: DateTime<Utc>,
) -> Result<Option<PassHealth>, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.context("starting a write transaction")?;
    // A full pass reads everything a delta would, so it counts as both; only a delta pass judges
    // the webhooks (a first full pass repairs everything, as it should).
    let (statement, health) = match mode {
        Mode::Delta => (
            "INSERT INTO sync_state (object, last_delta_at, last_run_id, last_counts, webhook_health) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (object) DO UPDATE SET last_delta_at = excluded.last_delta_at, \
                 last_run_id = excluded.last_run_id, last_counts = excluded.last_counts, \
                 webhook_health = excluded.webhook_health",
            Some(health::judge(&mut tx, object, counts.repaired).await?),
        ),
        Mode::Full => (
            "INSERT INTO sync_state (object, last_delta_at, last_full_at, last_run_id, last_counts) \
             VALUES (?1, ?2, ?2, ?3, ?4) \
             ON CONFLICT (object) DO UPDATE SET last_delta_at = excluded.last_delta_at, \
                 last_full_at = excluded.last_full_at, last_run_id = excluded.last_run_id, \
                 last_counts = excluded.last_counts",
            None,
        ),
    };
    let counts = serde_json::to_string(&counts).map_err(|e| StoreError::Corrupt(format!("counts: {e}")))?;
    let mut query = sqlx::query(statement).bind(object).bind(Timestamp(at)).bind(run_id).bind(counts);
    if let Some(health) = &health {
        query = query.bind(health.current.as_str());
    }
    query.execute(&mut *tx).await.context("recording a finished pass")?;
    health::close_window(&mut tx, object).await?;
    tx.commit().await.context("committing a finished pass")?;
    Ok(health)
}

/// From the kept counts (migration 0007), which the writers' own transactions keep exact.
pub(super) async fn count_present(pool: &SqlitePool, object: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT coalesce(sum(live + soft_deleted), 0) FROM object_stats WHERE object = ?1")
        .bind(object)
        .fetch_one(pool)
        .await
        .context("counting rows")
}

pub(super) async fn destroy_candidates(
    pool: &SqlitePool,
    object: &str,
    written_before: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT id FROM twenty_records WHERE object = ?1 AND destroyed_at IS NULL AND synced_at < ?2",
    )
    .bind(object)
    .bind(Timestamp(written_before))
    .fetch_all(pool)
    .await
    .context("listing rows a sweep may destroy")
}

pub(super) async fn mark_destroyed(
    pool: &SqlitePool,
    object: &str,
    ids: &[String],
    destroyed_at: DateTime<Utc>,
    written_before: DateTime<Utc>,
    run_id: i64,
) -> Result<u64, StoreError> {
    let mut marked = 0;
    for chunk in ids.chunks(DESTROY_CHUNK) {
        let ids = serde_json::to_string(chunk).map_err(|e| StoreError::Corrupt(format!("ids: {e}")))?;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.context("starting a write transaction")?;
        let result = sqlx::query(
            "UPDATE twenty_records \
             SET destroyed_at = ?2, source = 'reconcile', synced_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             WHERE object = ?1 AND destroyed_at IS NULL AND synced_at < ?3 \
               AND id IN (SELECT value FROM json_each(?4))",
        )
        .bind(object)
        .bind(Timestamp(destroyed_at))
        .bind(Timestamp(written_before))
        .bind(ids)
        .execute(&mut *tx)
        .await
        .context("marking rows destroyed")?;
        add_to_run(&mut tx, run_id, Counts::of_sweep(result.rows_affected())).await?;
        tx.commit().await.context("committing tombstones")?;
        marked += result.rows_affected();
    }
    Ok(marked)
}

pub(super) async fn create_run(
    pool: &SqlitePool,
    trigger: Trigger,
    mode: Mode,
    objects: &[String],
    started_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let objects = serde_json::to_string(objects).map_err(|e| StoreError::Corrupt(format!("objects: {e}")))?;
    sqlx::query_scalar(
        "INSERT INTO sync_runs (trigger, mode, objects, started_at, status) VALUES (?1, ?2, ?3, ?4, 'running') \
         RETURNING id",
    )
    .bind(trigger.as_str())
    .bind(mode.as_str())
    .bind(objects)
    .bind(Timestamp(started_at))
    .fetch_one(pool)
    .await
    .context("recording a new run")
}

pub(super) async fn set_run_objects(
    pool: &SqlitePool,
    run_id: i64,
    objects: &[String],
) -> Result<(), StoreError> {
    let objects = serde_json::to_string(objects).map_err(|e| StoreError::Corrupt(format!("objects: {e}")))?;
    sqlx::query("UPDATE sync_runs SET objects = ?2 WHERE id = ?1")
        .bind(run_id)
        .bind(objects)
        .execute(pool)
        .await
        .context("recording a run's objects")?;
    Ok(())
}

pub(super) async fn finish_run(
    pool: &SqlitePool,
    run_id: i64,
    status: RunStatus,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sync_runs SET status = ?2, error = ?3, ended_at = ?4 WHERE id = ?1")
        .bind(run_id)
        .bind(status.as_str())
        .bind(error)
        .bind(Timestamp(at))
        .execute(pool)
        .await
        .context("recording the end of a run")?;
    Ok(())
}

pub(super) async fn fail_abandoned_runs(pool: &SqlitePool, at: DateTime<Utc>) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "UPDATE sync_runs SET status = 'failed', ended_at = ?1, \
             error = 'the process running it stopped before it finished' \
         WHERE status = 'running'",
    )
    .bind(Timestamp(at))
    .execute(pool)
    .await
    .context("closing abandoned runs")?;
    Ok(result.rows_affected())
}

pub(super) async fn running_run(pool: &SqlitePool) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT id FROM sync_runs WHERE status = 'running' ORDER BY id DESC LIMIT 1")
        .fetch_optional(pool)
        .await
        .context("looking for a running run")
}

pub(super) async fn runs(pool: &SqlitePool, id: Option<i64>, limit: i64) -> Result<Vec<RunRow>, StoreError> {
    let rows: Vec<RunRowColumns> = sqlx::query_as(
        "SELECT id, trigger, mode, objects, started_at, ended_at, status, error, \
                fetched, inserted, updated, deleted, destroyed, unchanged, repaired \
         FROM sync_runs WHERE ?1 IS NULL OR id = ?1 ORDER BY id DESC LIMIT ?2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("reading runs")?;
    Ok(rows.into_iter().map(RunRow::from).collect())
}

/// The counts and last delivery the triggers of migration 0007 keep.
pub(super) async fn object_counts(pool: &SqlitePool) -> Result<Vec<ObjectCounts>, StoreError> {
    let rows: Vec<ObjectCountsRow> = sqlx::query_as(
        "SELECT object, live, soft_deleted, destroyed, last_delivery_at AS last_webhook_at \
         FROM object_stats ORDER BY object",
    )
    .fetch_all(pool)
    .await
    .context("reading the kept counts")?;
    Ok(rows.into_iter().map(ObjectCounts::from).collect())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use serde_json::json;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::super::lease::try_lease;
    use super::super::records::fetch_record;
    use super::super::{MIGRATOR, connect};
    use super::*;
    use crate::change::{Source, format_timestamp};

    async fn lease_expiry(pool: &SqlitePool) -> String {
        sqlx::query_scalar("SELECT expires_at FROM sync_lease WHERE name = 'reconciler'")
            .fetch_one(pool)
            .await
            .expect("the lease")
    }

    /// A page renews the lease in its own transaction, and a page whose run lost the lease (another
    /// process took it over) is refused whole.
    #[tokio::test]
    async fn a_page_commits_with_its_lease_and_not_without_it() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
        let pool = connect(SqliteConnectOptions::from_str(&url).expect("a URL")).await.expect("opening");
        MIGRATOR.run(&pool).await.expect("migrating");
        let lock = try_lease(&pool, "here/1/1-0").await.expect("taking the lease").expect("a free lease");
        let run_id = create_run(&pool, Trigger::Operator, Mode::Full, &[], Utc::now()).await.expect("a run");
        sqlx::query("UPDATE sync_lease SET expires_at = '2000-01-01T00:00:00.000Z'")
            .execute(&pool)
            .await
            .expect("ageing the lease");

        let change = |id: &str| {
            let record = json!({"id": id, "updatedAt": "2026-09-21T10:00:00.000Z"});
            Change::upsert("person", &record, Source::Reconcile).expect("a change")
        };
        let first = [change("a")];
        let page = |changes| PageWrite {
            object: "person",
            changes,
            watermark: None,
            run_id: Some(run_id),
            lock: Some(&lock),
        };
        apply_page(&pool, &page(&first)).await.expect("the first page");
        assert!(lease_expiry(&pool).await.as_str() > format_timestamp(Utc::now()).as_str(), "renewed");

        sqlx::query("UPDATE sync_lease SET holder = 'elsewhere/2/2-0'")
            .execute(&pool)
            .await
            .expect("another process taking the lease over");
        let second = [change("b")];
        let refused = apply_page(&pool, &page(&second)).await;
        assert!(matches!(refused, Err(StoreError::LockLost)), "{refused:?}");
        assert!(fetch_record(&pool, "person", "a").await.expect("reading").is_some());
        assert!(fetch_record(&pool, "person", "b").await.expect("reading").is_none(), "the page was written");
        pool.close().await;
    }
}
