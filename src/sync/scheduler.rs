//! When the server reconciles: a delta pass every `RECONCILE_INTERVAL`, a full pass every
//! `FULL_SWEEP_INTERVAL`, both with jitter, and at once at boot when one is overdue (after a stop,
//! or on a platform that stops idle machines).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::reconciler::{QuotaExhausted, ReconcileError, Reconciler, RunRequest};
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

/// After a run stopped by the workspace's quota, with no word from Twenty on when to try again:
/// the first wait, doubled after each further refusal up to `QUOTA_BACKOFF_CAP`. A quota renews
/// in minutes at best, so trying every interval would only spend requests on refusals.
const QUOTA_BACKOFF_FIRST: Duration = Duration::from_secs(60);
const QUOTA_BACKOFF_CAP: Duration = Duration::from_secs(60 * 60);

/// Runs until `shutdown`. A run in progress at shutdown stops between pages.
pub async fn run(reconciler: Reconciler, store: Store, schedule: Schedule, shutdown: CancellationToken) {
    if schedule.delta_every.is_none() && schedule.full_every.is_none() {
        tracing::info!("RECONCILE_INTERVAL and FULL_SWEEP_INTERVAL are off: no scheduled reconciles");
        return;
    }
    let mut attempts = Attempts::default();
    let mut backoff = QuotaBackoff::default();
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
        let at = backoff.until.map_or(plan.at, |until| plan.at.max(until));
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        let trigger = if at_boot && wait.is_zero() { Trigger::Startup } else { Trigger::Schedule };
        at_boot = false;
        tracing::debug!(mode = plan.mode.as_str(), in_seconds = wait.as_secs(), "next reconcile planned");
        if sleep_or_stop(wait, &shutdown).await {
            return;
        }
        attempts.record(plan.mode, Utc::now());
        match reconciler.reconcile_once(RunRequest::new(trigger, plan.mode)).await {
            Ok(outcome) => backoff.after_run(outcome.quota_exhausted, Utc::now()),
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

/// How long scheduled runs wait after runs that the workspace's quota stopped.
#[derive(Debug, Default)]
struct QuotaBackoff {
    /// Runs stopped by the quota in a row.
    refusals: u32,
    /// No scheduled run starts before this.
    until: Option<DateTime<Utc>>,
}

impl QuotaBackoff {
    /// Takes the end of a run into account: a quota refusal starts (or lengthens) a back-off,
    /// logged once for it; any other end clears it.
    fn after_run(&mut self, quota: Option<QuotaExhausted>, now: DateTime<Utc>) {
        let Some(quota) = quota else {
            if self.refusals > 0 {
                tracing::info!("the workspace's quota allows requests again: the schedule resumes");
            }
            *self = QuotaBackoff::default();
            return;
        };
        self.refusals += 1;
        let wait = quota_backoff(quota.retry_after, self.refusals);
        self.until = chrono::Duration::from_std(wait).ok().and_then(|wait| now.checked_add_signed(wait));
        tracing::warn!(
            wait_seconds = wait.as_secs(),
            refusals = self.refusals,
            said_by_twenty = quota.retry_after.is_some(),
            "the Twenty workspace's quota is exhausted: no scheduled reconcile until the wait is over"
        );
    }
}

/// The wait after the `refusals`-th run in a row that the quota stopped: what Twenty said, or
/// else `QUOTA_BACKOFF_FIRST` doubled per refusal, at most `QUOTA_BACKOFF_CAP`.
fn quota_backoff(retry_after: Option<Duration>, refusals: u32) -> Duration {
    retry_after.unwrap_or_else(|| {
        let doublings = refusals.saturating_sub(1).min(31);
        QUOTA_BACKOFF_FIRST.saturating_mul(1 << doublings).min(QUOTA_BACKOFF_CAP)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_backoff_waits_what_twenty_said_or_doubles_up_to_an_hour() {
        let minutes = |n: u64| Duration::from_secs(60 * n);
        assert_eq!(quota_backoff(None, 1), minutes(1));
        assert_eq!(quota_backoff(None, 2), minutes(2));
        assert_eq!(quota_backoff(None, 4), minutes(8));
        assert_eq!(quota_backoff(None, 7), minutes(60), "capped");
        assert_eq!(quota_backoff(None, u32::MAX), minutes(60));
        assert_eq!(quota_backoff(Some(minutes(90)), 1), minutes(90), "Twenty's word is kept");
        assert_eq!(quota_backoff(Some(Duration::from_secs(5)), 3), Duration::from_secs(5));
    }

    #[test]
    fn a_quota_refusal_holds_the_schedule_back_and_any_other_end_releases_it() {
        let now = Utc::now();
        let mut backoff = QuotaBackoff::default();
        backoff.after_run(Some(QuotaExhausted { retry_after: None }), now);
        assert_eq!(backoff.until, Some(now + chrono::Duration::seconds(60)));
        backoff.after_run(Some(QuotaExhausted { retry_after: None }), now);
        assert_eq!(backoff.until, Some(now + chrono::Duration::seconds(120)), "the second one waits longer");
        let later = QuotaExhausted { retry_after: Some(Duration::from_secs(600)) };
        backoff.after_run(Some(later), now);
        assert_eq!(backoff.until, Some(now + chrono::Duration::seconds(600)));
        backoff.after_run(None, now);
        assert_eq!((backoff.refusals, backoff.until), (0, None));
    }
}
