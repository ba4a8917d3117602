//! Record lists, `GET /rest/{plural}`: the query parameters, the filter and the order applied to
//! the rows (or to the replica's view of them), one page of them, and `totalCount`.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::filter::Filter;
use super::order::{OrderItem, SortVal, compare_keys, cursor_key, encode_cursor, parse_order_by, sort_key};
use super::routes::{bad_request, error, object_not_found};
use super::schema::Schema;
use super::state::{Row, Shared, Table, lock};

/// `limit` when the request has none.
const DEFAULT_LIMIT: usize = 60;
/// The largest page: a larger `limit` is clamped to it.
const MAX_LIMIT: usize = 200;

/// How record listings misbehave, as some Twenty releases do.
#[derive(Default)]
pub(super) struct ListingQuirks {
    /// A listing ends after this many pages (counted from its first page, the one without a
    /// cursor) with `hasNextPage: false`, whatever remains.
    pub(super) truncate_after_pages: Option<usize>,
    /// The page number of the listing under way.
    pages_answered: usize,
    /// The next this-many listings with a cursor answer 400 `INVALID_CURSOR`.
    pub(super) cursor_rejections: usize,
}

/// Twenty's answer to a cursor made for another `order_by` (protocol notes, section 8).
const INVALID_CURSOR: &str = "Cursor is missing the value for orderBy field updatedAt: it was encoded for a \
     different orderBy. Restart pagination without a cursor";

struct ListQuery {
    limit: usize,
    order: Vec<OrderItem>,
    filter: Option<Filter>,
    /// The filter as the request wrote it: the key of the count cache.
    filter_text: String,
    /// Soft-deleted records are hidden unless the filter mentions `deletedAt`.
    include_deleted: bool,
    after: Option<Vec<SortVal>>,
    before: Option<Vec<SortVal>>,
}

fn parse_list_query(query: &str, schema: &Schema) -> Result<ListQuery, String> {
    let params = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| format!("invalid query string: {e}"))?
        .into_inner();
    // An empty parameter is an absent one.
    let param = |name: &str| {
        params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    };
    let limit = match param("limit") {
        None => DEFAULT_LIMIT,
        Some(text) if text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse::<usize>().map_or(MAX_LIMIT, |limit| limit.min(MAX_LIMIT))
        }
        Some(text) => return Err(format!("limit '{text}' is invalid. Should be an integer")),
    };
    match param("depth") {
        None | Some("0" | "1") => {}
        Some(text) => return Err(format!("'depth={text}' parameter invalid. Allowed values are 0, 1")),
    }
    let order = parse_order_by(param("order_by"), schema)?;
    let filter_text = param("filter").unwrap_or_default().to_owned();
    let filter = match filter_text.as_str() {
        "" => None,
        text => {
            let mut filter = Filter::parse(text)?;
            filter.typed(schema)?;
            Some(filter)
        }
    };
    let cursor = |name: &str| param(name).map(|text| cursor_key(text, &order)).transpose();
    let after = cursor("starting_after")?;
    let before = cursor("ending_before")?;
    if after.is_some() && before.is_some() {
        return Err("starting_after and ending_before cannot be used together".into());
    }
    Ok(ListQuery {
        limit,
        order,
        include_deleted: filter.as_ref().is_some_and(Filter::mentions_deleted_at),
        filter,
        filter_text,
        after,
        before,
    })
}

struct Page {
    rows: Vec<Arc<Row>>,
    total: usize,
    has_next: bool,
    has_previous: bool,
}

pub(super) fn list(shared: &Shared, plural: &str, query: &str) -> HttpResponse {
    let (mut page, query, singular_plural, truncated) = {
        let mut state = lock(shared);
        let Some(meta) = state.object_by_plural(plural) else {
            return object_not_found(&state, plural);
        };
        let singular = meta.singular.clone();
        let query = match parse_list_query(query, &meta.schema()) {
            Ok(query) => query,
            Err(message) => return bad_request(message),
        };
        let quirks = &mut state.listing;
        if query.after.is_some() && quirks.cursor_rejections > 0 {
            quirks.cursor_rejections -= 1;
            return error(400, "INVALID_CURSOR", INVALID_CURSOR);
        }
        quirks.pages_answered = if query.after.is_some() { quirks.pages_answered + 1 } else { 1 };
        let truncated = quirks.truncate_after_pages.is_some_and(|pages| quirks.pages_answered >= pages);
        let lag = state.replica_lag;
        let table = state.tables.get_mut(&singular).expect("a table per object");
        let page = if lag.is_zero() { fast_page(table, &query) } else { None };
        let page = match page {
            Some(page) => page,
            None => {
                let rows = if lag.is_zero() {
                    table.by_id.values().cloned().collect()
                } else {
                    table.lagging_rows(lag)
                };
                sorted_page(rows, &query)
            }
        };
        (page, query, plural.to_owned(), truncated)
    };
    page.has_next &= !truncated;
    let page_info = json!({
        "hasNextPage": page.has_next,
        "hasPreviousPage": page.has_previous,
        "startCursor": page.rows.first().map(|row| encode_cursor(row, &query.order)),
        "endCursor": page.rows.last().map(|row| encode_cursor(row, &query.order)),
    });
    // Written by hand so that the records are serialised in place, not cloned into a new Value.
    let mut body = Vec::with_capacity(256 + page.rows.len() * 1024);
    body.extend_from_slice(b"{\"data\":{");
    serde_json::to_writer(&mut body, &singular_plural).expect("serialising");
    body.extend_from_slice(b":[");
    for (i, row) in page.rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &row.value).expect("serialising");
    }
    body.extend_from_slice(format!("]}},\"totalCount\":{},\"pageInfo\":", page.total).as_bytes());
    serde_json::to_writer(&mut body, &page_info).expect("serialising");
    body.push(b'}');
    HttpResponse::Ok().content_type("application/json; charset=utf-8").body(body)
}

