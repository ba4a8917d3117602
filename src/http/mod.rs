//! The HTTP surface: routes, shared state and the mapping of errors to status codes.

mod health;
mod webhooks;

use actix_web::web;

use crate::clock::Clock;
use crate::mirror::Store;
use crate::mirror::writer::Writer;
use crate::twenty::signature::SignaturePolicy;

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub writer: Writer,
    pub signature_policy: SignaturePolicy,
    pub clock: Clock,
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/webhooks/twenty", web::post().to(webhooks::receive))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz));
}
