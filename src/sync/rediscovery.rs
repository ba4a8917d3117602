//! Rediscovery after a `metadata.*` webhook: Twenty's schema changed (a field or an object created,
//! updated or deleted), so the stored field definitions and the typed views follow it at once
//! rather than at the next reconcile.
//!
//! A rediscovery reads the metadata API only (one request, or a page per hundred objects or so)
//! and stores what it finds, the views following in the same transaction. It is not a reconcile
//! nor a delta pass: a schema change changes no record, and a pass would cost a request per
//! object of the workspace's 100 a minute. Records written before a field existed have no value for
//! it (its column is NULL) until a pass reads them again; a new object's records arrive with the
//! next scheduled run, which reads an object without a watermark in full.
//!
//! Twenty sends one event per field or object changed, so a change made in its settings (an
//! object created with its standard fields, an import) comes as a burst: requests that arrive
//! within [`DEBOUNCE`] of the first make one rediscovery, and a request that arrives while one
//! is going on makes one more after it.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::reconciler::Reconciler;

/// How long a rediscovery waits for the rest of a burst of schema events.
pub const DEBOUNCE: Duration = Duration::from_secs(1);

/// Asks for a rediscovery; cloning shares the one task that does them.
#[derive(Debug, Clone)]
pub struct Rediscovery {
    requests: mpsc::Sender<()>,
}

impl Rediscovery {
    /// Starts the task on `tasks`; it stops with `shutdown`.
    pub fn start(reconciler: Reconciler, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        // One pending request is all there is to know: more are the same request.
        let (requests, pending) = mpsc::channel(1);
        tasks.spawn(run(reconciler, pending, shutdown));
        Rediscovery { requests }
    }

    /// Asks for a rediscovery soon; a request while one is pending joins it.
    pub fn request(&self) {
        // Full: one is pending already. Closed: the service is stopping.
        let _ = self.requests.try_send(());
    }
}

async fn run(reconciler: Reconciler, mut pending: mpsc::Receiver<()>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            request = pending.recv() => if request.is_none() { return },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DEBOUNCE) => {}
        }
        // The requests of the burst are answered by this rediscovery.
        while pending.try_recv().is_ok() {}
        match reconciler.discover().await {
            Ok(objects) => tracing::info!(
                objects = objects.len(),
                mirrored = objects.iter().filter(|o| o.mirrored).count(),
                "rediscovered Twenty's objects after a schema change"
            ),
            Err(error) => tracing::warn!(
                %error,
                "could not rediscover Twenty's objects after a schema change; the next reconcile will"
            ),
        }
    }
}
