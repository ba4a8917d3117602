//! The read API on PostgreSQL.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgPool, Postgres, Row as _};

use super::sql::{Bind, Dialect, KeyType, PageStatement, Statement, meta_statement, page_statement};
use super::{Freshness, Listing, Meta, Row, assemble, number_value};
use crate::mirror::StoreError;
use crate::mirror::error::Context;
use crate::query::ListQuery;

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn prepare(statement: &Statement) -> Query<'_> {
    let mut query = sqlx::query(&statement.sql);
    for bind in &statement.binds {
        query = match bind {
            Bind::Text(text) => query.bind(text.as_str()),
            Bind::Real(number) => query.bind(*number),
            Bind::Integer(number) => query.bind(*number),
            Bind::Boolean(b) => query.bind(*b),
            Bind::Instant(at) => query.bind(*at),
            Bind::TextArray(values) => query.bind(values.as_slice()),
        };
    }
    query
}

/// A page of the records of `object` that `query` selects, with its cursors and `totalCount`, and
/// the object's freshness.
pub async fn listing(
    pool: &PgPool,
    object: &str,
    query: &ListQuery,
) -> Result<(Listing, Freshness), StoreError> {
    let statement = page_statement(Dialect::Postgres, object, query);
    let rows = prepare(&statement.statement).fetch_all(pool).await.context("reading a page of records")?;
    let meta = match rows.first() {
        Some(row) => decode_meta(row, statement.meta_column())?,
        None => read_meta(pool, &meta_statement(Dialect::Postgres, object, Some(query))).await?,
    };
    let rows = rows.iter().map(|row| decode(row, &statement)).collect::<Result<_, _>>()?;
    Ok(assemble(query, rows, meta))
}

/// The object's freshness.
pub async fn freshness(pool: &PgPool, object: &str) -> Result<Freshness, StoreError> {
    Ok(read_meta(pool, &meta_statement(Dialect::Postgres, object, None)).await?.freshness)
}

async fn read_meta(pool: &PgPool, statement: &Statement) -> Result<Meta, StoreError> {
    let row = prepare(statement).fetch_one(pool).await.context("reading an object's count and freshness")?;
    decode_meta(&row, 0)
}

/// The meta columns, from column `first` on.
fn decode_meta(row: &PgRow, first: usize) -> Result<Meta, StoreError> {
    let read = || -> Result<Meta, sqlx::Error> {
        Ok(Meta {
            total_count: row.try_get(first)?,
            freshness: Freshness {
                last_complete_pass: row.try_get(first + 1)?,
                last_delivery: row.try_get(first + 2)?,
            },
        })
    };
    read().context("reading an object's count and freshness")
}

/// One live record's data (neither soft-deleted nor destroyed), as `GET /rest/{plural}/{id}` sees it.
pub async fn record(pool: &PgPool, object: &str, id: &str) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT data::text FROM twenty_records \
         WHERE object = $1 AND id = $2 AND deleted_at IS NULL AND destroyed_at IS NULL",
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
    pool: &PgPool,
    object: &str,
    ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    sqlx::query_as(
        "SELECT id, data::text FROM twenty_records \
         WHERE object = $1 AND id = ANY($2) AND deleted_at IS NULL AND destroyed_at IS NULL",
    )
    .bind(object)
    .bind(ids)
    .fetch_all(pool)
    .await
    .context("reading related records")
}

fn decode(row: &PgRow, statement: &PageStatement) -> Result<Row, StoreError> {
    let id: String = row.try_get(0).context("reading a record's id")?;
    let data: String = row.try_get(1).context("reading a record's data")?;
    let keys = statement
        .key_columns()
        .map(|(key, column)| {
            Ok(match key {
                KeyType::Id => Value::from(id.as_str()),
                KeyType::Text => row.try_get::<Option<String>, _>(column)?.map_or(Value::Null, Value::from),
                KeyType::Number => row.try_get::<Option<f64>, _>(column)?.map_or(Value::Null, number_value),
                KeyType::Boolean => row.try_get::<Option<bool>, _>(column)?.map_or(Value::Null, Value::from),
                KeyType::Instant => row
                    .try_get::<Option<DateTime<Utc>>, _>(column)?
                    .map_or(Value::Null, |at| Value::from(at.to_rfc3339_opts(SecondsFormat::Millis, true))),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .context("reading a record's sort keys")?;
    Ok(Row { id, data, keys })
}
