//! The single-runner lock on SQLite: a lease row in `sync_lease`, renewed while the run goes on
//! (with every page, in the page's own transaction), that expires on its own if its holder dies.

use chrono::Utc;
use sqlx::SqlitePool;

use crate::mirror::error::{Context, StoreError};
use crate::mirror::model::ReconcilerLock;
use crate::mirror::rows::Timestamp;

/// How long a lease holds without renewal. The holder renews it with every page, so only a
/// reconciler that died leaves it to expire; a minute keeps the wait after a crash short.
pub(super) const LEASE_TTL: chrono::Duration = chrono::Duration::seconds(60);

/// What a SQLite [`ReconcilerLock`] holds: the name the lease row was taken under.
struct Lease {
    holder: String,
}

/// The holder of the lease `lock` holds, if it is a SQLite lease.
pub(super) fn holder(lock: Option<&ReconcilerLock>) -> Option<&str> {
    lock.and_then(|lock| lock.guard::<Lease>()).map(|lease| lease.holder.as_str())
}

/// A new holder of the lease: `host/pid/n`, unique to one acquisition (two runs of one process must
/// exclude each other too), and naming the process, so that a lease left by a process that died
/// on this machine (killed mid-run) can be taken over at once instead of after its expiry.
pub(super) fn new_holder() -> String {
    static ACQUISITIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = ACQUISITIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}/{}/{}-{n}", hostname(), std::process::id(), Utc::now().timestamp_millis())
}

/// Whether `holder` names a process of this machine that no longer runs.
fn holder_is_dead(holder: &str) -> bool {
    let mut parts = holder.split('/');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else { return false };
    host == hostname()
        && pid != std::process::id().to_string()
        && !std::path::Path::new("/proc").join(pid).exists()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

pub(super) async fn try_lease(pool: &SqlitePool, holder: &str) -> Result<Option<ReconcilerLock>, StoreError> {
    let now = Utc::now();
    let result = sqlx::query(
        "INSERT INTO sync_lease (name, holder, expires_at) VALUES ('reconciler', ?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE sync_lease.expires_at < ?3",
    )
    .bind(holder)
    .bind(Timestamp(now + LEASE_TTL))
    .bind(Timestamp(now))
    .execute(pool)
    .await
    .context("taking the reconciler lease")?;
    let taken = || Some(ReconcilerLock::new(Lease { holder: holder.to_owned() }));
    if result.rows_affected() == 1 {
        return Ok(taken());
    }
    let current: Option<String> =
        sqlx::query_scalar("SELECT holder FROM sync_lease WHERE name = 'reconciler'")
            .fetch_optional(pool)
            .await
            .context("reading the reconciler lease")?;
    let Some(current) = current.filter(|c| holder_is_dead(c)) else { return Ok(None) };
    let took_over = sqlx::query(
        "UPDATE sync_lease SET holder = ?1, expires_at = ?2 WHERE name = 'reconciler' AND holder = ?3",
    )
    .bind(holder)
    .bind(Timestamp(now + LEASE_TTL))
    .bind(&current)
    .execute(pool)
    .await
    .context("taking over the reconciler lease")?;
    if took_over.rows_affected() == 1 {
        tracing::warn!(previous = %current, "took over the lease of a reconciler that died on this machine");
        return Ok(taken());
    }
    Ok(None)
}

/// Releases the lease `lock` holds; a lock that is not a SQLite lease holds nothing here.
pub(super) async fn release_lease(pool: &SqlitePool, lock: ReconcilerLock) -> Result<(), StoreError> {
    let Ok(lease) = lock.into_guard::<Lease>() else { return Ok(()) };
    sqlx::query("DELETE FROM sync_lease WHERE name = 'reconciler' AND holder = ?1")
        .bind(lease.holder)
        .execute(pool)
        .await
        .context("releasing the reconciler lease")?;
    Ok(())
}
