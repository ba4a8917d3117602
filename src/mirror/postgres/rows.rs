//! How PostgreSQL's columns read: a timestamp is a `timestamptz`; and what the apply statement
//! tells of each row it considered.

use chrono::{DateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::{Decode, Postgres, Type};

use crate::mirror::rows::Timestamp;
use crate::mirror::rule::ApplyOutcome;

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<Postgres>>::decode(value).map(Timestamp)
    }
}

/// What the apply statement did with one of the batch's winners: `inserted` is null when it wrote
/// nothing, and then `identical` tells a duplicate from a stale change.
#[derive(sqlx::FromRow)]
pub(super) struct WinnerOutcome {
    inserted: Option<bool>,
    identical: bool,
}

impl From<WinnerOutcome> for ApplyOutcome {
    fn from(row: WinnerOutcome) -> Self {
        match (row.inserted, row.identical) {
            (Some(true), _) => ApplyOutcome::Inserted,
            (Some(false), _) => ApplyOutcome::Updated,
            (None, true) => ApplyOutcome::Duplicate,
            (None, false) => ApplyOutcome::Stale,
        }
    }
}
