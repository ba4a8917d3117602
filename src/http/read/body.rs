//! The answers' bodies in Twenty's envelope, the many-to-one records that `depth=1` nests, and the
//! freshness headers.

use std::collections::HashMap;

use actix_web::HttpResponse;
use actix_web::http::header::{HeaderName, HeaderValue};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::catalog::{Catalog, Object};
use super::error::ReadError;
use crate::mirror::Store;
use crate::mirror::read::{Freshness, Listing};
use crate::query::Depth;

/// When the object's last complete pass (delta or full) ended; absent before the first.
pub const LAST_COMPLETE_PASS: &str = "x-mirror-last-complete-pass";
/// When the last delivery for the object arrived; absent before the first.
pub const LAST_DELIVERY: &str = "x-mirror-last-delivery";

pub fn with_freshness(mut response: HttpResponse, freshness: &Freshness) -> HttpResponse {
    let headers = response.headers_mut();
    for (name, at) in
        [(LAST_COMPLETE_PASS, freshness.last_complete_pass), (LAST_DELIVERY, freshness.last_delivery)]
    {
        if let Some(value) = at.as_ref().map(rfc3339).and_then(|text| HeaderValue::from_str(&text).ok()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// With `depth=1`, each record's many-to-one relations: the target records (live ones, from the
/// mirror) under the relation's name, read with one statement per relation, not per record.
pub struct Nesting {
    /// Per relation: its name, its join column and the targets by id.
    relations: Vec<(String, String, HashMap<String, Value>)>,
}

impl Nesting {
    pub async fn read(
        store: &Store,
        catalog: &Catalog,
        object: &Object,
        depth: Depth,
        records: &[&str],
    ) -> Result<Nesting, ReadError> {
        let mut relations = Vec::new();
        if depth == Depth::Zero || records.is_empty() {
            return Ok(Nesting { relations });
        }
        let parsed: Vec<Value> = records.iter().map(|data| parse(data)).collect::<Result<_, _>>()?;
        for relation in object.schema.many_to_one() {
            // A target the mirror does not hold would nest as null, which Twenty never says of a
            // record it has: such a relation is left as its join column alone.
            let Some(target) = catalog.by_singular(&relation.target) else { continue };
            let mut ids: Vec<String> = parsed
                .iter()
                .filter_map(|record| record.get(&relation.join_column)?.as_str().map(str::to_owned))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let mut targets = HashMap::with_capacity(ids.len());
            for (id, data) in store.records_by_ids(&target.singular, &ids).await? {
                targets.insert(id, parse(&data)?);
            }
            relations.push((relation.name.clone(), relation.join_column.clone(), targets));
        }
        Ok(Nesting { relations })
    }

    /// The record's JSON with its relations nested; the stored text itself when there are none.
    fn apply(&self, data: &str) -> Result<String, ReadError> {
        if self.relations.is_empty() {
            return Ok(data.to_owned());
        }
        let mut record: Map<String, Value> = match parse(data)? {
            Value::Object(record) => record,
            _ => return Err(ReadError::Internal),
        };
        for (name, join_column, targets) in &self.relations {
            let target = record.get(join_column).and_then(Value::as_str).and_then(|id| targets.get(id));
            let nested = target.cloned().unwrap_or(Value::Null);
            record.insert(name.clone(), nested);
        }
        Ok(Value::Object(record).to_string())
    }
}

fn parse(data: &str) -> Result<Value, ReadError> {
    serde_json::from_str(data).map_err(|error| {
        tracing::error!(%error, "a stored record is not JSON");
        ReadError::Internal
    })
}

/// `{"data":{"<plural>":[…]},"totalCount":n,"pageInfo":{…}}`, the records written as stored.
pub fn listing(plural: &str, listing: &Listing, nesting: &Nesting) -> Result<String, ReadError> {
    let page = &listing.page;
    let mut body = String::with_capacity(256 + page.records.iter().map(|r| r.data.len() + 1).sum::<usize>());
    body.push_str("{\"data\":{");
    body.push_str(&Value::from(plural).to_string());
    body.push_str(":[");
    for (i, record) in page.records.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&nesting.apply(&record.data)?);
    }
    let page_info = json!({
        "hasNextPage": page.has_next_page,
        "hasPreviousPage": page.has_previous_page,
        "startCursor": page.start_cursor(),
        "endCursor": page.end_cursor(),
    });
    body.push_str(&format!("]}},\"totalCount\":{},\"pageInfo\":{page_info}}}", listing.total_count));
    Ok(body)
}

/// `{"data":{"<singular>":{…}}}`.
pub fn one(singular: &str, data: &str, nesting: &Nesting) -> Result<String, ReadError> {
    Ok(format!("{{\"data\":{{{}:{}}}}}", Value::from(singular), nesting.apply(data)?))
}
