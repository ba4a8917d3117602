//! The views on PostgreSQL: in schema `twenty`, reading typed values through the
//! `twenty_mirror_*` functions of migration 0005.
//!
//! Each function takes the JSON value (`data -> 'key'`) and gives NULL, never an error, for a value
//! that does not fit: a cast that raised would make the whole view fail for one bad record. None
//! has an exception handler, which would cost a subtransaction per row and rule out parallel query:
//! the checks are jsonpath methods run with `silent`, which turns their errors into no result. Each
//! is one SQL expression that PostgreSQL inlines into the query (the plan shows the expression, not
//! a call), and whose argument it evaluates once.
//! - `double`: `.double()` takes a number or a numeric string within double precision's range.
//! - `boolean`: a `CASE` on the JSON value, evaluated once.
//! - `bigint`: a jsonpath filter lets through an integer number below 10^18 in magnitude, or a
//!   string of 1 to 18 digits with an optional minus sign.
//! - `timestamptz`: `.datetime()` checks the value; the cast then reads what `.datetime()` wrote,
//!   which it always can (a cast of the value itself could raise for one the template accepts,
//!   such as a month `00`). Twenty's own form (`2026-09-21T10:15:30.412Z`) is tried first, so it
//!   costs one check; `.datetime()` without a template reads ISO forms with an offset, not `Z`.
//!   Its parse is PostgreSQL's `to_timestamp`, which takes a few malformed values (a month `00`
//!   as January) rather than refusing them.
//! - `date`: the same with `YYYY-MM-DD`.
//! - `text_array`: each element of a JSON array as text (a string as itself, another value as its
//!   JSON text). It holds a subquery, so it is called rather than inlined: only when read.
//! - `json`: any value but JSON `null`.
//!
//! The migration's text stays short because sqlx logs every statement it runs, migrations included,
//! at debug level.
//! A view's SQL is built here, not bound: DDL takes no parameters. Every name in it went through
//! [`naming`]: identifiers are `[a-z0-9_]` and quoted, JSON keys and object names are checked and
//! quoted as literals.

use sqlx::Executor as _;
use sqlx::types::Json;
use sqlx::{Connection as _, PgConnection, Row as _};

use super::naming::{quote_identifier, quote_literal};
use super::{
    Build, ColumnKind, ColumnSource, DroppedView, ExistingRelation, ObjectFields, RegisteredView, Step,
    ViewColumn, ViewOutcome, ViewPlan, ViewReport, ViewsReport, work_out,
};
use crate::mirror::StoreError;
use crate::mirror::error::Context;

/// The schema of the views.
pub const SCHEMA: &str = "twenty";

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
    format!("CREATE VIEW {SCHEMA}.{} AS {select}", quote_identifier(name))
}

/// A view's name as a reader writes it: in schema `twenty`.
pub fn reader_name(name: &str) -> String {
    format!("{SCHEMA}.{name}")
}

fn replace_view_sql(plan: &ViewPlan) -> String {
    format!("CREATE OR REPLACE VIEW {SCHEMA}.{} AS {}", quote_identifier(&plan.name), select_sql(plan))
}

fn drop_view_sql(name: &str) -> String {
    format!("DROP VIEW IF EXISTS {SCHEMA}.{}", quote_identifier(name))
}

fn column_expression(column: &ViewColumn) -> String {
    let path = match &column.source {
        ColumnSource::RecordId => return "r.id".into(),
        ColumnSource::RecordUpdatedAt => return "r.updated_at".into(),
        ColumnSource::RecordDeletedAt => return "r.deleted_at".into(),
        ColumnSource::RecordCreatedAt => return "r.created_at".into(),
        ColumnSource::Key { path } => path,
    };
    let (value, text) = match path.as_slice() {
        [key] => (format!("r.data -> {}", quote_literal(key)), format!("r.data ->> {}", quote_literal(key))),
        keys => {
            let keys: Vec<String> = keys.iter().map(|k| quote_literal(k)).collect();
            let array = format!("ARRAY[{}]", keys.join(", "));
            (format!("r.data #> {array}"), format!("r.data #>> {array}"))
        }
    };
    let function = match column.kind {
        // `->>` gives a string as itself and any other value as its JSON text: nothing to check.
        ColumnKind::Text => return text,
        ColumnKind::Double => "twenty_mirror_double",
        ColumnKind::Boolean => "twenty_mirror_boolean",
        ColumnKind::Timestamp => "twenty_mirror_timestamptz",
        ColumnKind::Date => "twenty_mirror_date",
        ColumnKind::BigInt => "twenty_mirror_bigint",
        ColumnKind::TextArray => "twenty_mirror_text_array",
        ColumnKind::Json => "twenty_mirror_json",
    };
    format!("{function}({value})")
}

