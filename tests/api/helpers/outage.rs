//! A test database made unavailable to the service, and available again.

use sqlx::{Connection, Executor};

use super::TestDb;

impl TestDb {
    /// Makes the database unavailable to the service: on PostgreSQL new connections are refused and
    /// open ones terminated; on SQLite another connection holds the write lock. Dropping the guard
    /// (or calling `restore`) makes it available again.
    pub async fn make_unavailable(&self) -> Outage {
        match &self.postgres {
            Some(pg) => {
                let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await.expect("admin connection");
                admin
                    .execute(format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", pg.name).as_str())
                    .await
                    .expect("refusing connections");
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                    .bind(&pg.name)
                    .execute(&mut admin)
                    .await
                    .expect("terminating connections");
                Outage::Postgres { admin, name: pg.name.clone() }
            }
            None => Outage::Sqlite(self.lock_sqlite().await),
        }
    }

    /// Holds the SQLite write lock from another connection until the returned connection is closed.
    pub async fn lock_sqlite(&self) -> sqlx::SqliteConnection {
        let mut conn = sqlx::SqliteConnection::connect(&self.url).await.expect("second connection");
        conn.execute("BEGIN EXCLUSIVE").await.expect("taking the write lock");
        conn
    }
}

pub enum Outage {
    Postgres { admin: sqlx::PgConnection, name: String },
    Sqlite(sqlx::SqliteConnection),
}

impl Outage {
    pub async fn restore(self) {
        match self {
            Outage::Postgres { mut admin, name } => {
                admin
                    .execute(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true").as_str())
                    .await
                    .expect("allowing connections again");
            }
            Outage::Sqlite(mut conn) => {
                conn.execute("ROLLBACK").await.expect("releasing the write lock");
            }
        }
    }
}
