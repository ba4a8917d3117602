//! `/admin/*`: trigger a reconcile, see runs and status. Bearer `ADMIN_TOKEN`, compared in
//! constant time (`tokens.rs`); without the setting the routes are closed (403) and say why.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::tokens::Presented;
use crate::mirror::StoreError;
use crate::mirror::{Mode, Trigger};
use crate::sync::reconciler::{ReconcileError, RunRequest, Started};
use crate::sync::status::status;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin routes are disabled: set ADMIN_TOKEN to enable them")]
    Disabled,
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("no run {0}")]
    NotFound(i64),
    #[error("the reconciler is off: set TWENTY_API_URL and TWENTY_API_KEY")]
    ReconcilerOff,
    #[error("the database is unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::Disabled => StatusCode::FORBIDDEN,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::ReconcilerOff | AdminError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, AdminError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(json!({ "error": self.to_string() }))
    }
}

impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> Self {
        tracing::error!(error = ?error, "an admin request failed in the store");
        if error.is_unavailable() { AdminError::Unavailable } else { AdminError::Internal }
    }
}

fn authorize(request: &HttpRequest, state: &AppState) -> Result<(), AdminError> {
    let tokens = state.admin_token.as_ref().ok_or(AdminError::Disabled)?;
    match tokens.check(request) {
        Presented::Accepted => Ok(()),
        Presented::Missing => Err(AdminError::Unauthorized),
        Presented::Wrong => {
            tracing::warn!("refused an admin request with a wrong token");
            Err(AdminError::Unauthorized)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileBody {
    #[serde(default)]
    objects: Vec<String>,
    mode: Option<Mode>,
    #[serde(default)]
    force: bool,
}

/// `POST /admin/reconcile`: 202 with the id of the new run, or of the run already going on.
pub async fn reconcile(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    authorize(&request, &state)?;
    let body: ReconcileBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReconcileBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AdminError::BadRequest(format!("invalid body: {e}")))?
    };
    let reconciler = state.reconciler.as_ref().ok_or(AdminError::ReconcilerOff)?;
    let run = RunRequest {
        objects: body.objects,
        force: body.force,
        ..RunRequest::new(Trigger::Operator, body.mode.unwrap_or(Mode::Delta))
    };
    match reconciler.start(run, &state.tasks).await {
        Ok(Started::Began(id)) => Ok(HttpResponse::Accepted().json(json!({ "id": id, "started": true }))),
        Ok(Started::AlreadyRunning(id)) => {
            Ok(HttpResponse::Accepted().json(json!({ "id": id, "started": false })))
        }
        Err(ReconcileError::UnknownObject(name)) => {
            Err(AdminError::BadRequest(format!("unknown object {name:?}")))
        }
        Err(ReconcileError::Store(error)) => Err(error.into()),
        Err(error) => {
            tracing::error!(%error, "could not start a run");
            Err(AdminError::Internal)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RunsQuery {
    limit: Option<i64>,
}

/// `GET /admin/runs`: the newest runs first (50 unless `?limit=`, at most 1000).
pub async fn runs(
    request: HttpRequest,
    query: web::Query<RunsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    authorize(&request, &state)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1_000);
    Ok(HttpResponse::Ok().json(state.store.runs(limit).await?))
}

/// `GET /admin/runs/{id}`.
pub async fn run(
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    authorize(&request, &state)?;
    let id = id.into_inner();
    let run = state.store.run(id).await?.ok_or(AdminError::NotFound(id))?;
    Ok(HttpResponse::Ok().json(run))
}

/// `GET /admin/status`: the same facts as `twenty-mirror status`.
pub async fn status_report(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    authorize(&request, &state)?;
    Ok(HttpResponse::Ok().json(status(&state.store, Utc::now()).await?))
}
