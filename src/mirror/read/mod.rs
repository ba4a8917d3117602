//! The store's side of the read API: the SQL of a [`ListQuery`] on each backend, run against
//! `twenty_records`.
//!
//! Pages are keyset pages only (never `OFFSET`): a page deep in the set costs what the first one
//! costs. Soft-deleted rows take part only when the filter mentions `deletedAt`; destroyed rows
//! never do. `totalCount` is the filter's count without the cursor, and the kept count of live
//! records when there is no filter. A page, its `totalCount` and the object's freshness are one
//! statement (see `sql.rs`).

pub mod postgres;
mod sql;
pub mod sqlite;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use sql::{Bind, Dialect, KeyType, PageStatement, Statement, meta_statement, page_statement};

use crate::query::{ListQuery, Position, cursor};

/// One page of a listing, in the ordering's order whichever way it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<PageRecord>,
    /// Twenty's flags: more records follow a forward page; a page read backward says `true`.
    pub has_next_page: bool,
    /// More records precede a backward page; a forward page after a cursor says `true`.
    pub has_previous_page: bool,
    /// The cursors of the first and the last record: the only ones Twenty's envelope holds, and
    /// so the only ones made (a cursor per record was 6% of a first page's CPU).
    cursors: Option<(String, String)>,
}

impl Page {
    /// `pageInfo.startCursor`.
    pub fn start_cursor(&self) -> Option<&str> {
        self.cursors.as_ref().map(|(start, _)| start.as_str())
    }

    /// `pageInfo.endCursor`.
    pub fn end_cursor(&self) -> Option<&str> {
        self.cursors.as_ref().map(|(_, end)| end.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PageRecord {
    pub id: String,
    /// The record as the mirror holds it, as JSON text.
    pub data: String,
}

/// A page and `totalCount`.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub page: Page,
    pub total_count: i64,
}

/// How fresh an object's mirror is: read from the kept rows (`sync_state`, `object_stats`), never
/// from the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Freshness {
    /// When the object's last complete pass (delta or full) ended.
    pub last_complete_pass: Option<DateTime<Utc>>,
    /// When the last delivery for the object arrived.
    pub last_delivery: Option<DateTime<Utc>>,
}

/// What the meta columns of a statement hold: `totalCount` and the freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Meta {
    total_count: i64,
    freshness: Freshness,
}

/// A row of a page statement: the sort keys' values already as the JSON a cursor holds.
struct Row {
    id: String,
    data: String,
    keys: Vec<Value>,
}

/// The listing from the `limit + 1` rows its statement read and their meta columns.
fn assemble(query: &ListQuery, rows: Vec<Row>, meta: Meta) -> (Listing, Freshness) {
    (Listing { page: page(query, rows), total_count: meta.total_count }, meta.freshness)
}

fn page(query: &ListQuery, mut rows: Vec<Row>) -> Page {
    let more = rows.len() > query.limit;
    rows.truncate(query.limit);
    let (has_next_page, has_previous_page) = match query.position {
        Position::First => (more, false),
        Position::After(_) => (more, true),
        Position::Before(_) => {
            rows.reverse();
            (true, more)
        }
    };
    let cursor = |row: &Row| cursor::encode(&query.order, &row.keys);
    let cursors = rows.first().zip(rows.last()).map(|(first, last)| (cursor(first), cursor(last)));
    let records = rows.into_iter().map(|row| PageRecord { id: row.id, data: row.data }).collect();
    Page { records, has_next_page, has_previous_page, cursors }
}

/// A sort key's number as a cursor holds it: an integer when it is one, as in the record.
fn number_value(number: f64) -> Value {
    // 2^53: past it, not every integer is an f64.
    const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;
    if number.fract() == 0.0 && number.abs() < EXACT_INTEGERS {
        Value::from(number as i64)
    } else {
        serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
    }
}
