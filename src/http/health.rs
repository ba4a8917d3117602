//! Liveness and readiness, for the platform's health checks.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

/// A readiness probe that waits longer than this is itself a failure.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers and has applied every migration this build needs.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let reason = match tokio::time::timeout(READY_TIMEOUT, state.store.check_ready()).await {
        Ok(Ok(())) => return HttpResponse::Ok().json(json!({ "status": "ready" })),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "not ready");
            if error.is_unavailable() { "the database is unavailable".to_owned() } else { error.to_string() }
        }
        Err(_) => "the database did not answer in time".to_owned(),
    };
    HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable", "reason": reason }))
}
