//! The read API, `GET /rest/{plural}` and `GET /rest/{plural}/{id}`: Twenty's REST dialect answered
//! from the mirror (design section 8). Parameters are parsed by `crate::query` against the object's
//! schema (`catalog.rs`), the store reads the page, and `body.rs` writes Twenty's envelope, with the
//! object's freshness in headers.

mod body;
mod catalog;
mod error;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use super::AppState;
use super::tokens::{BearerTokens, Presented};
use crate::query::{Depth, ListParams, parse_depth, parse_list, parse_record_id};
use body::{Nesting, with_freshness};
use catalog::CatalogCache;
pub use error::ReadError;

/// The read API's share of the application state.
pub struct ReadApi {
    /// `READ_API_TOKENS`; `None` when unset, and the API answers 403.
    tokens: Option<BearerTokens>,
    catalog: CatalogCache,
}

impl ReadApi {
    pub fn new(tokens: Option<BearerTokens>) -> Self {
        ReadApi { tokens, catalog: CatalogCache::default() }
    }

    fn authorize(&self, request: &HttpRequest) -> Result<(), ReadError> {
        let tokens = self.tokens.as_ref().ok_or(ReadError::Disabled)?;
        match tokens.check(request) {
            Presented::Accepted => Ok(()),
            Presented::Missing => Err(ReadError::MissingToken),
            Presented::Wrong => {
                tracing::warn!("refused a read API request with a wrong token");
                Err(ReadError::WrongToken)
            }
        }
    }
}

/// The decoded query string; a repeated parameter's last value wins (`ListParams`).
fn query_pairs(request: &HttpRequest) -> Result<Vec<(String, String)>, ReadError> {
    web::Query::<Vec<(String, String)>>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ReadError::BadQueryString(e.to_string()))
}

/// `GET /rest/{plural}`.
pub async fn list(
    request: HttpRequest,
    plural: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ReadError> {
    let api = &state.read_api;
    api.authorize(&request)?;
    let (catalog, object) = api.catalog.object(&state.store, &plural).await?;
    let pairs = query_pairs(&request)?;
    let params = ListParams::from_pairs(pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())));
    let query = parse_list(&params, &object.schema)?;
    let (listing, freshness) = state.store.list_records(&object.singular, &query).await?;
    let records: Vec<&str> = listing.page.records.iter().map(|record| record.data.as_str()).collect();
    let nesting = Nesting::read(&state.store, &catalog, &object, query.depth, &records).await?;
    let body = body::listing(&object.plural, &listing, &nesting)?;
    Ok(with_freshness(HttpResponse::Ok().content_type("application/json").body(body), &freshness))
}

/// `GET /rest/{plural}/{id}`.
pub async fn one(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ReadError> {
    let api = &state.read_api;
    api.authorize(&request)?;
    let (plural, id) = path.into_inner();
    let (catalog, object) = api.catalog.object(&state.store, &plural).await?;
    let id = parse_record_id(&id)?;
    let pairs = query_pairs(&request)?;
    let depth_text = pairs.iter().rev().find(|(name, _)| name == "depth").map(|(_, value)| value.as_str());
    let depth: Depth = parse_depth(depth_text)?;
    let (data, freshness) = state.store.read_record(&object.singular, id).await?;
    let Some(data) = data else {
        return Ok(with_freshness(ReadError::NotFound(id.to_owned()).error_response(), &freshness));
    };
    let nesting = Nesting::read(&state.store, &catalog, &object, depth, &[data.as_str()]).await?;
    let body = body::one(&object.singular, &data, &nesting)?;
    Ok(with_freshness(HttpResponse::Ok().content_type("application/json").body(body), &freshness))
}
