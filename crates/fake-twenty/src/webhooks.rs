//! Webhook subscriptions: list, create, read, update and delete, as the metadata API serves them
//! (or the older `/rest/webhooks`).

use actix_web::HttpResponse;
use chrono::Utc;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::routes::{bad_request, error, page_range};
use super::state::State;
use super::values::format_ms;

pub(super) fn webhooks(
    state: &mut State,
    method: &str,
    id: Option<&str>,
    body: &[u8],
    query: &str,
) -> HttpResponse {
    let position = |state: &State, id: &str| state.webhooks.iter().position(|w| w["id"] == id);
    match (method, id) {
        ("GET", None) => {
            let list = state.webhooks.clone();
            if state.webhook_list_paged {
                let cursor_of = |w: &Value| hex::encode(w["id"].as_str().unwrap_or_default());
                let range = page_range(list.len(), state.webhook_list_page_size, query, |cursor| {
                    list.iter().position(|w| cursor_of(w) == cursor)
                });
                let range = match range {
                    Ok(range) => range,
                    Err(message) => return bad_request(message),
                };
                let page = &list[range.clone()];
                HttpResponse::Ok().json(json!({
                    "data": page,
                    "pageInfo": {
                        "hasNextPage": range.end < list.len(),
                        "hasPreviousPage": range.start > 0,
                        "startCursor": page.first().map(cursor_of),
                        "endCursor": page.last().map(cursor_of),
                    },
                    "totalCount": list.len(),
                }))
            } else {
                HttpResponse::Ok().json(list)
            }
        }
        ("POST", None) => {
            let input = match webhook_input(body, true) {
                Ok(input) => input,
                Err(message) => return error(400, "BadRequestException", message),
            };
            let now = format_ms(Utc::now().timestamp_millis());
            let id = state.next_id();
            let secret = match input.get("secret") {
                Some(Value::String(secret)) => secret.clone(),
                _ => hex::encode(&Sha256::digest(format!("secret:{id}").as_bytes())[..16]),
            };
            let subscription = json!({
                "id": id,
                "targetUrl": input["targetUrl"],
                "operations": input.get("operations").cloned().unwrap_or_else(|| json!(["*.*"])),
                "description": input.get("description").cloned().unwrap_or(Value::Null),
                "secret": secret,
                "createdAt": now,
                "updatedAt": now,
            });
            state.webhooks.push(subscription.clone());
            HttpResponse::Created().json(subscription)
        }
        ("GET", Some(id)) => match position(state, id) {
            Some(i) => HttpResponse::Ok().json(&state.webhooks[i]),
            // Twenty answers a missing subscription with 200 and an empty body.
            None => HttpResponse::Ok().finish(),
        },
        ("PATCH", Some(id)) => {
            let Some(i) = position(state, id) else { return webhook_not_found(id) };
            let input = match webhook_input(body, false) {
                Ok(input) => input,
                Err(message) => return error(400, "BadRequestException", message),
            };
            let subscription = &mut state.webhooks[i];
            for (key, value) in input {
                subscription[key.as_str()] = value;
            }
            subscription["updatedAt"] = json!(format_ms(Utc::now().timestamp_millis()));
            HttpResponse::Ok().json(&*subscription)
        }
        ("DELETE", Some(id)) => match position(state, id) {
            Some(i) => HttpResponse::Ok().json(state.webhooks.remove(i)),
            None => webhook_not_found(id),
        },
        _ => error(404, "NotFoundException", format!("Cannot {method} webhooks")),
    }
}

fn webhook_not_found(id: &str) -> HttpResponse {
    error(404, "NotFoundException", format!("Webhook with id {id} not found"))
}

/// The accepted keys of a subscription body, checked.
fn webhook_input(body: &[u8], creating: bool) -> Result<Map<String, Value>, String> {
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(body) else {
        return Err("the body must be a JSON object".into());
    };
    let mut accepted = Map::new();
    for (key, value) in input {
        let valid = match key.as_str() {
            "targetUrl" => value.as_str().is_some_and(|url| url.starts_with("http")),
            "operations" => value.as_array().is_some_and(|ops| ops.iter().all(Value::is_string)),
            "description" => value.is_string() || value.is_null(),
            "secret" => value.is_string(),
            _ => continue,
        };
        if !valid {
            return Err(format!("invalid {key}"));
        }
        accepted.insert(key, value);
    }
    if creating && !accepted.contains_key("targetUrl") {
        return Err("targetUrl is required".into());
    }
    Ok(accepted)
}
