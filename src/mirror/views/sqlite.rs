//! The views on SQLite: in the main database, built from SQLite's own JSON and date functions only,
//! so that any SQLite client can read them.
//!
//! A view's SQL is built here, not bound: DDL takes no parameters. Every name in it went through
//! [`naming`]: identifiers are `[a-z0-9_]` and quoted, JSON keys and object names are checked and
//! quoted as literals. No expression here can raise an error for a value in `data` (SQLite's
//! `json_type`, `json_valid`, `date`, `strftime`, `GLOB` and `CAST` give NULL or a value), so one
//! record cannot make a view fail.
//!
//! A reader that keeps connections open should name the columns it reads rather than `SELECT *`:
//! on a connection that read the schema before a view was replaced, SQLite prepares the statement
//! with the old columns and prepares it again when it runs, and sqlx 0.8 then indexes the new
//! columns by the old list (it panics in its worker when there are more).

use sqlx::Executor as _;
use sqlx::types::Json;
use sqlx::{Connection as _, Row as _, SqliteConnection};

use super::naming::{quote_identifier, quote_literal};
use super::{
    Build, ColumnKind, ColumnSource, DroppedView, ExistingRelation, ObjectFields, RegisteredView, Step,
    ViewColumn, ViewOutcome, ViewPlan, ViewReport, ViewsReport, work_out,
};
use crate::mirror::StoreError;
use crate::mirror::error::Context;

/// The largest finite double: a JSON number beyond it reads as infinity, which no column holds.
const MAX_DOUBLE: &str = "1.7976931348623157e308";

/// How the mirror writes timestamps on SQLite (`2026-09-21T10:15:30.412Z`): text order is time
/// order.
const SQLITE_TIMESTAMP: &str = "%Y-%m-%dT%H:%M:%fZ";

/// The `SELECT` of a view.
pub fn select_sql(plan: &ViewPlan) -> String {
    let columns: Vec<String> = plan
        .columns
        .iter()
        .map(|c| format!("{} AS {}", column_expression(c), quote_identifier(&c.name)))
        .collect();
    format!(
        "SELECT {} FROM twenty_records AS r WHERE r.object = {} AND r.deleted_at IS NULL AND r.destroyed_at IS NULL",
        columns.join(", "),
        quote_literal(&plan.object)
    )
}

/// The statement that creates a view, as `twenty-mirror views --sql` prints it.
pub fn create_view_sql(plan: &ViewPlan) -> String {
    create_statement(&plan.name, &select_sql(plan))
}

/// The statement that creates view `name` as `select`.
pub fn create_statement(name: &str, select: &str) -> String {
    format!("CREATE VIEW main.{} AS {select}", quote_identifier(name))
}

/// A view's name as a reader writes it: in the main database, unqualified.
pub fn reader_name(name: &str) -> String {
    name.to_owned()
}

fn drop_view_sql(name: &str) -> String {
    format!("DROP VIEW IF EXISTS main.{}", quote_identifier(name))
}

