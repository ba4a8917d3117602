//! Load test of the typed views (`src/mirror/views/`). Run with `cargo bench --bench views_load`.
//!
//! 1. Regeneration: the views of a workspace of [`OBJECTS`] objects with [`FIELDS`] fields each (a
//!    field of every type in turn, so that composites give several columns), replaced in one
//!    transaction as discovery does: in a fresh database, again with nothing changed, again with a
//!    field added at the end of every object (PostgreSQL replaces in place), and again with a field
//!    deactivated in the middle of every object (dropped and created). Target: each under 1 s.
//! 2. Reading: the view of `VIEWS_BENCH_RECORDS` (default 1,000,000) `person` records of 1–2 KB,
//!    3% of them soft-deleted, beside a tenth as many records of another object, against the same
//!    query written by hand over `twenty_records`: `count(*)` with a filter on a text column
//!    (`city`), on the indexed timestamp column (`updated_at`) and on a timestamp read from the
//!    record (`created_at`), and a page of 60 rows in `updated_at` order (the first, and one from
//!    the middle by keyset). Each query runs once to warm the cache, then `VIEWS_BENCH_RUNS` times
//!    (default 5); the fastest run counts. A hand-written query casts without any check, as a person
//!    would; the view checks every value. Target: the view within 1.5× of the hand-written query.
//!
//! `BENCH_BACKENDS=sqlite` or `=postgres` runs one backend only; `BENCH_POSTGRES_URL` names the
//! server (default `postgres://postgres@127.0.0.1:5432/postgres`), where a database is created and
//! dropped. PostgreSQL runs with the server's settings (parallel query, JIT), which the report
//! shows. The results go to the terminal and to `target/views_load.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection as _, Executor as _, PgConnection, SqliteConnection};
use twenty_mirror::mirror::views::{self, ColumnKind, ColumnSource, ObjectFields, ViewOutcome};

use support::people::{POSTGRES_PEOPLE, SQLITE_PEOPLE};

#[allow(dead_code, reason = "shared by every bench; this one uses its settings and records")]
mod support;

const OBJECTS: usize = 50;
const FIELDS: usize = 60;
const DEFAULT_RECORDS: usize = 1_000_000;
const DEFAULT_RUNS: usize = 5;
const TARGET_REGENERATION: Duration = Duration::from_secs(1);
const TARGET_RATIO: f64 = 1.5;
/// `createdAt` of record i is this plus 7 i seconds, `updatedAt` plus 8 i seconds (2026-01-01).
const EPOCH_SECONDS: i64 = 1_767_225_600;

