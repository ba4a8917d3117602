//! The HTTP surface: routes, shared state and the mapping of errors to status codes.

pub mod admin;
mod console;
mod health;
mod metrics;
pub mod read;
pub mod refusals;
pub mod tokens;
pub mod webhooks;

use std::sync::Arc;

use actix_web::web;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::mirror::Store;
use crate::mirror::writer::Writer;
use crate::sync::{Reconciler, Rediscovery};
use crate::twenty::signature::SignaturePolicy;

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub writer: Writer,
    pub signature_policy: SignaturePolicy,
    pub clock: Clock,
    /// `None` when no API key is configured: the reconciler is off.
    pub reconciler: Option<Reconciler>,
    /// Follows a `metadata.*` webhook with a rediscovery; `None` with the reconciler off.
    pub rediscovery: Option<Rediscovery>,
    pub admin_token: Option<tokens::BearerTokens>,
    pub read_api: read::ReadApi,
    /// Runs started from `/admin/reconcile`; shutdown waits for them to stop between pages.
    pub tasks: TaskTracker,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `STALE_AFTER`, for the console's staleness badges.
    pub stale_after: std::time::Duration,
    /// Refused deliveries, counted here and written to the store in the background.
    pub refusals: Arc<refusals::RefusalTally>,
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/webhooks/twenty", web::post().to(webhooks::receive))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/admin/reconcile", web::post().to(admin::reconcile))
        .route("/admin/runs", web::get().to(admin::runs))
        .route("/admin/runs/{id}", web::get().to(admin::run))
        .route("/admin/status", web::get().to(admin::status_report))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/rest/{plural}", web::get().to(read::list))
        .route("/rest/{plural}/{id}", web::get().to(read::one))
        .configure(console::routes);
}
