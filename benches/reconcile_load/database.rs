//! The bench's own use of its databases: the store on them, and what PostgreSQL says about a pass
//! (its WAL, the CPU of the backends serving the bench).

use std::collections::HashMap;

use sqlx::{Connection as _, Executor as _, PgConnection};
use twenty_mirror::mirror::Store;

use crate::support::database::{Backend, Database};
use crate::support::machine::cpu_ticks;

pub async fn open_store(url: &str) -> Store {
    let store = Store::connect(url).await.expect("a store");
    store.migrate().await.expect("migrations");
    store
}

/// The admin URL and the database's name, on PostgreSQL.
fn postgres<'a>(backend: &'a Backend, db: &'a Database) -> Option<(&'a str, &'a str)> {
    match (backend, db.postgres_name()) {
        (Backend::Postgres { admin_url }, Some(name)) => Some((admin_url, name)),
        _ => None,
    }
}

/// So that `pg_stat_wal` times the WAL writes and flushes of the sessions on this database (a
/// superuser setting; without it the times stay zero). Sessions opened after it take it.
pub async fn enable_wal_timing(backend: &Backend, db: &Database) {
    let Some((admin_url, name)) = postgres(backend, db) else { return };
    let mut admin = PgConnection::connect(admin_url).await.expect("connecting to BENCH_POSTGRES_URL");
    let _ = admin.execute(format!("ALTER DATABASE {name} SET track_wal_io_timing = on").as_str()).await;
    admin.close().await.expect("closing the admin connection");
}

/// The server's WAL counters (`pg_stat_wal`, PostgreSQL 14 and later): cluster-wide, but only
/// sessions with `track_wal_io_timing` (the bench's) add to the times.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wal {
    pub bytes: f64,
    pub syncs: i64,
    pub write_ms: f64,
    pub sync_ms: f64,
}

impl Wal {
    pub fn since(&self, before: &Wal) -> Wal {
        Wal {
            bytes: self.bytes - before.bytes,
            syncs: self.syncs - before.syncs,
            write_ms: self.write_ms - before.write_ms,
            sync_ms: self.sync_ms - before.sync_ms,
        }
    }
}

/// `None` on SQLite, or when the server has no `pg_stat_wal`.
pub async fn wal(backend: &Backend, db: &Database) -> Option<Wal> {
    let (admin_url, _) = postgres(backend, db)?;
    let mut admin = PgConnection::connect(admin_url).await.ok()?;
    let row: Option<(f64, i64, f64, f64)> =
        sqlx::query_as("SELECT wal_bytes::float8, wal_sync, wal_write_time, wal_sync_time FROM pg_stat_wal")
            .fetch_one(&mut admin)
            .await
            .ok();
    let _ = admin.close().await;
    row.map(|(bytes, syncs, write_ms, sync_ms)| Wal { bytes, syncs, write_ms, sync_ms })
}

/// CPU ticks of each PostgreSQL backend connected to this database, by pid; `None` on SQLite.
pub async fn backend_ticks(backend: &Backend, db: &Database) -> Option<HashMap<i32, u64>> {
    let (admin_url, name) = postgres(backend, db)?;
    let mut admin = PgConnection::connect(admin_url).await.ok()?;
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(name)
        .fetch_all(&mut admin)
        .await
        .ok()?;
    let _ = admin.close().await;
    let ticks =
        pids.into_iter().filter_map(|pid| Some((pid, cpu_ticks(&format!("/proc/{pid}/stat"))?.1))).collect();
    Some(ticks)
}