fn main() {
    let records = support::number("VIEWS_BENCH_RECORDS", DEFAULT_RECORDS);
    let runs = support::number("VIEWS_BENCH_RUNS", DEFAULT_RUNS).max(1);
    let selected = support::setting("BENCH_BACKENDS").unwrap_or_else(|| "sqlite,postgres".to_owned());
    let postgres_url = support::setting("BENCH_POSTGRES_URL")
        .unwrap_or_else(|| support::database::DEFAULT_POSTGRES_URL.to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let mut report = format!(
        "# views_load\n\n{OBJECTS} objects × {FIELDS} fields; {records} records read, fastest of {runs} runs.\n"
    );
    for backend in selected.split(',').map(str::trim) {
        let section = match backend {
            "sqlite" => runtime.block_on(async { bench(Db::sqlite().await, records, runs).await }),
            "postgres" => match runtime.block_on(Db::postgres(&postgres_url)) {
                Ok(db) => runtime.block_on(bench(Ok(db), records, runs)),
                Err(why) => format!("\n## postgres\n\nskipped: {why}\n"),
            },
            other => format!("\n## {other}\n\nunknown backend (sqlite, postgres)\n"),
        };
        eprintln!("{section}");
        report.push_str(&section);
    }
    println!("\n{report}");
    let path = target_dir().join("views_load.md");
    match std::fs::write(&path, &report) {
        Ok(()) => println!("written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

async fn bench(db: Result<Db, String>, records: usize, runs: usize) -> String {
    let mut db = match db {
        Ok(db) => db,
        Err(why) => return format!("\nskipped: {why}\n"),
    };
    let mut out = format!("\n## {}\n\n{}\n", db.backend(), db.settings().await);
    regeneration(&mut db, &mut out).await;
    reading(&mut db, records, runs, &mut out).await;
    db.finish().await;
    out
}

// ---------------------------------------------------------------------------------------------
// Regeneration

/// One field of every type in turn, after the four every object has.
const TYPES: &[&str] = &[
    "TEXT",
    "NUMBER",
    "BOOLEAN",
    "DATE_TIME",
    "DATE",
    "SELECT",
    "MULTI_SELECT",
    "RATING",
    "CURRENCY",
    "FULL_NAME",
    "EMAILS",
    "PHONES",
    "LINKS",
    "ADDRESS",
    "ACTOR",
    "RICH_TEXT_V2",
    "RAW_JSON",
    "ARRAY",
    "UUID",
    "POSITION",
    "RELATION",
];

fn field(name: &str, kind: &str) -> Value {
    let relation = (kind == "RELATION").then(|| json!({"type": "MANY_TO_ONE"}));
    json!({"name": name, "type": kind, "isActive": true, "isSystem": false, "options": null, "relation": relation})
}

fn workspace() -> Vec<(String, Vec<Value>)> {
    (0..OBJECTS)
        .map(|i| {
            let mut fields = vec![
                field("id", "UUID"),
                field("createdAt", "DATE_TIME"),
                field("updatedAt", "DATE_TIME"),
                field("deletedAt", "DATE_TIME"),
            ];
            fields.extend((4..FIELDS).map(|j| field(&format!("field{j:02}"), TYPES[(i + j) % TYPES.len()])));
            (format!("benchObject{i:02}"), fields)
        })
        .collect()
}

async fn regeneration(db: &mut Db, out: &mut String) {
    let mut objects = workspace();
    let workspace = given(&objects);
    let objects_given: Vec<ObjectFields<'_>> =
        workspace.iter().map(|(name, fields)| ObjectFields { name_singular: name, fields }).collect();
    let columns: usize =
        views::plan_views(&objects_given, &Default::default()).views.iter().map(|v| v.columns.len()).sum();
    let _ = writeln!(
        out,
        "Regeneration, {columns} columns in all:\n\n| pass | time | outcome | verdict |\n|---|---|---|---|"
    );
    let pass = |name: &str, elapsed: Duration, report: views::ViewsReport, out: &mut String| {
        let mut tally = std::collections::BTreeMap::<&str, usize>::new();
        for view in &report.views {
            let outcome = match view.outcome {
                ViewOutcome::Created => "created",
                ViewOutcome::Replaced => "replaced",
                ViewOutcome::Unchanged => "unchanged",
                ViewOutcome::Failed { .. } => "FAILED",
            };
            *tally.entry(outcome).or_default() += 1;
        }
        let tally: Vec<String> = tally.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let verdict = verdict(elapsed <= TARGET_REGENERATION && !report.has_failures());
        let _ = writeln!(out, "| {name} | {} | {} | {verdict} |", ms(elapsed), tally.join(", "));
    };
    let (elapsed, report) = db.replace(&given(&objects)).await;
    pass("first, fresh database", elapsed, report, out);
    let (elapsed, report) = db.replace(&given(&objects)).await;
    pass("again, nothing changed", elapsed, report, out);
    for (_, fields) in &mut objects {
        fields.push(field("addedField", "TEXT"));
    }
    let (elapsed, report) = db.replace(&given(&objects)).await;
    pass("a field added at the end of each", elapsed, report, out);
    for (_, fields) in &mut objects {
        fields[FIELDS / 2]["isActive"] = json!(false);
    }
    let (elapsed, report) = db.replace(&given(&objects)).await;
    pass("a field deactivated in the middle of each", elapsed, report, out);
    let (elapsed, report) = db.replace(&[]).await;
    let _ = writeln!(out, "| every view dropped | {} | {} dropped | |\n", ms(elapsed), report.dropped.len());
}

fn given(objects: &[(String, Vec<Value>)]) -> Vec<(String, Value)> {
    objects.iter().map(|(name, fields)| (name.clone(), Value::Array(fields.clone()))).collect()
}

// ---------------------------------------------------------------------------------------------
// Reading

fn person_fields() -> Value {
    let mut company = field("company", "RELATION");
    company["relation"] = json!({"type": "MANY_TO_ONE"});
    json!([
        field("id", "UUID"),
        field("createdAt", "DATE_TIME"),
        field("updatedAt", "DATE_TIME"),
        field("deletedAt", "DATE_TIME"),
        field("createdBy", "ACTOR"),
        field("position", "POSITION"),
        field("name", "FULL_NAME"),
        field("emails", "EMAILS"),
        field("phones", "PHONES"),
        field("linkedinLink", "LINKS"),
        field("xLink", "LINKS"),
        field("jobTitle", "TEXT"),
        field("city", "TEXT"),
        field("avatarUrl", "TEXT"),
        company,
        field("intro", "TEXT"),
    ])
}

struct Measured {
    name: &'static str,
    view: Duration,
    hand: Duration,
    agree: bool,
}

async fn reading(db: &mut Db, records: usize, runs: usize, out: &mut String) {
    let started = Instant::now();
    db.load(records).await;
    let loaded = started.elapsed();
    let (_, report) = db.replace(&[("person".to_owned(), person_fields())]).await;
    let plan = &report.views[0].plan;
    let live =
        db.count("SELECT count(*) FROM twenty_records WHERE object = 'person' AND deleted_at IS NULL").await;
    let view_rows = db.count(&format!("SELECT count(*) FROM {}", db.view("person"))).await;
    let _ = writeln!(
        out,
        "Reading: {records} person records loaded in {:.1} s; the view has {} columns and {view_rows} rows \
         ({live} live records).\n\n| query | view | by hand | ratio | verdict |\n|---|---|---|---|---|",
        loaded.as_secs_f64(),
        plan.columns.len(),
    );
    let middle_created = timestamp(EPOCH_SECONDS + 7 * records as i64 / 2);
    let middle_updated = timestamp(EPOCH_SECONDS + 8 * records as i64 / 2);
    let view = db.view("person");
    let live_person =
        "FROM twenty_records WHERE object = 'person' AND deleted_at IS NULL AND destroyed_at IS NULL";
    let postgres = matches!(db, Db::Postgres { .. });
    let (hand_city, hand_created) = if postgres {
        ("data ->> 'city'", "(data ->> 'createdAt')::timestamptz")
    } else {
        ("data ->> '$.city'", "data ->> '$.createdAt'")
    };
    let literal = |t: &str| if postgres { format!("'{t}'::timestamptz") } else { format!("'{t}'") };
    let hand_columns: Vec<String> = plan.columns.iter().map(|c| hand_expression(db, c)).collect();
    let hand_columns = hand_columns.join(", ");
    let counts = [
        ("count(*), text filter", "city = 'Paris'".to_owned(), format!("{hand_city} = 'Paris'")),
        (
            "count(*), updated_at filter",
            format!("updated_at >= {}", literal(&middle_updated)),
            format!("updated_at >= {}", literal(&middle_updated)),
        ),
        (
            "count(*), created_at filter",
            format!("created_at >= {}", literal(&middle_created)),
            format!("{hand_created} >= {}", literal(&middle_created)),
        ),
    ];
    let mut measured = Vec::new();
    for (name, view_filter, hand_filter) in counts {
        let view_sql = format!("SELECT count(*) FROM {view} WHERE {view_filter}");
        let hand_sql = format!("SELECT count(*) {live_person} AND {hand_filter}");
        measured.push(db.compare(name, &view_sql, &hand_sql, runs, Shape::Count).await);
    }
    let pages = [
        ("first page of 60, updated_at order", String::new(), String::new()),
        (
            "page of 60 from the middle (keyset)",
            format!("WHERE updated_at > {}", literal(&middle_updated)),
            format!("AND updated_at > {}", literal(&middle_updated)),
        ),
    ];
    for (name, view_filter, hand_filter) in pages {
        let view_sql = format!("SELECT * FROM {view} {view_filter} ORDER BY updated_at LIMIT 60");
        let hand_sql =
            format!("SELECT {hand_columns} {live_person} {hand_filter} ORDER BY updated_at LIMIT 60");
        measured.push(db.compare(name, &view_sql, &hand_sql, runs, Shape::Rows).await);
    }
    for m in &measured {
        let ratio = m.view.as_secs_f64() / m.hand.as_secs_f64().max(1e-9);
        let verdict = if m.agree { verdict(ratio <= TARGET_RATIO) } else { "ANSWERS DIFFER" };
        let _ = writeln!(out, "| {} | {} | {} | {ratio:.2}× | {verdict} |", m.name, ms(m.view), ms(m.hand));
    }
}

/// The column as a person writes it over `twenty_records`: the value read and cast, unchecked.
/// `createdAt` is read from `data`, as before PostgreSQL's `created_at` column existed.
fn hand_expression(db: &Db, column: &views::ViewColumn) -> String {
    let created_at = ["createdAt".to_owned()];
    let path: &[String] = match &column.source {
        ColumnSource::RecordId => return "id".into(),
        ColumnSource::RecordUpdatedAt => return "updated_at".into(),
        ColumnSource::RecordDeletedAt => return "deleted_at".into(),
        ColumnSource::RecordCreatedAt => &created_at,
        ColumnSource::Key { path } => path,
    };
    match db {
        Db::Sqlite { .. } => {
            let path = format!("'$.{}'", path.join("."));
            match column.kind {
                ColumnKind::Json | ColumnKind::TextArray => format!("data -> {path}"),
                _ => format!("data ->> {path}"),
            }
        }
        Db::Postgres { .. } => {
            let text = format!("data #>> '{{{}}}'", path.join(","));
            let cast = |ty: &str| format!("({text})::{ty}");
            match column.kind {
                ColumnKind::Text => text,
                ColumnKind::Double => cast("float8"),
                ColumnKind::Boolean => cast("boolean"),
                ColumnKind::Timestamp => cast("timestamptz"),
                ColumnKind::Date => cast("date"),
                ColumnKind::BigInt => cast("bigint"),
                ColumnKind::TextArray | ColumnKind::Json => format!("data #> '{{{}}}'", path.join(",")),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Databases

enum Db {
    Sqlite { conn: SqliteConnection, _dir: tempfile::TempDir },
    Postgres { conn: PgConnection, admin: Box<PgConnectOptions>, name: String },
}

#[derive(Clone, Copy)]
enum Shape {
    Count,
    Rows,
}

impl Db {
    async fn sqlite() -> Result<Db, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("mirror.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let mut conn = SqliteConnection::connect_with(&options).await.map_err(|e| e.to_string())?;
        sqlx::migrate!("migrations/sqlite").run(&mut conn).await.map_err(|e| e.to_string())?;
        Ok(Db::Sqlite { conn, _dir: dir })
    }

    async fn postgres(admin_url: &str) -> Result<Db, String> {
        let admin = PgConnectOptions::from_str(admin_url).map_err(|e| e.to_string())?;
        let connect = tokio::time::timeout(Duration::from_secs(3), PgConnection::connect_with(&admin));
        let mut conn = match connect.await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(format!("cannot connect to {admin_url}: {e}")),
            Err(_) => return Err(format!("{admin_url} did not answer within 3 s")),
        };
        // A database left by an interrupted bench is recognisable by its prefix.
        let name = format!("twenty_mirror_bench_views_{}", std::process::id());
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.map_err(|e| e.to_string())?;
        conn.close().await.map_err(|e| e.to_string())?;
        let mut conn =
            PgConnection::connect_with(&admin.clone().database(&name)).await.map_err(|e| e.to_string())?;
        sqlx::migrate!("migrations/postgres").run(&mut conn).await.map_err(|e| e.to_string())?;
        Ok(Db::Postgres { conn, admin: Box::new(admin), name })
    }

    fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres { .. } => "postgres",
        }
    }

    fn view(&self, name: &str) -> String {
        match self {
            Db::Sqlite { .. } => format!("\"{name}\""),
            Db::Postgres { .. } => format!("twenty.\"{name}\""),
        }
    }

    async fn settings(&mut self) -> String {
        match self {
            Db::Sqlite { conn, .. } => {
                let version: String =
                    sqlx::query_scalar("SELECT sqlite_version()").fetch_one(conn).await.unwrap_or_default();
                format!("SQLite {version}, one connection, WAL.\n")
            }
            Db::Postgres { conn, .. } => {
                let row: (String, String, String) = sqlx::query_as(
                    "SELECT current_setting('server_version'), current_setting('max_parallel_workers_per_gather'), \
                     current_setting('jit')",
                )
                .fetch_one(conn)
                .await
                .unwrap_or_default();
                format!("PostgreSQL {}, max_parallel_workers_per_gather {}, jit {}.\n", row.0, row.1, row.2)
            }
        }
    }

    /// Replaces the views in a transaction, as discovery would; the time includes the commit.
    async fn replace(&mut self, objects: &[(String, Value)]) -> (Duration, views::ViewsReport) {
        let given: Vec<ObjectFields<'_>> =
            objects.iter().map(|(name, fields)| ObjectFields { name_singular: name, fields }).collect();
        let started = Instant::now();
        let report = match self {
            Db::Sqlite { conn, .. } => {
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.expect("a transaction");
                let report = views::sqlite::replace_views(&mut tx, &given).await.expect("replacing views");
                tx.commit().await.expect("committing");
                report
            }
            Db::Postgres { conn, .. } => {
                let mut tx = conn.begin().await.expect("a transaction");
                let report = views::postgres::replace_views(&mut tx, &given).await.expect("replacing views");
                tx.commit().await.expect("committing");
                report
            }
        };
        (started.elapsed(), report)
    }

    async fn execute(&mut self, sql: &str) {
        let result = match self {
            Db::Sqlite { conn, .. } => conn.execute(sql).await.map(drop),
            Db::Postgres { conn, .. } => conn.execute(sql).await.map(drop),
        };
        result.unwrap_or_else(|e| panic!("{e}: {sql}"));
    }

    async fn count(&mut self, sql: &str) -> i64 {
        let result = match self {
            Db::Sqlite { conn, .. } => sqlx::query_scalar(sql).fetch_one(conn).await,
            Db::Postgres { conn, .. } => sqlx::query_scalar(sql).fetch_one(conn).await,
        };
        result.unwrap_or_else(|e| panic!("{e}: {sql}"))
    }

    /// The answer's size: the count, or the ids of the rows in order.
    async fn answer(&mut self, sql: &str, shape: Shape) -> Vec<String> {
        match shape {
            Shape::Count => vec![self.count(sql).await.to_string()],
            Shape::Rows => {
                let result = match self {
                    Db::Sqlite { conn, .. } => sqlx::query_scalar(sql).fetch_all(conn).await,
                    Db::Postgres { conn, .. } => sqlx::query_scalar(sql).fetch_all(conn).await,
                };
                result.unwrap_or_else(|e| panic!("{e}: {sql}"))
            }
        }
    }

    /// Runs each query once to warm up, then `runs` times, alternating; the fastest of each.
    async fn compare(
        &mut self,
        name: &'static str,
        view: &str,
        hand: &str,
        runs: usize,
        shape: Shape,
    ) -> Measured {
        let agree = self.answer(view, shape).await == self.answer(hand, shape).await;
        let (mut best_view, mut best_hand) = (Duration::MAX, Duration::MAX);
        for _ in 0..runs {
            for (sql, best) in [(view, &mut best_view), (hand, &mut best_hand)] {
                let started = Instant::now();
                self.answer(sql, shape).await;
                *best = (*best).min(started.elapsed());
            }
        }
        Measured { name, view: best_view, hand: best_hand, agree }
    }

    /// `records` person records and a tenth as many company records, built by the database.
    async fn load(&mut self, records: usize) {
        let (person, company, analyze) = match self {
            Db::Sqlite { .. } => (SQLITE_PEOPLE, SQLITE_COMPANIES, "ANALYZE"),
            Db::Postgres { .. } => (POSTGRES_PEOPLE, POSTGRES_COMPANIES, "VACUUM ANALYZE twenty_records"),
        };
        self.execute(&person.replace("{records}", &records.to_string())).await;
        self.execute(&company.replace("{records}", &(records / 10).to_string())).await;
        self.execute(analyze).await;
    }

    async fn finish(self) {
        match self {
            Db::Sqlite { conn, .. } => {
                let _ = conn.close().await;
            }
            Db::Postgres { conn, admin, name } => {
                let _ = conn.close().await;
                let dropped = async {
                    let mut admin = PgConnection::connect_with(&admin).await?;
                    admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
                    admin.close().await
                };
                if let Err(e) = dropped.await {
                    eprintln!("could not drop the bench database {name}: {e}");
                }
            }
        }
    }
}

const SQLITE_COMPANIES: &str = r#"
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {records})
INSERT INTO twenty_records (object, id, data, updated_at, source)
SELECT 'company', printf('%08d-0000-4000-8000-%012d', i, i),
       json_object('id', printf('%08d-0000-4000-8000-%012d', i, i), 'name', 'Company ' || i, 'city', 'Paris',
                   'updatedAt', strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i * 8, 'unixepoch')),
       strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i * 8, 'unixepoch'), 'reconcile'
FROM n
"#;

const POSTGRES_COMPANIES: &str = r#"
INSERT INTO twenty_records (object, id, data, updated_at, source)
SELECT 'company', lpad(i::text, 8, '0') || '-0000-4000-8000-' || lpad(i::text, 12, '0'),
       jsonb_build_object('id', lpad(i::text, 8, '0') || '-0000-4000-8000-' || lpad(i::text, 12, '0'),
           'name', 'Company ' || i, 'city', 'Paris',
           'updatedAt', to_char(to_timestamp(1767225600 + i * 8) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
       to_timestamp(1767225600 + i * 8), 'reconcile'
FROM generate_series(1::bigint, {records}) AS i
"#;

// ---------------------------------------------------------------------------------------------
// Helpers

fn timestamp(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .expect("a timestamp")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "OVER TARGET" }
}

fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_owned()
}