fn matches_query(row: &Row, query: &ListQuery) -> bool {
    (query.include_deleted || !row.is_soft_deleted())
        && query.filter.as_ref().is_none_or(|f| f.eval(row) == Some(true))
}

/// Takes up to `limit` matching rows from `rows` (already in page order), and whether more match.
fn take_page<'a>(rows: impl Iterator<Item = &'a Arc<Row>>, query: &ListQuery) -> (Vec<Arc<Row>>, bool) {
    let mut page = Vec::with_capacity(query.limit.min(MAX_LIMIT));
    let mut more = false;
    for row in rows.filter(|row| matches_query(row, query)) {
        if page.len() == query.limit {
            more = true;
            break;
        }
        page.push(row.clone());
    }
    (page, more)
}

/// Pages straight from an index for the orders `id` and `updatedAt, id` (ascending), without sorting;
/// `None` for other orders.
fn fast_page(table: &mut Table, query: &ListQuery) -> Option<Page> {
    let by_updated = match query.order.as_slice() {
        [id] if id.path == ["id"] && !id.desc => false,
        [updated, id] if updated.path == ["updatedAt"] && !updated.desc && id.path == ["id"] && !id.desc => {
            true
        }
        _ => return None,
    };
    // A cursor always ends with the id; with `updatedAt` it starts with an instant.
    let bound = |key: &[SortVal]| -> Option<(i64, Arc<str>)> {
        let id = match key.last()? {
            SortVal::Text(id) => Arc::from(id.as_str()),
            _ => return None,
        };
        let updated = match key.first()? {
            SortVal::Time(ms) => *ms,
            _ if !by_updated => 0,
            _ => return None,
        };
        Some((updated, id))
    };
    let after = match &query.after {
        Some(key) => Some(bound(key)?),
        None => None,
    };
    let before = match &query.before {
        Some(key) => Some(bound(key)?),
        None => None,
    };
    let (mut rows, more) = match (&after, &before, by_updated) {
        (_, Some((_, id)), false) => take_page(
            table.by_id.range::<str, _>((Bound::Unbounded, Bound::Excluded(&**id))).rev().map(|(_, r)| r),
            query,
        ),
        (_, Some(key), true) => take_page(table.by_updated.range(..key.clone()).rev().map(|(_, r)| r), query),
        (Some((_, id)), None, false) => take_page(
            table.by_id.range::<str, _>((Bound::Excluded(&**id), Bound::Unbounded)).map(|(_, r)| r),
            query,
        ),
        (Some(key), None, true) => take_page(
            table.by_updated.range((Bound::Excluded(key.clone()), Bound::Unbounded)).map(|(_, r)| r),
            query,
        ),
        (None, None, false) => take_page(table.by_id.values(), query),
        (None, None, true) => take_page(table.by_updated.values(), query),
    };
    let (has_next, has_previous) = if before.is_some() {
        rows.reverse();
        (true, more)
    } else {
        (more, after.is_some())
    };
    let total = match table.counts.get(&query.filter_text) {
        Some(&(generation, count)) if generation == table.generation => count,
        _ => {
            let count = table.by_id.values().filter(|row| matches_query(row, query)).count();
            if table.counts.len() > 64 {
                table.counts.clear();
            }
            table.counts.insert(query.filter_text.clone(), (table.generation, count));
            count
        }
    };
    Some(Page { rows, total, has_next, has_previous })
}

/// Filters, sorts and pages any set of rows (any order, and the replica's view).
fn sorted_page(rows: Vec<Arc<Row>>, query: &ListQuery) -> Page {
    let mut keyed: Vec<(Vec<SortVal>, Arc<Row>)> = rows
        .into_iter()
        .filter(|row| matches_query(row, query))
        .map(|row| (sort_key(&row, &query.order), row))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare_keys(a, b, &query.order));
    let total = keyed.len();
    let (start, end, has_next, has_previous) = if let Some(before) = &query.before {
        let end = keyed.partition_point(|(key, _)| compare_keys(key, before, &query.order) == Ordering::Less);
        let start = end.saturating_sub(query.limit);
        // Twenty says a page read backward has a next page, whatever follows its cursor.
        (start, end, true, start > 0)
    } else {
        let start = match &query.after {
            Some(after) => {
                keyed.partition_point(|(key, _)| compare_keys(key, after, &query.order) != Ordering::Greater)
            }
            None => 0,
        };
        let end = (start + query.limit).min(total);
        (start, end, end < total, query.after.is_some())
    };
    let rows = keyed.drain(start..end).map(|(_, row)| row).collect();
    Page { rows, total, has_next, has_previous }
}
