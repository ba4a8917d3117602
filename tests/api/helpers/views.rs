//! Reading the typed views as a reader does: on a connection of its own, opened after the views
//! were made (sqlx 0.8 on SQLite can misread a view replaced since a pooled connection last read
//! the schema), naming every column.

use serde_json::Value;
use sqlx::{Connection as _, Executor as _, PgConnection, SqliteConnection};

use super::TestDb;

pub enum Reader {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Reader {
    /// A new connection to the test's database; on PostgreSQL in UTC, so that a `timestamptz`
    /// reads `…+00:00`.
    pub async fn open(db: &TestDb) -> Reader {
        if db.is_postgres() {
            let mut conn = PgConnection::connect(&db.url).await.expect("connecting to PostgreSQL");
            conn.execute("SET TIME ZONE 'UTC'").await.expect("setting the time zone");
            Reader::Postgres(conn)
        } else {
            Reader::Sqlite(SqliteConnection::connect(&db.url).await.expect("connecting to SQLite"))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Reader::Postgres(_))
    }

    /// `name` as SQL names it: `twenty."name"` or `"name"`.
    pub fn relation(&self, name: &str) -> String {
        match self {
            Reader::Sqlite(_) => format!("\"{name}\""),
            Reader::Postgres(_) => format!("twenty.\"{name}\""),
        }
    }

    /// The views in the views' namespace, by name.
    pub async fn views(&mut self) -> Vec<String> {
        match self {
            Reader::Sqlite(conn) => {
                sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type = 'view' ORDER BY name")
                    .fetch_all(conn)
                    .await
            }
            Reader::Postgres(conn) => {
                sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.views WHERE table_schema = 'twenty' \
                     ORDER BY 1",
                )
                .fetch_all(conn)
                .await
            }
        }
        .expect("listing the views")
    }

    /// A view's columns, in order, with their types on PostgreSQL (`""` on SQLite, where a view's
    /// column has none).
    pub async fn columns(&mut self, view: &str) -> Vec<(String, String)> {
        let rows: Vec<(String, String)> = match self {
            Reader::Sqlite(conn) => {
                sqlx::query_as("SELECT name, '' AS type FROM pragma_table_info(?1) ORDER BY cid")
                    .bind(view)
                    .fetch_all(conn)
                    .await
            }
            Reader::Postgres(conn) => {
                sqlx::query_as(
                    "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type \
                     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = 'twenty' AND c.relname = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                     ORDER BY a.attnum",
                )
                .bind(view)
                .fetch_all(conn)
                .await
            }
        }
        .expect("reading a view's columns");
        rows
    }

    /// Every row of a view as a JSON object of its columns, in `id` order. PostgreSQL writes each
    /// value as `to_jsonb` does (arrays and JSON as JSON); SQLite as `json_object` does (JSON
    /// columns as their text).
    pub async fn rows(&mut self, view: &str) -> Vec<Value> {
        let relation = self.relation(view);
        let columns = self.columns(view).await;
        let texts: Vec<String> = match self {
            Reader::Sqlite(conn) => {
                let pairs: Vec<String> =
                    columns.iter().map(|(name, _)| format!("'{name}', \"{name}\"")).collect();
                let sql = format!("SELECT json_object({}) FROM {relation} ORDER BY id", pairs.join(", "));
                sqlx::query_scalar(&sql).fetch_all(conn).await
            }
            Reader::Postgres(conn) => {
                let sql = format!("SELECT to_jsonb(v)::text FROM {relation} v ORDER BY id");
                sqlx::query_scalar(&sql).fetch_all(conn).await
            }
        }
        .expect("reading a view");
        texts.iter().map(|text| serde_json::from_str(text).expect("a row as JSON")).collect()
    }

    /// The one integer a query answers.
    pub async fn integer(&mut self, sql: &str) -> i64 {
        match self {
            Reader::Sqlite(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
            Reader::Postgres(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The one text a query answers.
    pub async fn text(&mut self, sql: &str) -> Option<String> {
        match self {
            Reader::Sqlite(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
            Reader::Postgres(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs statements of the test's own (a table the service did not create).
    pub async fn execute(&mut self, sql: &str) {
        match self {
            Reader::Sqlite(conn) => conn.execute(sql).await.map(drop),
            Reader::Postgres(conn) => conn.execute(sql).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}
