//! The read API's request language: Twenty's REST parameters (`limit`, `depth`, `order_by`,
//! `filter`, `starting_after`, `ending_before`) parsed into a typed [`ListQuery`], with Twenty's
//! messages for what it refuses.
//!
//! Pure: no I/O and nothing of the rest of the application, so that the HTTP layer parses with it
//! and the store builds SQL from what it returns. An object's fields come in as an
//! [`ObjectSchema`], read from the field definitions of Twenty's metadata API.

pub mod cursor;
mod error;
pub mod filter;
mod order;
mod predicate;
mod schema;
#[cfg(test)]
mod tests;

pub use error::{Parameter, QueryError};
pub use filter::{Filter, Operator};
pub use order::{Direction, SortKey, parse_order_by};
pub use predicate::{Comparison, LikePattern, LikePiece, Predicate, Scalar};
pub use schema::{Leaf, LeafKind, ManyToOne, ObjectSchema};

/// Twenty's page size when `limit` is absent or empty.
pub const DEFAULT_LIMIT: usize = 60;

/// Twenty's largest page: a larger `limit` is this one.
pub const MAX_LIMIT: usize = 200;

/// The parameters of `GET /rest/{plural}` as the query string gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListParams<'a> {
    pub limit: Option<&'a str>,
    pub depth: Option<&'a str>,
    pub order_by: Option<&'a str>,
    pub filter: Option<&'a str>,
    pub starting_after: Option<&'a str>,
    pub ending_before: Option<&'a str>,
}

impl<'a> ListParams<'a> {
    /// From decoded query-string pairs; a repeated parameter's last value wins, and parameters the
    /// read API does not know are ignored, as Twenty ignores them.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut params = ListParams::default();
        for (name, value) in pairs {
            let slot = match name {
                "limit" => &mut params.limit,
                "depth" => &mut params.depth,
                "order_by" => &mut params.order_by,
                "filter" => &mut params.filter,
                "starting_after" => &mut params.starting_after,
                "ending_before" => &mut params.ending_before,
                _ => continue,
            };
            *slot = Some(value);
        }
        params
    }
}

/// `depth`: whether many-to-one relations are nested in each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Zero,
    One,
}

/// Where the page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    First,
    /// `starting_after`: the records after the cursor's, one value per key of the ordering.
    After(Vec<Option<Scalar>>),
    /// `ending_before`: the records before the cursor's.
    Before(Vec<Option<Scalar>>),
}

/// A `GET /rest/{plural}` request, validated against the object's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub limit: usize,
    pub depth: Depth,
    /// The ordering, `id` included.
    pub order: Vec<SortKey>,
    pub filter: Option<Predicate>,
    /// Whether soft-deleted records take part: only when the filter mentions `deletedAt`.
    pub include_soft_deleted: bool,
    pub position: Position,
}

/// Parses and validates a list request's parameters. Empty parameters count as absent.
pub fn parse_list(params: &ListParams<'_>, schema: &ObjectSchema) -> Result<ListQuery, QueryError> {
    let limit = parse_limit(params.limit)?;
    let depth = parse_depth(params.depth)?;
    let order = parse_order_by(params.order_by, schema)?;
    let parsed = present(params.filter).map(filter::parse).transpose()?;
    let include_soft_deleted = parsed.as_ref().is_some_and(Filter::mentions_deleted_at);
    let filter = parsed.map(|f| Predicate::resolve(&f, schema)).transpose()?;
    let position = match (present(params.starting_after), present(params.ending_before)) {
        (Some(_), Some(_)) => {
            return Err(QueryError::new(
                Parameter::EndingBefore,
                "'starting_after' and 'ending_before' cannot be used together",
            ));
        }
        (Some(text), None) => Position::After(cursor::decode(text, &order, Parameter::StartingAfter)?),
        (None, Some(text)) => Position::Before(cursor::decode(text, &order, Parameter::EndingBefore)?),
        (None, None) => Position::First,
    };
    Ok(ListQuery { limit, depth, order, filter, include_soft_deleted, position })
}

fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

/// `limit`: a non-negative integer, at most [`MAX_LIMIT`].
pub fn parse_limit(text: Option<&str>) -> Result<usize, QueryError> {
    let Some(text) = present(text) else { return Ok(DEFAULT_LIMIT) };
    let digits = text.trim();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryError::new(
            Parameter::Limit,
            format!("limit '{text}' is invalid. Should be an integer"),
        ));
    }
    // All digits: a number too large for usize is still just "more than the most".
    Ok(digits.parse::<usize>().map_or(MAX_LIMIT, |limit| limit.min(MAX_LIMIT)))
}

/// `depth`: 0 (the default) or 1.
pub fn parse_depth(text: Option<&str>) -> Result<Depth, QueryError> {
    let Some(text) = present(text) else { return Ok(Depth::Zero) };
    match text.trim().parse::<f64>() {
        Ok(0.0) => Ok(Depth::Zero),
        Ok(1.0) => Ok(Depth::One),
        _ => Err(QueryError::new(
            Parameter::Depth,
            format!("'depth={text}' parameter invalid. Allowed values are 0, 1"),
        )),
    }
}

/// The id of `GET /rest/{plural}/{id}`: a UUID, in Twenty's message when it is not.
pub fn parse_record_id(text: &str) -> Result<&str, QueryError> {
    let groups: Vec<&str> = text.split('-').collect();
    let shape = [8, 4, 4, 4, 12];
    let is_uuid = groups.len() == shape.len()
        && groups
            .iter()
            .zip(shape)
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if is_uuid {
        Ok(text)
    } else {
        Err(QueryError::new(Parameter::Id, format!("'{text}' is not a valid UUID")))
    }
}
