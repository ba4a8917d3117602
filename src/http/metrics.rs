//! `GET /metrics`: Prometheus text. In-memory counters, plus what the database holds, read now.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::Utc;

use super::AppState;
use crate::metrics::{CONTENT_TYPE, Snapshot};

/// A scrape that waits longer than this for the database reports it down rather than hanging.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let store = &state.store;
    let read = async {
        Ok::<_, crate::mirror::StoreError>((store.object_counts().await?, store.sync_states().await?))
    };
    let mut snapshot = Snapshot {
        client: state.reconciler.as_ref().map(|r| r.client().stats()),
        now: Some(Utc::now()),
        ..Snapshot::default()
    };
    match tokio::time::timeout(DATABASE_TIMEOUT, read).await {
        Ok(Ok((rows, states))) => {
            snapshot.database_up = true;
            snapshot.rows = rows;
            snapshot.states = states;
        }
        Ok(Err(error)) => tracing::warn!(%error, "metrics: the database did not answer"),
        Err(_) => tracing::warn!("metrics: the database did not answer in time"),
    }
    match state.metrics.render(snapshot) {
        Ok(text) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        // Writing into a string fails only if a metric cannot be encoded: a bug, said in the log.
        Err(error) => {
            tracing::error!(%error, "metrics: encoding the exposition failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}
