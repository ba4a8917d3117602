//! How SQLite's columns read and write: a timestamp is fixed-width RFC 3339 text
//! (`2026-09-21T10:15:30.412Z`), so that text order is time order; and the stored row the apply
//! rule reads before a write.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Sqlite, Type};

use crate::change::{Source, Stage, format_timestamp, parse_timestamp};
use crate::mirror::rows::Timestamp;
use crate::mirror::rule::StoredRow;

impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <str as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <str as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        parse_timestamp(text).map(Timestamp).ok_or_else(|| format!("{text:?} is not a timestamp").into())
    }
}

impl<'q> Encode<'q, Sqlite> for Timestamp {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(format_timestamp(self.0), buf)
    }
}

/// A stored row the apply rule meets, by the index (`ord`) of the batch's change that meets it,
/// with whether its data is the change's (compared where it lies, not handed back).
#[derive(sqlx::FromRow)]
pub(super) struct StoredColumns {
    pub ord: i64,
    updated_at: Timestamp,
    deleted_at: Option<Timestamp>,
    destroyed_at: Option<Timestamp>,
    source: Source,
    same_data: bool,
}

impl From<StoredColumns> for StoredRow {
    fn from(row: StoredColumns) -> Self {
        StoredRow {
            updated_at: row.updated_at.0,
            stage: Stage::of(row.deleted_at.map(|at| at.0), row.destroyed_at.map(|at| at.0)),
            source: row.source,
            same_data: row.same_data,
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::SqlitePool;

    use super::*;

    /// A timestamp is written as fixed-width UTC text and read back as the same instant; text that
    /// is not one, or a name the store does not know, is refused rather than guessed at.
    #[tokio::test]
    async fn columns_read_back_what_was_written_and_refuse_what_was_not() {
        let pool = SqlitePool::connect("sqlite::memory:").await.expect("an in-memory database");
        let at = parse_timestamp("2026-09-21T12:15:30.412+02:00").expect("a timestamp");
        let (text, back): (String, Timestamp) =
            sqlx::query_as("SELECT ?1, ?1").bind(Timestamp(at)).fetch_one(&pool).await.expect("a row");
        assert_eq!(text, "2026-09-21T10:15:30.412Z");
        assert_eq!(back, Timestamp(at));

        let not_a_time = sqlx::query_scalar::<_, Timestamp>("SELECT 'yesterday'").fetch_one(&pool).await;
        assert!(not_a_time.is_err(), "{not_a_time:?}");
        let source: Source =
            sqlx::query_scalar("SELECT 'reconcile'").fetch_one(&pool).await.expect("a source");
        assert_eq!(source, Source::Reconcile);
        let unknown = sqlx::query_scalar::<_, Source>("SELECT 'merged'").fetch_one(&pool).await;
        let error = unknown.expect_err("an unknown source").to_string();
        assert!(error.contains("\"merged\" is not a source"), "{error}");
        pool.close().await;
    }
}