fn column_expression(column: &ViewColumn) -> String {
    let created_at = ["createdAt".to_owned()];
    let path: &[String] = match &column.source {
        ColumnSource::RecordId => return "r.id".into(),
        ColumnSource::RecordUpdatedAt => return "r.updated_at".into(),
        ColumnSource::RecordDeletedAt => return "r.deleted_at".into(),
        // No column of its own here: the views over SQLite are within 1.5× of hand-written SQL
        // without one, and adding one would mean rebuilding the table.
        ColumnSource::RecordCreatedAt => &created_at,
        ColumnSource::Key { path } => path,
    };
    // `$."key"."sub"`: keys hold no double quote or backslash (checked), so quoting them is enough.
    let json_path: String = path.iter().map(|key| format!(".\"{key}\"")).collect();
    let p = quote_literal(&format!("${json_path}"));
    let value = format!("(r.data ->> {p})");
    let json_type = format!("json_type(r.data, {p})");
    match column.kind {
        // A string as itself; a number as its text; a boolean as 1 or 0; an object or array as JSON.
        ColumnKind::Text => format!("CAST({value} AS TEXT)"),
        ColumnKind::Double => format!(
            "CASE {json_type} \
             WHEN 'integer' THEN CAST({value} AS REAL) \
             WHEN 'real' THEN CASE WHEN abs({value}) <= {MAX_DOUBLE} THEN {value} END \
             WHEN 'text' THEN CASE WHEN json_valid({value}) THEN \
                 CASE WHEN json_type({value}) IN ('integer', 'real') AND abs(CAST({value} AS REAL)) <= {MAX_DOUBLE} \
                 THEN CAST({value} AS REAL) END END \
             END"
        ),
        ColumnKind::Boolean => format!("CASE {json_type} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END"),
        // Twenty's own form comes back from strftime as it went in, which also proves the date and
        // time exist (a 30 February would come back as 2 March): one call. Any other form is
        // checked for its shape and its date, then normalised to UTC. A number or an object never
        // has the shape, so its JSON type needs no check.
        ColumnKind::Timestamp => format!(
            "CASE WHEN strftime('{SQLITE_TIMESTAMP}', {value}) = {value} THEN {value} \
                 WHEN {value} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*' \
                     AND ({value} GLOB '*Z' OR {value} GLOB '*[+-][0-9][0-9]:[0-9][0-9]') \
                     AND date(substr({value}, 1, 10)) = substr({value}, 1, 10) \
                 THEN strftime('{SQLITE_TIMESTAMP}', {value}) \
             END"
        ),
        ColumnKind::Date => format!("CASE WHEN date({value}) = {value} THEN {value} END"),
        // Comparisons, not abs(): abs() of the smallest integer raises an overflow error.
        ColumnKind::BigInt => format!(
            "CASE {json_type} \
             WHEN 'integer' THEN CASE WHEN {value} > -1000000000000000000 AND {value} < 1000000000000000000 THEN {value} END \
             WHEN 'real' THEN CASE WHEN {value} > -1e18 AND {value} < 1e18 AND {value} = CAST({value} AS INTEGER) \
                 THEN CAST({value} AS INTEGER) END \
             WHEN 'text' THEN CASE \
                 WHEN {value} NOT GLOB '*[^0-9]*' AND length({value}) BETWEEN 1 AND 18 THEN CAST({value} AS INTEGER) \
                 WHEN {value} GLOB '-[0-9]*' AND substr({value}, 2) NOT GLOB '*[^0-9]*' AND length({value}) <= 19 \
                 THEN CAST({value} AS INTEGER) END \
             END"
        ),
        ColumnKind::TextArray => format!("CASE WHEN {json_type} = 'array' THEN r.data -> {p} END"),
        // `->` gives the JSON text, `null` for a JSON null, NULL for a missing key.
        ColumnKind::Json => format!("NULLIF(r.data -> {p}, 'null')"),
    }
}

