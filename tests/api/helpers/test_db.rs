//! A database of its own for each test.
//!
//! `TEST_DATABASE_URL` unset runs on SQLite (a file in a temporary folder). Set to a PostgreSQL URL
//! (`postgres://postgres@127.0.0.1:5432/postgres`), each test creates its own database on that
//! server and drops it at the end.
//!
//! `tests/postgres_restart.rs` includes this file as a module of its own binary: it needs no other
//! helper, and everything here is used there too.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use sqlx::{Connection, Executor};

/// A database of its own for one test, dropped with it.
pub struct TestDb {
    pub url: String,
    pub(super) postgres: Option<PostgresDb>,
    _dir: Option<tempfile::TempDir>,
}

pub(super) struct PostgresDb {
    /// The server's URL as `TEST_DATABASE_URL` gives it, for the statements about the database.
    pub(super) admin_url: String,
    pub(super) name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            None => {
                let dir = tempfile::tempdir().expect("creating a temporary folder");
                let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
                TestDb { url, postgres: None, _dir: Some(dir) }
            }
            Some(admin_url) => {
                let name = unique_name();
                let mut admin =
                    sqlx::PgConnection::connect(&admin_url).await.expect("connecting to TEST_DATABASE_URL");
                admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("creating a database");
                let url = with_database(&admin_url, &name);
                TestDb { url, postgres: Some(PostgresDb { admin_url, name }), _dir: None }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(pg) = self.postgres.take() else { return };
        // Drop runs outside any async context we can rely on: use a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await?;
                admin.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg.name).as_str()).await?;
                Ok::<_, sqlx::Error>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {dropped:?}");
        }
    }
}

/// A database name no other test of any process picks: the process id, a counter, the clock.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = Utc::now().timestamp_subsec_nanos();
    format!("twenty_mirror_test_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos)
}

/// `postgres://user@host:port/anything?params` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{}", &base[..path_start], name);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
