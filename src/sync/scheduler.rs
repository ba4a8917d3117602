//! When the server reconciles: a delta pass every `RECONCILE_INTERVAL`, a full pass every
//! `FULL_SWEEP_INTERVAL`, both with jitter, and at once at boot when one is overdue (after a stop,
//! or on a platform that stops idle machines).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::reconciler::{ReconcileError, Reconciler, RunRequest};
use crate::mirror::Store;
use crate::mirror::{Mode, Trigger};

/// The cadences; `None` is `off`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub delta_every: Option<Duration>,
    pub full_every: Option<Duration>,
}

/// Spreads runs of several instances and restarts: a due time moves later by up to a tenth of
/// its interval, never earlier.
const JITTER: f64 = 0.1;

/// After the schedule itself failed (the database was down), try again this much later.
const RETRY_PLANNING: Duration = Duration::from_secs(30);

/// Runs until `shutdown`. A run in progress at shutdown stops between pages.
pub async fn run(reconciler: Reconciler, store: Store, schedule: Schedule, shutdown: CancellationToken) {
    if schedule.delta_every.is_none() && schedule.full_every.is_none() {
        tracing::info!("RECONCILE_INTERVAL and FULL_SWEEP_INTERVAL are off: no scheduled reconciles");
        return;
    }
    let mut attempts = Attempts::default();
    let mut at_boot = true;
    loop {
        let plan = match plan(&store, &schedule, &attempts, Utc::now()).await {
            Ok(plan) => plan,
            Err(error) => {
                tracing::warn!(%error, "could not plan the next reconcile; trying again soon");
                if sleep_or_stop(RETRY_PLANNING, &shutdown).await {
                    return;
                }
                continue;
            }
        };
        let wait = (plan.at - Utc::now()).to_std().unwrap_or_default();
        let trigger = if at_boot && wait.is_zero() { Trigger::Startup } else { Trigger::Schedule };
        at_boot = false;
        tracing::debug!(mode = plan.mode.as_str(), in_seconds = wait.as_secs(), "next reconcile planned");
        if sleep_or_stop(wait, &shutdown).await {
            return;
        }
        attempts.record(plan.mode, Utc::now());
        match reconciler.reconcile_once(RunRequest::new(trigger, plan.mode)).await {
            Ok(_) => {}
            Err(ReconcileError::AlreadyRunning(id)) => {
                tracing::info!(run_id = id, "skipped a scheduled reconcile: another one is running");
            }
            Err(error) => tracing::error!(%error, "a scheduled reconcile could not start"),
        }
    }
}

/// When each mode was last attempted by this process, so that a failing run waits for its next
/// turn instead of retrying in a loop.
#[derive(Default)]
struct Attempts {
    delta: Option<DateTime<Utc>>,
    full: Option<DateTime<Utc>>,
}

impl Attempts {
    fn record(&mut self, mode: Mode, at: DateTime<Utc>) {
        match mode {
            Mode::Delta => self.delta = Some(at),
            Mode::Full => {
                // A full pass does a delta's work too.
                self.full = Some(at);
                self.delta = Some(at);
            }
        }
    }
}

#[derive(Debug, PartialEq)]
struct Plan {
    mode: Mode,
    at: DateTime<Utc>,
}

/// The next run: whichever mode is due first, from the state the database holds (so a restart
/// knows what is overdue) and this process's own attempts.
async fn plan(
    store: &Store,
    schedule: &Schedule,
    attempts: &Attempts,
    now: DateTime<Utc>,
) -> Result<Plan, crate::mirror::StoreError> {
    let mirrored: Vec<String> =
        store.objects().await?.into_iter().filter(|o| o.mirrored).map(|o| o.name_singular).collect();
    let states = store.sync_states().await?;
    let oldest = |pick: fn(&crate::mirror::SyncState) -> Option<DateTime<Utc>>| -> Option<DateTime<Utc>> {
        if mirrored.is_empty() {
            return None;
        }
        mirrored
            .iter()
            .map(|name| states.iter().find(|s| &s.object == name).and_then(pick))
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().min())
    };
    let due =
        |every: Option<Duration>, last_done: Option<DateTime<Utc>>, last_attempt: Option<DateTime<Utc>>| {
            let every = every?;
            let interval = chrono::Duration::from_std(every).ok()?;
            let from = last_done.max(last_attempt);
            Some(from.map_or(now, |from| from + interval + jitter(interval)))
        };
    let full = due(schedule.full_every, oldest(|s| s.last_full_at), attempts.full);
    let delta = due(schedule.delta_every, oldest(|s| s.last_delta_at), attempts.delta);
    Ok(match (full, delta) {
        (Some(full), Some(delta)) if full <= delta => Plan { mode: Mode::Full, at: full },
        (_, Some(delta)) => Plan { mode: Mode::Delta, at: delta },
        (Some(full), None) => Plan { mode: Mode::Full, at: full },
        (None, None) => Plan { mode: Mode::Delta, at: DateTime::<Utc>::MAX_UTC },
    })
}

/// Up to `JITTER` of `interval`, from the clock's nanoseconds: spread, not secrecy, is the point.
fn jitter(interval: chrono::Duration) -> chrono::Duration {
    let fraction = f64::from(Utc::now().timestamp_subsec_nanos()) / 1e9 * JITTER;
    chrono::Duration::milliseconds((interval.num_milliseconds() as f64 * fraction) as i64)
}

/// Sleeps; answers true if shutdown came first.
async fn sleep_or_stop(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = shutdown.cancelled() => true,
    }
}
