//! Refused deliveries, counted per object and reason, on their way to the store.
//!
//! Durable and shared by every instance, at a bounded cost: a refused delivery only adds to a
//! count in memory, and a background task adds the counts to `webhook_refusals` once a
//! [`FLUSH_EVERY`], in one transaction of at most [`MAX_PENDING`] small upserts. So a flood of
//! forged deliveries costs one write a second, not one a delivery, and never a row of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::mirror::{RefusedDeliveries, Store, StoreError};

/// How long a refusal waits in memory before the store has it: what a crash may lose, and how
/// late `status` may show it.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Distinct (object, reason) pairs held between writes. Past it, a refusal counts under no object:
/// bodies that each name another object cannot grow the map (the store keeps only objects it knows).
const MAX_PENDING: usize = 256;

/// The reason of a verified delivery kept as `failed` because it could not be read.
pub const MALFORMED: &str = "malformed";

type Key = (Option<String>, &'static str);

#[derive(Debug, Default)]
pub struct RefusalTally {
    pending: Mutex<HashMap<Key, i64>>,
}

impl RefusalTally {
    /// Counts one refused delivery, of `object` when the body named one.
    pub fn note(&self, object: Option<String>, reason: &'static str) {
        let mut pending = self.lock();
        let key = (object, reason);
        let key =
            if pending.len() >= MAX_PENDING && !pending.contains_key(&key) { (None, reason) } else { key };
        *pending.entry(key).or_default() += 1;
    }

    /// Adds what was counted to the store. When the store fails, the counts stay here for the
    /// next try.
    pub async fn flush(&self, store: &Store) -> Result<(), StoreError> {
        let taken: Vec<(Key, i64)> = self.lock().drain().collect();
        if taken.is_empty() {
            return Ok(());
        }
        let refused: Vec<RefusedDeliveries> = taken
            .iter()
            .map(|((object, reason), refused)| RefusedDeliveries {
                object: object.clone(),
                reason: (*reason).to_owned(),
                refused: *refused,
            })
            .collect();
        let written = store.add_refusals(&refused, Utc::now()).await;
        if written.is_err() {
            let mut pending = self.lock();
            for (key, refused) in taken {
                *pending.entry(key).or_default() += refused;
            }
        }
        written
    }

    /// A panic elsewhere while counting leaves counts that are still counts.
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, i64>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Flushes every [`FLUSH_EVERY`] until shutdown; the last flush is the caller's, once the server
/// has answered its last request.
pub async fn flush_periodically(tally: Arc<RefusalTally>, store: Store, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(error) = tally.flush(&store).await {
            tracing::warn!(%error, "counting refused deliveries failed; will try again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_object_and_reason_and_the_map_stays_bounded() {
        let tally = RefusalTally::default();
        tally.note(Some("person".into()), "bad_signature");
        tally.note(Some("person".into()), "bad_signature");
        tally.note(None, "malformed_timestamp");
        for n in 0..MAX_PENDING * 2 {
            tally.note(Some(format!("object{n}")), "bad_signature");
        }
        let pending = tally.lock();
        assert_eq!(pending.len(), MAX_PENDING + 1, "one more: the pairs of no object");
        assert_eq!(pending[&(Some("person".to_owned()), "bad_signature")], 2);
        assert_eq!(pending[&(None, "malformed_timestamp")], 1);
        let overflow = pending[&(None, "bad_signature")] as usize;
        assert_eq!(overflow, MAX_PENDING * 2 - (MAX_PENDING - 2), "what did not fit counts under no object");
    }
}
