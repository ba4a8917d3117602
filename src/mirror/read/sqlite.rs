//! The read API on SQLite.

use serde_json::Value;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row as _, Sqlite, SqlitePool};

use super::sql::{
    Bind, Dialect, KeyType, PageStatement, Statement, meta_statement, page_statement, sqlite_timestamp,
};
use super::{Freshness, Listing, Meta, Row, assemble, number_value};
use crate::change::parse_timestamp;
use crate::mirror::StoreError;
use crate::mirror::error::Context;
use crate::query::ListQuery;

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

fn prepare(statement: &Statement) -> Query<'_> {
    let mut query = sqlx::query(&statement.sql);
    for bind in &statement.binds {
        query = match bind {
            Bind::Text(text) => query.bind(text.as_str()),
            Bind::Real(number) => query.bind(*number),
            Bind::Integer(number) => query.bind(*number),
            Bind::Boolean(b) => query.bind(*b),
            Bind::Instant(at) => query.bind(sqlite_timestamp(*at)),
            Bind::TextArray(values) => query.bind(Value::from(values.clone()).to_string()),
        };
    }
    query
}

/// A page of the records of `object` that `query` selects, with its cursors and `totalCount`, and
/// the object's freshness.
///
/// The records come in the page's order: SQLite emits a `UNION ALL`'s parts in turn, and a
/// subquery's rows in the order of its `ORDER BY` (which it cannot leave out, as its `LIMIT`
/// depends on it). The ordering tests here and the differential suite would be the first to fail
/// if a version of SQLite did otherwise.
pub async fn listing(
    pool: &SqlitePool,
    object: &str,
    query: &ListQuery,
) -> Result<(Listing, Freshness), StoreError> {
    let statement = page_statement(Dialect::Sqlite, object, query);
    let rows = prepare(&statement.statement).fetch_all(pool).await.context("reading a page of records")?;
    let mut meta = None;
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        match row.try_get::<Option<String>, _>(0).context("reading a record's id")? {
            Some(id) => records.push(decode(row, id, &statement)?),
            None => meta = Some(decode_meta(row, 1)?),
        }
    }
    let meta =
        meta.ok_or_else(|| StoreError::Corrupt("a page read without its count and freshness".into()))?;
    Ok(assemble(query, records, meta))
}

/// The object's freshness.
pub async fn freshness(pool: &SqlitePool, object: &str) -> Result<Freshness, StoreError> {
    let statement = meta_statement(Dialect::Sqlite, object, None);
    let row = prepare(&statement).fetch_one(pool).await.context("reading an object's freshness")?;
    Ok(decode_meta(&row, 0)?.freshness)
}

/// The meta values in column `column`: `[totalCount, last complete pass, last delivery]`.
fn decode_meta(row: &SqliteRow, column: usize) -> Result<Meta, StoreError> {
    let text: String = row.try_get(column).context("reading an object's count and freshness")?;
    let corrupt =
        |what: &str| StoreError::Corrupt(format!("an object's count and freshness {text:?}: {what}"));
    let (total_count, last_complete_pass, last_delivery): (i64, Option<String>, Option<String>) =
        serde_json::from_str(&text).map_err(|error| corrupt(&error.to_string()))?;
    let instant = |text: Option<String>| match text {
        Some(text) => parse_timestamp(&text).map(Some).ok_or_else(|| corrupt("not a timestamp")),
        None => Ok(None),
    };
    Ok(Meta {
        total_count,
        freshness: Freshness {
            last_complete_pass: instant(last_complete_pass)?,
            last_delivery: instant(last_delivery)?,
        },
    })
}

/// One live record's data (neither soft-deleted nor destroyed), as `GET /rest/{plural}/{id}` sees it.
pub async fn record(pool: &SqlitePool, object: &str, id: &str) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT data FROM twenty_records \
         WHERE object = ?1 AND id = ?2 AND deleted_at IS NULL AND destroyed_at IS NULL",
    )
    .bind(object)
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("reading a record")
}

/// The live records of `object` among `ids`, as `(id, data)`, in no particular order: the targets
/// of a page's many-to-one relations.
pub async fn records_by_ids(
    pool: &SqlitePool,
    object: &str,
    ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    sqlx::query_as(
        "SELECT id, data FROM twenty_records \
         WHERE object = ?1 AND id IN (SELECT value FROM json_each(?2)) \
           AND deleted_at IS NULL AND destroyed_at IS NULL",
    )
    .bind(object)
    .bind(Value::from(ids.to_vec()).to_string())
    .fetch_all(pool)
    .await
    .context("reading related records")
}

fn decode(row: &SqliteRow, id: String, statement: &PageStatement) -> Result<Row, StoreError> {
    let data: String = row.try_get(1).context("reading a record's data")?;
    let keys = statement
        .key_columns()
        .map(|(key, column)| {
            Ok(match key {
                KeyType::Id => Value::from(id.as_str()),
                // Timestamps are stored, and computed, as the fixed-width text a cursor holds.
                KeyType::Text | KeyType::Instant => {
                    row.try_get::<Option<String>, _>(column)?.map_or(Value::Null, Value::from)
                }
                KeyType::Number => row.try_get::<Option<f64>, _>(column)?.map_or(Value::Null, number_value),
                KeyType::Boolean => {
                    row.try_get::<Option<i64>, _>(column)?.map_or(Value::Null, |b| Value::from(b != 0))
                }
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("reading a record's sort keys")?;
    Ok(Row { id, data, keys })
}
