//! The HTTP side: authentication, the rate limits and faults, dispatch to the handlers, the error
//! shape, and one record.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::limits::fault_response;
use super::metadata::objects;
use super::records::list;
use super::state::{Shared, State, lock};
use super::webhooks::webhooks;
use super::{FakeTwenty, Fault, LoggedRequest};

pub(super) async fn dispatch(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let at = Instant::now();
    let mut response = route(&req, &body, &shared).await;
    lock(&shared).usage.add_headers(&mut response);
    lock(&shared).requests.push(LoggedRequest {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        status: response.status().as_u16(),
        at,
    });
    response
}

enum Route {
    Objects,
    Webhooks(Option<String>),
    List(String),
    Get(String, String),
    NotFound,
}

async fn route(req: &HttpRequest, body: &[u8], shared: &Shared) -> HttpResponse {
    let expected = format!("Bearer {}", FakeTwenty::API_KEY);
    let authorized =
        req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    if !authorized {
        return unauthorized();
    }
    let segments: Vec<&str> = match req.path().strip_prefix("/rest/") {
        Some(rest) => rest.split('/').filter(|s| !s.is_empty()).collect(),
        None => Vec::new(),
    };
    let (route, fault) = {
        let mut state = lock(shared);
        if let Some(refusal) = state.throttle() {
            return refusal;
        }
        let webhooks_base: &[&str] =
            if state.legacy_webhooks_path { &["webhooks"] } else { &["metadata", "webhooks"] };
        let route = match segments.as_slice() {
            ["metadata", "objects"] => Route::Objects,
            _ if segments.starts_with(webhooks_base) && segments.len() <= webhooks_base.len() + 1 => {
                Route::Webhooks(segments.get(webhooks_base.len()).map(|id| (*id).to_owned()))
            }
            // Twenty's own routes are no objects: the path that this server does not serve is a 404.
            ["metadata", ..] | ["webhooks", ..] => Route::NotFound,
            [plural] => Route::List((*plural).to_owned()),
            [plural, id] => Route::Get((*plural).to_owned(), (*id).to_owned()),
            _ => Route::NotFound,
        };
        let reads_records = matches!(route, Route::List(_) | Route::Get(..)) && req.method() == "GET";
        let fault = if reads_records {
            state.take_fault()
        } else if matches!(route, Route::Webhooks(_)) {
            state.take_webhook_fault()
        } else {
            None
        };
        (route, fault)
    };
    match fault {
        Some(Fault::Delay(delay)) => actix_web::rt::time::sleep(delay).await,
        Some(Fault::Quoting(status)) => return quoting(status, req, body),
        Some(fault) => return fault_response(&fault),
        None => {}
    }
    let method = req.method().as_str();
    match route {
        Route::Objects if method == "GET" => objects(&lock(shared), req.query_string()),
        Route::Webhooks(id) => webhooks(&mut lock(shared), method, id.as_deref(), body, req.query_string()),
        Route::List(plural) if method == "GET" => list(shared, &plural, req.query_string()),
        Route::Get(plural, id) if method == "GET" => get_one(&lock(shared), &plural, &id),
        Route::List(_) | Route::Get(..) => {
            error(501, "NotImplemented", format!("the fake Twenty server does not implement {method} here"))
        }
        Route::Objects | Route::NotFound => {
            error(404, "NotFoundException", format!("Cannot {method} {}", req.path()))
        }
    }
}

pub(super) fn error(status: u16, name: &str, message: impl Into<String>) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code).json(json!({"statusCode": status, "error": name, "messages": [message.into()]}))
}

pub(super) fn unauthorized() -> HttpResponse {
    error(401, "Unauthorized", "Token invalid.")
}

fn get_one(state: &State, plural: &str, id: &str) -> HttpResponse {
    let Some(meta) = state.object_by_plural(plural) else { return object_not_found(state, plural) };
    let table = &state.tables[&meta.singular];
    match table.lagging_row(id, state.replica_lag) {
        Some(row) if !row.is_soft_deleted() => {
            HttpResponse::Ok().json(json!({"data": {meta.singular.as_str(): row.value}}))
        }
        _ => error(404, "NotFoundException", format!("Record {id} not found")),
    }
}

/// Twenty's 400 for a path that names no object, with its hint when the name is an object's
/// singular.
pub(super) fn object_not_found(state: &State, plural: &str) -> HttpResponse {
    let hint = state.objects.iter().find(|o| o.singular == plural && o.is_active);
    match hint {
        Some(meta) => bad_request(format!("object '{plural}' not found. Did you mean '{}'?", meta.plural)),
        None => bad_request(format!("object '{plural}' not found.")),
    }
}

/// The answer of [`Fault::Quoting`].
fn quoting(status: u16, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let authorization = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let message = format!("cannot accept {authorization} with {} for now", String::from_utf8_lossy(body));
    error(status, "HttpException", message)
}

/// The slice of a list of `len` items that a page of at most `size` after `starting_after` holds;
/// `position` finds the item a cursor names. `Err` is the 400 message of an unknown cursor.
pub(super) fn page_range(
    len: usize,
    size: Option<usize>,
    query: &str,
    position: impl Fn(&str) -> Option<usize>,
) -> Result<std::ops::Range<usize>, String> {
    let Some(size) = size else { return Ok(0..len) };
    let params = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| format!("invalid query string: {e}"))?
        .into_inner();
    let start = match params.iter().rev().find(|(k, _)| k == "starting_after") {
        Some((_, cursor)) => position(cursor).ok_or_else(|| format!("invalid cursor {cursor:?}"))? + 1,
        None => 0,
    };
    Ok(start..(start + size).min(len))
}

pub(super) fn bad_request(message: impl Into<String>) -> HttpResponse {
    error(400, "BadRequestException", message)
}
