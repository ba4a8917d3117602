//! `GET /metrics`: Prometheus text. In-memory counters, plus what the database keeps, read now.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::Utc;

use super::AppState;
use crate::metrics::{CONTENT_TYPE, Snapshot};

/// `database_up` asks the database a trivial question and waits this long for the answer: long
/// enough for a busy pool to hand out a connection, short enough to answer well inside a scrape.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// The kept counts and states are a few rows per object; a read that takes longer than this leaves
/// the row gauges out of the scrape rather than hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let store = &state.store;
    let read = async {
        Ok::<_, crate::mirror::StoreError>((store.object_counts().await?, store.sync_states().await?))
    };
    let (ping, read) = tokio::join!(
        tokio::time::timeout(PING_TIMEOUT, store.ping()),
        tokio::time::timeout(READ_TIMEOUT, read)
    );
    let mut snapshot = Snapshot {
        database_up: matches!(ping, Ok(Ok(()))),
        client: state.reconciler.as_ref().map(|r| r.client().stats()),
        now: Some(Utc::now()),
        ..Snapshot::default()
    };
    match ping {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "metrics: the database did not answer"),
        Err(_) => tracing::warn!("metrics: the database did not answer in time"),
    }
    match read {
        Ok(Ok((rows, states))) => {
            snapshot.rows = rows;
            snapshot.states = states;
        }
        Ok(Err(error)) => tracing::warn!(%error, "metrics: reading the kept counts failed"),
        Err(_) => tracing::warn!("metrics: reading the kept counts took too long"),
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
