//! `POST /webhooks/twenty`: verify the raw bytes, parse, apply through the group-commit writer, and
//! answer 2xx only once the change is committed.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::Utc;
use serde_json::json;

use super::AppState;
use crate::mirror::writer::WriteError;
use crate::mirror::{Delivery, Disposition, EventOutcome};
use crate::twenty::signature::{self, Refusal, SignatureHeaders};
use crate::twenty::webhook::parse_delivery;

/// How long a delivery waits for its commit before the answer is 503. Twenty abandons a delivery
/// after 5 s and never retries, so answering inside that lets its log show why.
pub const COMMIT_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error("malformed delivery: {0}")]
    Malformed(String),
    #[error("the database is unavailable; the delivery was not stored")]
    Unavailable,
    #[error("the delivery could not be stored")]
    Internal,
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::Refused(_) => StatusCode::UNAUTHORIZED,
            WebhookError::Malformed(_) => StatusCode::BAD_REQUEST,
            WebhookError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            WebhookError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(json!({ "error": self.to_string() }))
    }
}

pub async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let headers = SignatureHeaders {
        timestamp: header(&request, signature::TIMESTAMP_HEADER),
        signature: header(&request, signature::SIGNATURE_HEADER),
    };
    if let Err(refusal) = signature::verify(&state.signature_policy, headers, &body, state.clock.now()) {
        tracing::warn!(reason = refusal.reason(), "refused a webhook delivery");
        state.metrics.refused(refusal.reason());
        return Err(WebhookError::Refused(refusal));
    }

    let received = Instant::now();
    let delivery = parse_delivery(&body, Utc::now());
    let malformed = match &delivery.disposition {
        Disposition::Fail(why) => Some(why.clone()),
        _ => None,
    };
    let event_name = delivery.event_name.clone().unwrap_or_default();
    let (object, action) = metric_labels(&delivery);
    let outcome = match tokio::time::timeout(COMMIT_DEADLINE, state.writer.submit(delivery)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(WriteError::Store(error))) if !error.is_unavailable() => {
            tracing::error!(error = ?error, event = %event_name, "storing a delivery failed");
            return Err(WebhookError::Internal);
        }
        Ok(Err(error)) => {
            tracing::error!(error = ?error, event = %event_name, "the database is unavailable");
            return Err(WebhookError::Unavailable);
        }
        Err(_) => {
            tracing::error!(event = %event_name, deadline_ms = COMMIT_DEADLINE.as_millis() as u64, "no commit before the deadline");
            return Err(WebhookError::Unavailable);
        }
    };
    state.metrics.apply_latency(received.elapsed());
    state.metrics.delivery(&object, &action, outcome.as_str());
    if let Some(why) = malformed {
        tracing::warn!(event = %event_name, reason = %why, "kept a malformed delivery as failed");
        return Err(WebhookError::Malformed(why));
    }
    tracing::debug!(event = %event_name, outcome = outcome.as_str(), "delivery committed");
    Ok(HttpResponse::Ok().json(Acknowledgement { outcome }))
}

#[derive(serde::Serialize)]
struct Acknowledgement {
    outcome: EventOutcome,
}

/// The object and the event's action, as metric labels: `metadata` for schema events, `-` where
/// the delivery did not say.
fn metric_labels(delivery: &Delivery) -> (String, String) {
    let name = delivery.event_name.as_deref().unwrap_or("-");
    if name.starts_with("metadata.") {
        return ("-".to_owned(), "metadata".to_owned());
    }
    match name.split_once('.') {
        Some((object, action)) => (object.to_owned(), action.to_owned()),
        None => ("-".to_owned(), name.to_owned()),
    }
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|value| value.to_str().ok())
}
