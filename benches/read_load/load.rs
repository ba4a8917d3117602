//! Closed-loop load: a number of clients, each sending its next request as soon as the previous
//! one is answered, for a fixed time; latencies of every answer after a warm-up.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one measured run gives: the answers that were right, and how many were not.
pub struct Measured {
    /// Answers that were errors (a 503 when the pool's wait ran out, say), with the first one.
    pub errors: usize,
    pub first_error: Option<String>,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Runs `request` from `clients` tasks for `warm_up` and then `measured`; `request` answers
/// whether the answer was right. Wrong answers are counted, not timed.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    warm_up: Duration,
    measured: Duration,
    request: F,
) -> Measured
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let (from, until) = (started + warm_up, started + warm_up + measured);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), Vec::new());
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        return (latencies, errors);
                    }
                    let answer = request().await;
                    if sent < from {
                        continue;
                    }
                    match answer {
                        Ok(()) => latencies.push(sent.elapsed()),
                        Err(why) => errors.push(why),
                    }
                }
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), Vec::new());
    for task in tasks {
        let (own, failed) = task.await.expect("a client task");
        latencies.extend(own);
        errors.extend(failed);
    }
    latencies.sort_unstable();
    let at = |share: f64| {
        latencies.get(((latencies.len() as f64 * share) as usize).min(latencies.len().saturating_sub(1)))
    };
    Measured {
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        per_second: latencies.len() as f64 / measured.as_secs_f64(),
        p50: at(0.50).copied().unwrap_or_default(),
        p99: at(0.99).copied().unwrap_or_default(),
    }
}
