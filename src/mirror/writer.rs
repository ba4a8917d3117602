//! Group commit: concurrent deliveries share database transactions instead of paying one commit
//! each, and every delivery is answered only once the commit that holds it has happened.
//!
//! Deliveries queue on a channel. A dispatcher takes whatever has queued (up to [`MAX_BATCH`]) as
//! soon as a commit slot is free, so batches are as small as one delivery when the service is idle
//! and grow with load, without a timer adding latency.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Delivery, EventOutcome, Store, StoreError};

/// The most deliveries one transaction holds. Past a few hundred rows a batch gains little (the
/// commit is already shared) and only makes each delivery wait longer for the others.
const MAX_BATCH: usize = 256;

/// Deliveries waiting for a commit slot. A full queue makes new deliveries wait for room, which
/// bounds memory under a flood; their own deadline turns that wait into a 503.
const QUEUE_CAPACITY: usize = 4096;

type Reply = oneshot::Sender<Result<EventOutcome, Arc<StoreError>>>;

struct Job {
    delivery: Delivery,
    reply: Reply,
}

/// The handle request handlers use. Cloning shares the queue; the writer stops once every handle
/// is dropped and the queue is drained.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the writer has stopped")]
    Stopped,
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl Writer {
    /// Starts the dispatcher. `slots` is how many transactions may be in flight at once
    /// ([`Store::commit_slots`] suits the backend): 1 for SQLite, whose writes are serial anyway; a
    /// few for PostgreSQL, so one batch commits while the next is built.
    /// Cancelling `stop` ends the dispatcher once the commits in flight are done; the service
    /// cancels it only after the HTTP server has answered every request.
    pub fn start(
        store: Store,
        slots: usize,
        stop: CancellationToken,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let handle = tokio::spawn(dispatch(store, receiver, slots, stop));
        (Writer { queue }, handle)
    }

    /// Queues a delivery and waits until it is committed (or its transaction failed).
    pub async fn submit(&self, delivery: Delivery) -> Result<EventOutcome, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job { delivery, reply }).await.map_err(|_| WriteError::Stopped)?;
        match answer.await {
            Ok(result) => result.map_err(WriteError::Store),
            Err(_) => Err(WriteError::Stopped),
        }
    }
}

async fn dispatch(store: Store, mut receiver: mpsc::Receiver<Job>, slots: usize, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(slots));
    let mut commits = JoinSet::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = stop.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let first = tokio::select! {
            job = receiver.recv() => job,
            _ = stop.cancelled() => break,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let store = store.clone();
        commits.spawn(async move {
            commit(&store, batch).await;
            drop(slot);
        });
        // Reap finished commits so the set does not grow without bound.
        while commits.try_join_next().is_some() {}
    }
    while commits.join_next().await.is_some() {}
}

/// Commits a batch and answers every delivery in it. A delivery whose caller has already given up
/// (its deadline passed) is dropped unwritten: the caller answered 503, so it must not be applied
/// behind its back. When a batch fails for a reason other than the database being unavailable (a
/// value one row cannot store), each delivery is retried alone, so one bad delivery cannot fail
/// the others that shared its transaction.
async fn commit(store: &Store, batch: Vec<Job>) {
    let (deliveries, replies): (Vec<Delivery>, Vec<Reply>) =
        batch.into_iter().filter(|job| !job.reply.is_closed()).map(|job| (job.delivery, job.reply)).unzip();
    if deliveries.is_empty() {
        return;
    }
    match store.record_deliveries(&deliveries).await {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) if deliveries.len() > 1 && !error.is_unavailable() => {
            tracing::warn!(error = %error, size = deliveries.len(), "a batch failed; committing its deliveries one by one");
            for (delivery, reply) in deliveries.iter().zip(replies) {
                let result = store.record_deliveries(std::slice::from_ref(delivery)).await;
                let _ = reply.send(match result {
                    Ok(outcomes) => outcomes
                        .into_iter()
                        .next()
                        .ok_or_else(|| Arc::new(StoreError::Corrupt("no outcome".into()))),
                    Err(error) => Err(Arc::new(error)),
                });
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
