//! The single-runner lock on PostgreSQL: a session advisory lock, so that of several instances
//! only one reconciles, and a reconciler that dies releases it with its session.

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use crate::mirror::error::{Context, StoreError};
use crate::mirror::model::ReconcilerLock;

/// The advisory lock that makes one instance of many the reconciler: the bytes of "twentymr". Any
/// constant works as long as nothing else in the database uses the same one.
const RECONCILER_LOCK_KEY: i64 = 0x7477_656e_7479_6d72;

/// What a PostgreSQL [`ReconcilerLock`] holds: the connection whose session holds the lock, for as
/// long as it lives.
struct AdvisoryLock(Option<PoolConnection<Postgres>>);

impl Drop for AdvisoryLock {
    /// A lock dropped without `unlock_reconciler` (a failed or cancelled task) must not go back to
    /// the pool still holding the advisory lock: its connection is closed instead, ending the session.
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            drop(connection.detach());
        }
    }
}

/// Takes the lock on a connection of its own, or answers `None` when another session holds it.
pub(super) async fn try_advisory_lock(pool: &PgPool) -> Result<Option<ReconcilerLock>, StoreError> {
    let mut connection = pool.acquire().await.context("acquiring a connection for the reconciler lock")?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(RECONCILER_LOCK_KEY)
        .fetch_one(&mut *connection)
        .await
        .context("taking the reconciler lock")?;
    Ok(locked.then(|| ReconcilerLock::new(AdvisoryLock(Some(connection)))))
}

/// Releases the lock and returns its connection to the pool; a lock that is not an advisory lock
/// holds nothing here.
pub(super) async fn release_advisory_lock(lock: ReconcilerLock) -> Result<(), StoreError> {
    let Ok(mut lock) = lock.into_guard::<AdvisoryLock>() else { return Ok(()) };
    let Some(mut connection) = lock.0.take() else { return Ok(()) };
    let released = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
        .bind(RECONCILER_LOCK_KEY)
        .fetch_one(&mut *connection)
        .await;
    if released.is_err() {
        // The session may be gone, and the lock with it; never return a connection that might still
        // hold the lock to the pool.
        drop(connection.detach());
    }
    released.map(drop).context("releasing the reconciler lock")
}
