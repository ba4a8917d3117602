//! `POST /webhooks/twenty`: verify the raw bytes, parse, apply through the group-commit writer, and
//! answer 2xx only once the change is committed.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::Span;
use tracing::field::{Empty, display};
use tracing_actix_web::RequestId;

use super::AppState;
use super::refusals::MALFORMED;
use crate::mirror::writer::WriteError;
use crate::mirror::{Delivery, Disposition, EventOutcome};
use crate::twenty::signature::{self, Refusal, SignatureHeaders};
use crate::twenty::webhook::{EventKind, WebhookEvent, named_object, parse_event};

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

/// The delivery's names are fields of the handler's span, so every line it logs carries them. The
/// JSON log shows only the innermost span's fields, so the span repeats the request's id.
#[tracing::instrument(name = "webhook", skip_all, fields(request_id = Empty, event = Empty, object = Empty, record_id = Empty))]
pub async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    if let Some(request_id) = request.extensions().get::<RequestId>() {
        Span::current().record("request_id", display(request_id));
    }
    let headers = SignatureHeaders {
        timestamp: header(&request, signature::TIMESTAMP_HEADER),
        signature: header(&request, signature::SIGNATURE_HEADER),
    };
    if let Err(refusal) = signature::verify(&state.signature_policy, headers, &body, state.clock.now()) {
        tracing::warn!(reason = refusal.reason(), "refused a webhook delivery");
        state.metrics.refused(refusal.reason());
        // The body is not verified: its object name is only counted (see `refusals.rs`).
        state.refusals.note(named_object(&body), refusal.reason());
        return Err(WebhookError::Refused(refusal));
    }

    let received = Instant::now();
    let received_at = Utc::now();
    let event = parse_event(&body, received_at);
    let span = Span::current();
    span.record("event", event.event_name.as_deref());
    span.record("object", event.object.as_deref());
    span.record("record_id", event.record_id.as_deref());
    let schema_change = event.kind == EventKind::Schema;
    let delivery = delivery_of(event, &body, received_at);
    let malformed = match &delivery.disposition {
        Disposition::Fail(why) => Some(why.clone()),
        _ => None,
    };
    let (object, action) = metric_labels(&delivery);
    let outcome = match tokio::time::timeout(COMMIT_DEADLINE, state.writer.submit(delivery)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(WriteError::Store(error))) if !error.is_unavailable() => {
            tracing::error!(error = ?error, "storing a delivery failed");
            return Err(WebhookError::Internal);
        }
        Ok(Err(error)) => {
            tracing::error!(error = ?error, "the database is unavailable");
            return Err(WebhookError::Unavailable);
        }
        Err(_) => {
            tracing::error!(
                deadline_ms = COMMIT_DEADLINE.as_millis() as u64,
                "no commit before the deadline"
            );
            return Err(WebhookError::Unavailable);
        }
    };
    state.metrics.apply_latency(received.elapsed());
    state.metrics.delivery(&object, &action, outcome.as_str());
    if let Some(why) = malformed {
        tracing::warn!(reason = %why, "kept a malformed delivery as failed");
        state.refusals.note(named_object(&body), MALFORMED);
        return Err(WebhookError::Malformed(why));
    }
    if schema_change {
        follow_schema_change(&state);
    }
    tracing::debug!(outcome = outcome.as_str(), "delivery committed");
    Ok(HttpResponse::Ok().json(Acknowledgement { outcome }))
}

/// A `metadata.*` event: Twenty's schema changed. The typed views follow it through a
/// rediscovery when the reconciler is configured; without one there is no discovery at all.
fn follow_schema_change(state: &AppState) {
    match &state.rediscovery {
        Some(rediscovery) => {
            tracing::info!("Twenty's schema changed: rediscovering its objects");
            rediscovery.request();
        }
        None => tracing::info!(
            "Twenty's schema changed; the views cannot follow without the reconciler (TWENTY_API_KEY)"
        ),
    }
}

/// Parses a verified delivery into what the event log records: Twenty's event, what the store does
/// with it, and the body as text.
pub fn parse_delivery(body: &[u8], received_at: DateTime<Utc>) -> Delivery {
    delivery_of(parse_event(body, received_at), body, received_at)
}

fn delivery_of(event: WebhookEvent, body: &[u8], received_at: DateTime<Utc>) -> Delivery {
    Delivery {
        received_at,
        event_name: event.event_name,
        object: event.object,
        record_id: event.record_id,
        record_updated_at: event.record_updated_at,
        body: body_text(body),
        disposition: match event.kind {
            EventKind::Record(change) => Disposition::Apply(change),
            EventKind::Schema | EventKind::UnknownAction => Disposition::Ignore,
            EventKind::Malformed(why) => Disposition::Fail(why),
        },
    }
}

/// The body as the event log keeps it: text, with bytes that are not UTF-8 (or NUL, which
/// PostgreSQL text cannot hold) replaced. Such a body is always logged as failed.
fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text.into_owned() }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        crate::change::parse_timestamp("2026-09-21T12:00:00.000Z").unwrap()
    }

    #[test]
    fn the_logged_body_is_text_even_when_the_bytes_are_not() {
        let delivery = parse_delivery(b"\xff\x00{", now());
        assert_eq!(delivery.body, "\u{FFFD}\u{FFFD}{");
        assert!(matches!(delivery.disposition, Disposition::Fail(_)));
    }

    #[test]
    fn schema_events_and_unknown_actions_are_ignored_and_malformed_deliveries_fail() {
        let schema = parse_delivery(br#"{"eventName":"metadata.fieldMetadata.created"}"#, now());
        assert!(matches!(schema.disposition, Disposition::Ignore));
        let unknown = parse_delivery(br#"{"eventName":"person.merged"}"#, now());
        assert!(matches!(unknown.disposition, Disposition::Ignore));
        let nul = parse_delivery(br#"{"eventName":"metadata.\u0000"}"#, now());
        assert!(matches!(nul.disposition, Disposition::Fail(_)));
        assert!(!nul.body.contains('\0') && !nul.event_name.unwrap_or_default().contains('\0'));
    }

    #[test]
    fn a_record_event_is_applied_with_its_names() {
        let body =
            br#"{"eventName":"person.updated","record":{"id":"a","updatedAt":"2026-09-21T10:00:00.000Z"}}"#;
        let delivery = parse_delivery(body, now());
        assert_eq!(delivery.received_at, now());
        assert_eq!((delivery.object.as_deref(), delivery.record_id.as_deref()), (Some("person"), Some("a")));
        let Disposition::Apply(change) = &delivery.disposition else { panic!("{delivery:?}") };
        assert_eq!(delivery.record_updated_at, Some(change.updated_at));
        assert_eq!(delivery.body.as_bytes(), body);
    }
}
