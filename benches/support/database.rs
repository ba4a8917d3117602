//! The databases the benches run on: a fresh one per run, on SQLite in a temporary folder or on
//! the PostgreSQL server that `BENCH_POSTGRES_URL` names; `BENCH_BACKENDS` picks the backends.

use std::time::Duration;

use sqlx::{Connection as _, Executor as _, PgConnection};

use super::setting;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

/// The backends `BENCH_BACKENDS` asks for (`sqlite,postgres` when unset), and a note for each one
/// skipped: PostgreSQL when its server does not answer.
pub async fn selected_backends() -> (Vec<Backend>, Vec<String>) {
    let postgres_url = setting("BENCH_POSTGRES_URL").unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
    let selected = setting("BENCH_BACKENDS").unwrap_or_else(|| "sqlite,postgres".to_owned());
    let wanted = |name: &str| selected.split(',').any(|s| s.trim() == name);
    let (mut backends, mut notes) = (Vec::new(), Vec::new());
    if wanted("sqlite") {
        backends.push(Backend::Sqlite);
    }
    if wanted("postgres") {
        match postgres_answers(&postgres_url).await {
            Ok(()) => backends.push(Backend::Postgres { admin_url: postgres_url }),
            Err(why) => {
                println!("PostgreSQL skipped: {why}");
                notes.push(format!("PostgreSQL skipped: {why}"));
            }
        }
    }
    (backends, notes)
}

async fn postgres_answers(admin_url: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(admin_url)).await {
        Ok(Ok(connection)) => connection.close().await.map_err(|e| format!("closing a connection: {e}")),
        Ok(Err(e)) => Err(format!("cannot connect to {admin_url}: {e}")),
        Err(_) => Err(format!("{admin_url} did not answer within 3 s")),
    }
}

/// A fresh, empty database, removed when dropped.
pub struct Database {
    pub url: String,
    place: Place,
}

enum Place {
    /// The folder goes with the database file in it.
    Folder {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl Database {
    /// `purpose` names the database among this process's, so it must be unique among those alive
    /// at once.
    pub async fn create(backend: &Backend, purpose: &str) -> Database {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("twenty-mirror-bench-")
                    .tempdir()
                    .expect("creating a temporary folder");
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Database { url, place: Place::Folder { _dir: dir } }
            }
            Backend::Postgres { admin_url } => {
                // Unique per process and purpose, so concurrent benches do not collide; a database
                // left by an interrupted bench is recognisable by its prefix.
                let name = format!("{}{purpose}", database_prefix());
                let mut admin =
                    PgConnection::connect(admin_url).await.expect("connecting to BENCH_POSTGRES_URL");
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("creating a bench database");
                admin.close().await.expect("closing the admin connection");
                let url = with_database(admin_url, &name);
                Database { url, place: Place::Postgres { admin_url: admin_url.clone(), name } }
            }
        }
    }

    /// The PostgreSQL database's name; `None` on SQLite.
    pub fn postgres_name(&self) -> Option<&str> {
        match &self.place {
            Place::Folder { .. } => None,
            Place::Postgres { name, .. } => Some(name),
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let Place::Postgres { admin_url, name } = &self.place else { return };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop may run inside a runtime: use one of its own, on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
                admin.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a bench database: {dropped:?}");
        }
    }
}

/// The names of this process's databases start with this.
fn database_prefix() -> String {
    format!("twenty_mirror_bench_{}_", std::process::id())
}

/// `postgres://user@host:port/anything?params` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