/// Brings the views in line with `objects` (every mirrored object; the views of others are
/// dropped). Runs in a savepoint of the caller's transaction, or in a transaction of its own when
/// there is none; each view's change has a savepoint of its own, so one the database refuses (a
/// view another view depends on cannot be dropped) keeps its previous view, is reported, and the
/// rest go on.
pub async fn replace_views(
    conn: &mut PgConnection,
    objects: &[ObjectFields<'_>],
) -> Result<ViewsReport, StoreError> {
    let mut tx = conn.begin().await.context("starting to replace the views")?;
    let registered = registered_views(&mut tx).await?;
    let existing = existing_relations(&mut tx).await?;
    let work = work_out(objects, registered, &existing, true, select_sql);
    let mut report = ViewsReport { skipped: work.skipped, ..ViewsReport::default() };
    for name in &work.forget {
        sqlx::query("DELETE FROM twenty_views WHERE name = $1")
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
async fn execute_ddl(conn: &mut PgConnection, statement: &str) -> Result<(), sqlx::Error> {
    conn.execute(sqlx::raw_sql(statement)).await.map(drop)
}

/// Releases the savepoint after a success, rolls back to it after a refusal; `Err` only when the
/// savepoint itself fails.
async fn settle<T>(
    savepoint: sqlx::Transaction<'_, sqlx::Postgres>,
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

async fn drop_registered(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    execute_ddl(conn, &drop_view_sql(name)).await?;
    sqlx::query("DELETE FROM twenty_views WHERE name = $1").bind(name).execute(&mut *conn).await?;
    Ok(())
}

async fn apply_build(conn: &mut PgConnection, build: &Build) -> Result<ViewOutcome, sqlx::Error> {
    let (statement, outcome) = match build.step {
        Step::Keep => return Ok(ViewOutcome::Unchanged),
        Step::UpdatePlan => {
            sqlx::query("UPDATE twenty_views SET plan = $2 WHERE name = $1")
                .bind(&build.plan.name)
                .bind(Json(&build.plan))
                .execute(&mut *conn)
                .await?;
            return Ok(ViewOutcome::Unchanged);
        }
        Step::Create => (create_view_sql(&build.plan), ViewOutcome::Created),
        // In place, so that views and grants that depend on it survive.
        Step::ReplaceInPlace => (replace_view_sql(&build.plan), ViewOutcome::Replaced),
        Step::Recreate => {
            execute_ddl(conn, &drop_view_sql(&build.plan.name)).await?;
            (create_view_sql(&build.plan), ViewOutcome::Replaced)
        }
    };
    execute_ddl(conn, &statement).await?;
    sqlx::query(
        "INSERT INTO twenty_views (name, object, definition, plan, replaced_at) VALUES ($1, $2, $3, $4, now()) \
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
pub async fn registered_views(conn: &mut PgConnection) -> Result<Vec<RegisteredView>, StoreError> {
    let rows = sqlx::query("SELECT name, object, definition, plan FROM twenty_views ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .context("reading the registered views")?;
    rows.iter()
        .map(|row| {
            let plan: serde_json::Value = row.try_get("plan").context("reading a view's plan")?;
            Ok(RegisteredView {
                name: row.try_get("name").context("reading a view's name")?,
                object: row.try_get("object").context("reading a view's object")?,
                definition: row.try_get("definition").context("reading a view's definition")?,
                plan: serde_json::from_value(plan).ok(),
            })
        })
        .collect()
}

/// The names in schema `twenty`: relations of every kind, and the types that are not a relation's
/// row type or an array (a view's row type takes its name, so a type of that name blocks it; array
/// types are renamed out of the way by PostgreSQL).
async fn existing_relations(conn: &mut PgConnection) -> Result<Vec<ExistingRelation>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.relname::text AS name, c.relkind = 'v' AS is_view \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 \
         UNION ALL \
         SELECT t.typname::text, false \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
          WHERE n.nspname = $1 AND t.typrelid = 0 AND t.typcategory <> 'A'",
    )
    .bind(SCHEMA)
    .fetch_all(conn)
    .await
    .context("listing the tables and views of schema twenty")?;
    rows.iter()
        .map(|row| {
            Ok(ExistingRelation {
                name: row.try_get("name").context("reading a relation's name")?,
                is_view: row.try_get("is_view").context("reading a relation's kind")?,
            })
        })
        .collect()
}
