//! The views against real databases: a migrated SQLite file always, and PostgreSQL as well when
//! `TEST_DATABASE_URL` names a server (each test creates a database of its own and drops it).

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{
    Column as _, Connection as _, Executor as _, PgPool, Row as _, SqlitePool, TypeInfo as _, ValueRef as _,
};

use super::{ColumnKind, ObjectFields, ViewOutcome, ViewsReport, postgres, sqlite};

mod cases;

pub(super) struct TestDb {
    db: Db,
}

enum Db {
    Sqlite { pool: SqlitePool, options: SqliteConnectOptions, _dir: tempfile::TempDir },
    Postgres { pool: PgPool, admin: PgConnectOptions, name: String },
}

/// Where a record stands, for [`TestDb::insert`].
#[derive(Clone, Copy)]
pub(super) enum Life {
    Live,
    SoftDeleted,
    Destroyed,
}

impl TestDb {
    /// A migrated SQLite database, and a migrated PostgreSQL one when `TEST_DATABASE_URL` is set.
    pub async fn all() -> Vec<TestDb> {
        let mut all = vec![TestDb::sqlite().await];
        if let Some(url) = std::env::var("TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres")) {
            all.push(TestDb::postgres(&url).await);
        }
        all
    }

    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let options =
            SqliteConnectOptions::new().filename(dir.path().join("mirror.db")).create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await
            .expect("opening SQLite");
        sqlx::migrate!("migrations/sqlite").run(&pool).await.expect("migrating SQLite");
        TestDb { db: Db::Sqlite { pool, options, _dir: dir } }
    }

    async fn postgres(admin_url: &str) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "twenty_mirror_test_views_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            Utc::now().timestamp_subsec_nanos()
        );
        let admin = PgConnectOptions::from_str(admin_url).expect("TEST_DATABASE_URL");
        let mut conn =
            sqlx::PgConnection::connect_with(&admin).await.expect("connecting to TEST_DATABASE_URL");
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("creating a database");
        conn.close().await.expect("closing the admin connection");
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(admin.clone().database(&name))
            .await
            .expect("connecting to the test database");
        sqlx::migrate!("migrations/postgres").run(&pool).await.expect("migrating PostgreSQL");
        TestDb { db: Db::Postgres { pool, admin, name } }
    }

    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres { .. } => "postgres",
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres { .. })
    }

    /// How a query names a view.
    pub fn view(&self, name: &str) -> String {
        match self.db {
            Db::Sqlite { .. } => format!("\"{name}\""),
            Db::Postgres { .. } => format!("twenty.\"{name}\""),
        }
    }

    pub async fn insert(&self, object: &str, record: Value, life: Life) {
        self.insert_text(object, &record.to_string(), life).await;
    }

    /// Inserts a record given as JSON text, which can hold what `serde_json` cannot (`1e400`).
    pub async fn insert_text(&self, object: &str, text: &str, life: Life) {
        let record: Value = serde_json::from_str(&text.replace("1e400", "0")).expect("a JSON record");
        let id = record["id"].as_str().expect("a record id").to_owned();
        let updated_at = record["updatedAt"].as_str().map_or_else(Utc::now, timestamp);
        let (deleted_at, destroyed_at) = match life {
            Life::Live => (None, None),
            Life::SoftDeleted => (Some(updated_at), None),
            Life::Destroyed => (None, Some(updated_at)),
        };
        let sql = "INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, destroyed_at, source) \
                   VALUES ($1, $2, $3, $4, $5, $6, 'reconcile')";
        match &self.db {
            Db::Sqlite { pool, .. } => {
                let as_text =
                    |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
                sqlx::query(sql)
                    .bind(object)
                    .bind(id)
                    .bind(text)
                    .bind(as_text(Some(updated_at)))
                    .bind(as_text(deleted_at))
                    .bind(as_text(destroyed_at))
                    .execute(pool)
                    .await
                    .expect("inserting a record");
            }
            Db::Postgres { pool, .. } => {
                sqlx::query(&sql.replace("$3", "CAST($3 AS jsonb)"))
                    .bind(object)
                    .bind(id)
                    .bind(text)
                    .bind(updated_at)
                    .bind(deleted_at)
                    .bind(destroyed_at)
                    .execute(pool)
                    .await
                    .expect("inserting a record");
            }
        }
    }

    /// Replaces the views for `objects` in a transaction of the caller's, then commits.
    pub async fn replace(&self, objects: &[(&str, Value)]) -> ViewsReport {
        let objects: Vec<ObjectFields<'_>> =
            objects.iter().map(|(name, fields)| ObjectFields { name_singular: name, fields }).collect();
        match &self.db {
            Db::Sqlite { pool, .. } => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("a transaction");
                let report = sqlite::replace_views(&mut tx, &objects).await.expect("replacing the views");
                tx.commit().await.expect("committing");
                report
            }
            Db::Postgres { pool, .. } => {
                let mut tx = pool.begin().await.expect("a transaction");
                let report = postgres::replace_views(&mut tx, &objects).await.expect("replacing the views");
                tx.commit().await.expect("committing");
                report
            }
        }
    }

    /// Replaces the views inside a transaction that is then rolled back.
    pub async fn replace_and_roll_back(&self, objects: &[(&str, Value)]) {
        let objects: Vec<ObjectFields<'_>> =
            objects.iter().map(|(name, fields)| ObjectFields { name_singular: name, fields }).collect();
        match &self.db {
            Db::Sqlite { pool, .. } => {
                let mut tx = pool.begin().await.expect("a transaction");
                sqlite::replace_views(&mut tx, &objects).await.expect("replacing the views");
                tx.rollback().await.expect("rolling back");
            }
            Db::Postgres { pool, .. } => {
                let mut tx = pool.begin().await.expect("a transaction");
                postgres::replace_views(&mut tx, &objects).await.expect("replacing the views");
                tx.rollback().await.expect("rolling back");
            }
        }
    }

    pub async fn execute(&self, sql: &str) {
        match &self.db {
            Db::Sqlite { pool, .. } => pool.execute(sql).await.map(drop),
            Db::Postgres { pool, .. } => pool.execute(sql).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let result = match &self.db {
            Db::Sqlite { pool, .. } => sqlx::query_scalar(sql).fetch_one(pool).await,
            Db::Postgres { pool, .. } => sqlx::query_scalar(sql).fetch_one(pool).await,
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Whether a table or view of that name exists where the mirror's tables or the views live.
    pub async fn relation_exists(&self, schema_and_name: &str) -> bool {
        match &self.db {
            Db::Sqlite { pool, .. } => {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sqlite_schema WHERE name = $1")
                    .bind(schema_and_name)
                    .fetch_one(pool)
                    .await
                    .expect("reading the schema")
                    > 0
            }
            Db::Postgres { pool, .. } => sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
                .bind(schema_and_name)
                .fetch_one(pool)
                .await
                .expect("reading the catalog"),
        }
    }

    /// Every row of a view, ordered by `id`, each column as `(storage type, value)`: on SQLite the
    /// value's storage class, on PostgreSQL the column's declared type.
    pub async fn rows(&self, view: &str) -> Vec<Map<String, Value>> {
        let sql = format!("SELECT * FROM {} ORDER BY id", self.view(view));
        match &self.db {
            Db::Sqlite { options, .. } => {
                // A connection of its own: on a pooled connection that read the schema before a view
                // was replaced, SQLite prepares `SELECT *` with the old columns and re-prepares it
                // when it runs, and sqlx 0.8 then indexes the new columns by the old list.
                let mut conn = sqlx::SqliteConnection::connect_with(options).await.expect("a connection");
                let rows =
                    sqlx::query(&sql).fetch_all(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                let raw = row.try_get_raw(i).expect("a column");
                                // A NULL reports the declared type of a table's column, if any.
                                let class = if raw.is_null() {
                                    "NULL".to_owned()
                                } else {
                                    raw.type_info().name().to_owned()
                                };
                                let value = match class.as_str() {
                                    "INTEGER" => json!(row.get::<i64, _>(i)),
                                    "REAL" => json!(row.get::<f64, _>(i)),
                                    "TEXT" => json!(row.get::<String, _>(i)),
                                    _ => Value::Null,
                                };
                                (row.columns()[i].name().to_owned(), json!([class, value]))
                            })
                            .collect()
                    })
                    .collect()
            }
            Db::Postgres { pool, .. } => {
                let types: Vec<(String, String)> = sqlx::query_as(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                     WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                )
                .bind(self.view(view))
                .fetch_all(pool)
                .await
                .expect("reading the view's columns");
                let json_sql = format!("SELECT to_jsonb(v) FROM ({sql}) v");
                let rows: Vec<Value> = sqlx::query_scalar(&json_sql)
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.into_iter()
                    .map(|row| {
                        types.iter().map(|(name, kind)| (name.clone(), json!([kind, row[name]]))).collect()
                    })
                    .collect()
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Db::Postgres { admin, name, .. } = &self.db else { return };
        let (admin, name) = (admin.clone(), name.clone());
        // Drop runs outside any async context we can rely on: use a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect_with(&admin).await?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
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

pub(super) fn timestamp(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is no timestamp: {e}"))
        .with_timezone(&Utc)
}

/// A value read from a view, in one form for both backends: timestamps in UTC with milliseconds,
/// booleans as booleans, JSON text parsed, numbers as numbers. Panics when the storage type is not
/// the one the column's kind gives on that backend.
pub(super) fn normalized(db: &TestDb, kind: ColumnKind, read: &Value) -> Value {
    let (storage, value) = (read[0].as_str().unwrap_or_default(), &read[1]);
    if db.is_postgres() {
        assert_eq!(storage, kind.postgres_type(), "{kind:?}");
    } else if !value.is_null() {
        let class = match kind {
            ColumnKind::Double => "REAL",
            ColumnKind::Boolean | ColumnKind::BigInt => "INTEGER",
            _ => "TEXT",
        };
        assert_eq!(storage, class, "{kind:?} {value}");
    }
    if value.is_null() {
        return Value::Null;
    }
    match kind {
        ColumnKind::Timestamp => {
            json!(timestamp(value.as_str().expect("text")).to_rfc3339_opts(SecondsFormat::Millis, true))
        }
        ColumnKind::Boolean if !db.is_postgres() => json!(value.as_i64() == Some(1)),
        ColumnKind::TextArray | ColumnKind::Json if !db.is_postgres() => {
            serde_json::from_str(value.as_str().expect("JSON text")).expect("valid JSON")
        }
        ColumnKind::Double => json!(value.as_f64().expect("a number")),
        _ => value.clone(),
    }
}

pub(super) fn outcomes(report: &ViewsReport) -> Vec<(&str, &ViewOutcome)> {
    report.views.iter().map(|v| (v.plan.name.as_str(), &v.outcome)).collect()
}