/// Brings the views in line with `objects` (every mirrored object; the views of others are
/// dropped). Runs in a savepoint of the caller's transaction, or in a write transaction of its own
/// when there is none; each view's change has a savepoint of its own, so one the database refuses
/// is reported and the rest go on.
pub async fn replace_views(
    conn: &mut SqliteConnection,
    objects: &[ObjectFields<'_>],
) -> Result<ViewsReport, StoreError> {
    let mut tx =
        if conn.is_in_transaction() { conn.begin().await } else { conn.begin_with("BEGIN IMMEDIATE").await }
            .context("starting to replace the views")?;
    let registered = registered_views(&mut tx).await?;
    let existing = existing_relations(&mut tx).await?;
    let work = work_out(objects, registered, &existing, false, select_sql);
    let mut report = ViewsReport { skipped: work.skipped, ..ViewsReport::default() };
    for name in &work.forget {
        sqlx::query("DELETE FROM twenty_views WHERE name = ?1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .context("forgetting a view that is no longer the service's")?;
    }
    for old in work.drop {
        let mut savepoint = tx.begin().await.context("starting a savepoint")?;
        let dropped = drop_registered(&mut savepoint, &old.name).await;
        let error = settle(savepoint, dropped).await?.err();
        report.dropped.push(DroppedView { name: old.name, object: old.object, error });
    }
    for build in work.build {
        let outcome = match build.step {
            Step::Keep => ViewOutcome::Unchanged,
            _ => {
                let mut savepoint = tx.begin().await.context("starting a savepoint")?;
                let built = apply_build(&mut savepoint, &build).await;
                settle(savepoint, built).await?.unwrap_or_else(|error| ViewOutcome::Failed { error })
            }
        };
        report.views.push(ViewReport { plan: build.plan, outcome });
    }
    tx.commit().await.context("committing the views")?;
    Ok(report)
}

/// Runs a statement built here, as text (DDL takes no parameters). Through `Executor::execute`,
/// whose boxed future is `Send` for every lifetime: `raw_sql(..).execute(..)` over a borrowed
/// `String` cannot be proved `Send` inside a caller's future (rust-lang/rust#102211).
async fn execute_ddl(conn: &mut SqliteConnection, statement: &str) -> Result<(), sqlx::Error> {
    conn.execute(sqlx::raw_sql(statement)).await.map(drop)
}

/// Releases the savepoint after a success, rolls back to it after a refusal; `Err` only when the
/// savepoint itself fails.
async fn settle<T>(
    savepoint: sqlx::Transaction<'_, sqlx::Sqlite>,
    result: Result<T, sqlx::Error>,
) -> Result<Result<T, String>, StoreError> {
    match result {
        Ok(value) => {
            savepoint.commit().await.context("releasing a savepoint")?;
            Ok(Ok(value))
        }
        Err(error) => {
            savepoint.rollback().await.context("rolling back to a savepoint")?;
            Ok(Err(error.to_string()))
        }
    }
}

async fn drop_registered(conn: &mut SqliteConnection, name: &str) -> Result<(), sqlx::Error> {
    execute_ddl(conn, &drop_view_sql(name)).await?;
    sqlx::query("DELETE FROM twenty_views WHERE name = ?1").bind(name).execute(&mut *conn).await?;
    Ok(())
}

async fn apply_build(conn: &mut SqliteConnection, build: &Build) -> Result<ViewOutcome, sqlx::Error> {
    let outcome = match build.step {
        Step::Keep => return Ok(ViewOutcome::Unchanged),
        Step::UpdatePlan => {
            sqlx::query("UPDATE twenty_views SET plan = ?2 WHERE name = ?1")
                .bind(&build.plan.name)
                .bind(Json(&build.plan))
                .execute(&mut *conn)
                .await?;
            return Ok(ViewOutcome::Unchanged);
        }
        Step::Create => ViewOutcome::Created,
        // SQLite has no CREATE OR REPLACE VIEW.
        Step::ReplaceInPlace | Step::Recreate => {
            execute_ddl(conn, &drop_view_sql(&build.plan.name)).await?;
            ViewOutcome::Replaced
        }
    };
    execute_ddl(conn, &create_view_sql(&build.plan)).await?;
    sqlx::query(
        "INSERT INTO twenty_views (name, object, definition, plan, replaced_at) \
         VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
         ON CONFLICT (name) DO UPDATE SET object = excluded.object, definition = excluded.definition, \
             plan = excluded.plan, replaced_at = excluded.replaced_at",
    )
    .bind(&build.plan.name)
    .bind(&build.plan.object)
    .bind(&build.definition)
    .bind(Json(&build.plan))
    .execute(&mut *conn)
    .await?;
    Ok(outcome)
}

/// The views the service created, as `twenty_views` lists them, by name.
pub async fn registered_views(conn: &mut SqliteConnection) -> Result<Vec<RegisteredView>, StoreError> {
    let rows = sqlx::query("SELECT name, object, definition, plan FROM twenty_views ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .context("reading the registered views")?;
    rows.iter()
        .map(|row| {
            let plan: String = row.try_get("plan").context("reading a view's plan")?;
            Ok(RegisteredView {
                name: row.try_get("name").context("reading a view's name")?,
                object: row.try_get("object").context("reading a view's object")?,
                definition: row.try_get("definition").context("reading a view's definition")?,
                plan: serde_json::from_str(&plan).ok(),
            })
        })
        .collect()
}

/// Tables, views and indexes share one namespace in SQLite: a view cannot take the name of any.
async fn existing_relations(conn: &mut SqliteConnection) -> Result<Vec<ExistingRelation>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, type = 'view' AS is_view FROM sqlite_schema WHERE type IN ('table', 'view', 'index')",
    )
    .fetch_all(conn)
    .await
    .context("listing the database's tables and views")?;
    rows.iter()
        .map(|row| {
            Ok(ExistingRelation {
                name: row.try_get("name").context("reading a table's name")?,
                is_view: row.try_get("is_view").context("reading a table's type")?,
            })
        })
        .collect()
}
