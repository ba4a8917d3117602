//! One reconciler run: discover the objects, then per object a delta pass (what changed since the
//! watermark) or a full pass (everything, then infer what was destroyed). Every page is applied
//! through the apply rule, with its checkpoint, in one transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::Instrument;

use crate::change::format_timestamp;
use crate::change::{Change, Source};
use crate::metrics::Metrics;
use crate::mirror::views::{ViewOutcome, ViewsReport};
use crate::mirror::{
    Counts, Mode, ObjectRow, PageWrite, PassHealth, ReconcilerLock, RunStatus, SyncState, Trigger,
    WebhookHealth,
};
use crate::mirror::{Store, StoreError};
use crate::twenty::client::{ClientError, ObjectMetadata, TwentyClient};

/// Every record, live and soft-deleted: the filter has to mention `deletedAt` for Twenty to return
/// soft-deleted records at all.
const EVERY_RECORD: &str = "or(deletedAt[is]:NULL,deletedAt[is]:NOT_NULL)";

/// Oldest first, so that the watermark can advance page by page; Twenty appends `id` as the
/// tie-breaker, which keeps keyset paging stable.
const ORDER: &str = "updatedAt[AscNullsFirst]";

/// How many times a pass starts again from its checkpoint after Twenty rejected its cursor
/// (`INVALID_CURSOR`) before the run gives up: once is the expected case, a few more cover a
/// server that is being upgraded under the run.
const CURSOR_RESTARTS: usize = 3;

/// How long, in all, an overlapping request waits for the running run's row: 10 × 50 ms.
const RUN_ROW_WAITS: usize = 10;
const RUN_ROW_WAIT: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct ReconcilerSettings {
    /// δ: how far before the watermark a delta pass starts reading, for transactions that
    /// committed late and for replica lag. Also the age below which a sweep never infers a destroy.
    pub overlap: Duration,
    /// The share of an object's rows a full pass may mark destroyed without `force`.
    pub max_destroy_share: f64,
    /// `TWENTY_OBJECTS`: the objects to mirror, by singular name; all discovered ones when `None`.
    pub allowlist: Option<Vec<String>>,
}

/// What an operator or the schedule asks for.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub trigger: Trigger,
    pub mode: Mode,
    /// Objects to reconcile, by singular name; every mirrored object when empty.
    pub objects: Vec<String>,
    /// Report what would change without writing.
    pub dry_run: bool,
    /// Let a full pass destroy more than `max_destroy_share`.
    pub force: bool,
}

impl RunRequest {
    pub fn new(trigger: Trigger, mode: Mode) -> Self {
        RunRequest { trigger, mode, objects: Vec::new(), dry_run: false, force: false }
    }
}

/// What one object's pass did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ObjectReport {
    pub object: String,
    pub mode: Mode,
    pub counts: Counts,
    /// Rows a full pass found missing in Twenty: marked destroyed, or only counted in a dry run
    /// or when the circuit breaker refused.
    pub missing: u64,
}

/// The end of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOutcome {
    /// The `sync_runs` row; `None` for a dry run, which records nothing.
    pub run_id: Option<i64>,
    pub status: RunStatus,
    pub error: Option<String>,
    pub counts: Counts,
    pub objects: Vec<ObjectReport>,
    /// Requests made to Twenty during the run.
    pub requests: u64,
    /// Set when the run stopped because the workspace's quota is exhausted: the next run should wait.
    pub quota_exhausted: Option<QuotaExhausted>,
}

/// A run stopped by Twenty's quota (HTTP 402), with when Twenty said the client may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QuotaExhausted {
    pub retry_after: Option<Duration>,
}

/// The answer to a request to start a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// A new run, going on in the background.
    Began(i64),
    /// Another run holds the lock; this is it, when the database knows it.
    AlreadyRunning(Option<i64>),
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("another reconciler is running{}", .0.map(|id| format!(" (run {id})")).unwrap_or_default())]
    AlreadyRunning(Option<i64>),
    #[error(transparent)]
    Twenty(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown object {0:?}: it is not among the objects discovered in Twenty")]
    UnknownObject(String),
    #[error(
        "refused to mark {missing} of {present} {object} rows destroyed ({share:.0}% > the {limit:.0}% allowed \
         by RECONCILE_MAX_DESTROY_SHARE); if Twenty really lost them, run a full pass with --force"
    )]
    TooManyMissing { object: String, missing: u64, present: i64, share: f64, limit: f64 },
    /// Twenty's pagination ended (`hasNextPage: false`) before the pass had read every record its
    /// `totalCount` counts, as releases before 2026-08-19 could: no destroy is inferred from such a
    /// sweep, whatever `--force` says, and the pass is not recorded as complete.
    #[error(
        "the {} pass of {object} read {read} distinct records but Twenty counts {total}: Twenty's \
         pagination ended early (a bug of releases built before 2026-08-19), so the pass is incomplete{}; \
         upgrade Twenty if this repeats",
        .mode.as_str(),
        if *.mode == Mode::Full { " and nothing was marked destroyed" } else { " and the next run reads the rest" }
    )]
    IncompleteSweep { object: String, mode: Mode, read: u64, total: u64 },
    #[error("stopped by shutdown before it finished")]
    Cancelled,
}

/// Progress of a run, for a terminal.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub object: &'a str,
    pub mode: Mode,
    pub fetched: i64,
    pub total: Option<u64>,
    pub requests: u64,
}

pub type ProgressFn = Arc<dyn Fn(&Progress<'_>) + Send + Sync>;

/// The reconciler: a Twenty client, the store, and the rules of a run.
#[derive(Clone)]
pub struct Reconciler {
    store: Store,
    client: TwentyClient,
    settings: ReconcilerSettings,
    shutdown: CancellationToken,
    progress: Option<ProgressFn>,
    metrics: Arc<Metrics>,
}

impl Reconciler {
    pub fn new(
        store: Store,
        client: TwentyClient,
        settings: ReconcilerSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Reconciler { store, client, settings, shutdown, progress: None, metrics: Arc::default() }
    }

    /// Counts runs and pages into `metrics` (the server's `/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Reports each page to `progress` (the CLI draws a progress line with it).
    pub fn with_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }

    pub fn client(&self) -> &TwentyClient {
        &self.client
    }

    /// Runs once, to the end, in the caller's task.
    pub async fn reconcile_once(&self, request: RunRequest) -> Result<RunOutcome, ReconcileError> {
        let active = self.begin(&request).await?;
        Ok(self.execute(active, &request).await)
    }

    /// Starts a run in the background (tracked by `tasks`, so shutdown waits for it) and answers
    /// with its id, or with the run already going on.
    pub async fn start(&self, request: RunRequest, tasks: &TaskTracker) -> Result<Started, ReconcileError> {
        let active = match self.begin(&request).await {
            Ok(active) => active,
            Err(ReconcileError::AlreadyRunning(id)) => return Ok(Started::AlreadyRunning(id)),
            Err(error) => return Err(error),
        };
        let id = active.run_id.unwrap_or_default();
        let reconciler = self.clone();
        tasks.spawn(async move {
            reconciler.execute(active, &request).await;
        });
        Ok(Started::Began(id))
    }

    /// Takes the lock and records the run. A dry run writes nothing, so it takes no lock either.
    async fn begin(&self, request: &RunRequest) -> Result<ActiveRun, ReconcileError> {
        if request.dry_run {
            return Ok(ActiveRun { lock: None, run_id: None });
        }
        let Some(lock) = self.store.try_lock_reconciler().await? else {
            return Err(ReconcileError::AlreadyRunning(self.running_run().await?));
        };
        let started_at = Utc::now();
        let abandoned = self.store.fail_abandoned_runs(started_at).await?;
        if abandoned > 0 {
            tracing::warn!(abandoned, "closed runs left running by a process that stopped");
        }
        let run_id =
            self.store.create_run(request.trigger, request.mode, &request.objects, started_at).await?;
        Ok(ActiveRun { lock: Some(lock), run_id: Some(run_id) })
    }

    /// The run that holds the lock. Its holder records it just after taking the lock: give it a
    /// moment, so that an overlapping request is answered with the run rather than with nothing.
    async fn running_run(&self) -> Result<Option<i64>, StoreError> {
        for _ in 0..RUN_ROW_WAITS {
            if let Some(id) = self.store.running_run().await? {
                return Ok(Some(id));
            }
            tokio::time::sleep(RUN_ROW_WAIT).await;
        }
        Ok(None)
    }

    /// Runs the passes and records how the run ended; never fails, the outcome says how it went.
    async fn execute(&self, active: ActiveRun, request: &RunRequest) -> RunOutcome {
        let span = tracing::info_span!(
            "reconcile",
            run_id = active.run_id,
            mode = request.mode.as_str(),
            trigger = request.trigger.as_str(),
            dry_run = request.dry_run
        );
        self.execute_in_span(active, request).instrument(span).await
    }

    async fn execute_in_span(&self, active: ActiveRun, request: &RunRequest) -> RunOutcome {
        let requests_before = self.client.stats().total_requests();
        let mut reports = Vec::new();
        let result = self.passes(&active, request, &mut reports).await;
        let mut counts = Counts::default();
        for report in &reports {
            counts.add(report.counts);
        }
        let (status, error) = match &result {
            Ok(()) => (RunStatus::Succeeded, None),
            Err(error) => (RunStatus::Failed, Some(error.to_string())),
        };
        let quota_exhausted = match &result {
            // Twenty names a time; the schedule waits the time left until it (none when past).
            Err(ReconcileError::Twenty(ClientError::QuotaExhausted { retry_after, .. })) => {
                Some(QuotaExhausted {
                    retry_after: retry_after.map(|at| (at - Utc::now()).to_std().unwrap_or_default()),
                })
            }
            _ => None,
        };
        if active.run_id.is_some() {
            self.metrics.run(status.as_str());
        }
        if let Some(run_id) = active.run_id
            && let Err(e) = self.store.finish_run(run_id, status, error.as_deref(), Utc::now()).await
        {
            tracing::error!(error = %e, "could not record the end of the run");
        }
        // The run's pages appended count deltas (PostgreSQL): fold them, so that the reads stay
        // small even where no `serve` folds them (a `reconcile` command from cron).
        if active.run_id.is_some()
            && let Err(e) = self.store.fold_kept_counts().await
        {
            tracing::warn!(error = %e, "could not fold the kept counts; the next fold will");
        }
        if let Some(lock) = active.lock
            && let Err(e) = self.store.unlock_reconciler(lock).await
        {
            tracing::warn!(error = %e, "could not release the reconciler lock; it expires on its own");
        }
        match &error {
            None => tracing::info!(?counts, "run succeeded"),
            Some(error) => tracing::error!(%error, ?counts, "run failed"),
        }
        RunOutcome {
            run_id: active.run_id,
            status,
            error,
            counts,
            objects: reports,
            requests: self.client.stats().total_requests().saturating_sub(requests_before),
            quota_exhausted,
        }
    }

    async fn passes(
        &self,
        active: &ActiveRun,
        request: &RunRequest,
        reports: &mut Vec<ObjectReport>,
    ) -> Result<(), ReconcileError> {
        let objects = self.objects_to_sync(request).await?;
        let names: Vec<String> = objects.iter().map(|o| o.name_singular.clone()).collect();
        if let Some(run_id) = active.run_id {
            self.store.set_run_objects(run_id, &names).await?;
        }
        let states: HashMap<String, SyncState> =
            self.store.sync_states().await?.into_iter().map(|s| (s.object.clone(), s)).collect();
        // A refused destroy or an incomplete sweep stops that object's pass, not the other objects'.
        let mut refusal = None;
        for object in &objects {
            let watermark = states.get(&object.name_singular).and_then(|s| s.watermark);
            let mode = match (request.mode, watermark) {
                (Mode::Delta, Some(_)) => Mode::Delta,
                _ => Mode::Full,
            };
            let span = tracing::info_span!("object", object = %object.name_singular, mode = mode.as_str());
            let pass = Pass { reconciler: self, active, request, object, mode };
            // Counts are kept as pages commit, so that a pass that fails still reports its part.
            let mut counts = Counts::default();
            let result = match mode {
                Mode::Delta => pass.delta(watermark.unwrap_or_default(), &mut counts).instrument(span).await,
                Mode::Full => pass.full(&mut counts).instrument(span).await,
            };
            let missing = match &result {
                Ok(missing) => *missing,
                Err(ReconcileError::TooManyMissing { missing, .. }) => *missing,
                Err(_) => 0,
            };
            reports.push(ObjectReport { object: object.name_singular.clone(), mode, counts, missing });
            match result {
                Ok(_) => {}
                Err(refused @ ReconcileError::TooManyMissing { .. }) => {
                    tracing::error!(object = %object.name_singular, error = %refused, "refused a mass destroy");
                    refusal = Some(refused);
                    continue;
                }
                Err(incomplete @ ReconcileError::IncompleteSweep { .. }) => {
                    tracing::error!(object = %object.name_singular, error = %incomplete, "incomplete pass");
                    refusal = Some(incomplete);
                    continue;
                }
                Err(error) => return Err(error),
            }
            tracing::info!(object = %object.name_singular, mode = mode.as_str(), ?counts, missing, "pass complete");
            if let Some(run_id) = active.run_id
                && let Some(health) =
                    self.store.finish_pass(&object.name_singular, mode, run_id, counts, Utc::now()).await?
            {
                warn_when_silent(&object.name_singular, counts.repaired, &health);
            }
        }
        refusal.map_or(Ok(()), Err)
    }

    /// The objects of this run. Discovery runs at every run, delta passes included, so that the
    /// typed views follow Twenty's schema: one request (a page per 100 objects or so) beside one
    /// per object. A dry run discovers and stores nothing.
    async fn objects_to_sync(&self, request: &RunRequest) -> Result<Vec<ObjectRow>, ReconcileError> {
        let known = if request.dry_run { self.fetch_objects().await? } else { self.discover().await? };
        if request.objects.is_empty() {
            return Ok(known.into_iter().filter(|o| o.mirrored).collect());
        }
        request
            .objects
            .iter()
            .map(|name| {
                known
                    .iter()
                    .find(|o| &o.name_singular == name && o.mirrored)
                    .cloned()
                    .ok_or_else(|| ReconcileError::UnknownObject(name.clone()))
            })
            .collect()
    }

    /// Reads the objects and their fields from Twenty's metadata API and stores them, the typed
    /// views following in the same transaction; logs what became of the views. Answers every
    /// discovered object, mirrored or not.
    pub async fn discover(&self) -> Result<Vec<ObjectRow>, ReconcileError> {
        let known = self.fetch_objects().await?;
        let report = self.store.save_objects(&known, Utc::now()).await?;
        log_views(&report);
        Ok(known)
    }

    async fn fetch_objects(&self) -> Result<Vec<ObjectRow>, ReconcileError> {
        let discovered = self.client.objects().await?;
        Ok(discovered.into_iter().map(|o| self.object_row(o)).collect())
    }

    fn object_row(&self, o: ObjectMetadata) -> ObjectRow {
        let allowed = self.settings.allowlist.as_ref().is_none_or(|names| names.contains(&o.name_singular));
        ObjectRow {
            mirrored: o.is_mirrored_by_default() && allowed,
            name_singular: o.name_singular,
            name_plural: o.name_plural,
            label_singular: o.label_singular,
            label_plural: o.label_plural,
            metadata_id: o.id,
            is_custom: o.is_custom,
            fields: o.fields,
        }
    }
}

/// What became of the typed views, for the log: a view made or changed with what it left out and
/// any suffix its name got, a view dropped, and every failure. Unchanged views say nothing, so a
/// run every five minutes does not repeat itself.
fn log_views(report: &ViewsReport) {
    for view in &report.views {
        let plan = &view.plan;
        let (object, name) = (&plan.object, &plan.name);
        let outcome = match &view.outcome {
            ViewOutcome::Unchanged => continue,
            ViewOutcome::Failed { error } => {
                tracing::error!(%object, view = %name, %error, "could not create or replace a view");
                continue;
            }
            ViewOutcome::Created => "created",
            ViewOutcome::Replaced => "replaced",
        };
        tracing::info!(%object, view = %name, columns = plan.columns.len(), outcome, "typed view");
        if let (Some(wanted), Some(conflict)) = (&plan.wanted_name, &plan.conflict) {
            let reason = conflict.describe(wanted);
            tracing::warn!(%object, view = %name, %wanted, %reason, "a view got a suffix");
        }
        for skipped in &plan.skipped {
            let reason = skipped.reason.describe();
            tracing::warn!(%object, field = %skipped.field, %reason, "a field is not a column of its view");
        }
        for column in plan.columns.iter().filter(|c| c.wanted_name.is_some()) {
            let wanted = column.wanted_name.as_deref();
            tracing::info!(%object, column = %column.name, wanted, "a column got a suffix: another field has its name");
        }
    }
    for dropped in &report.dropped {
        let (object, name) = (&dropped.object, &dropped.name);
        match &dropped.error {
            None => tracing::info!(%object, view = %name, "dropped the view of an object no longer mirrored"),
            Some(error) => {
                tracing::error!(%object, view = %name, %error, "could not drop the view of an object no longer mirrored")
            }
        }
    }
    for skipped in &report.skipped {
        let reason = skipped.reason.describe();
        tracing::warn!(object = %skipped.object, %reason, "an object has no view");
    }
}

/// One warning when an object's webhooks turn silent, on the pass that finds it, not on every
/// silent pass after it: the state is kept in the store, so a restart does not warn again either.
fn warn_when_silent(object: &str, repaired: i64, health: &PassHealth) {
    if health.current != WebhookHealth::Silent || health.previous == WebhookHealth::Silent {
        return;
    }
    let unattributed: i64 = health.refused.iter().filter(|r| r.object.is_none()).map(|r| r.refused).sum();
    tracing::warn!(
        object,
        repaired,
        refused_naming_no_known_object = unattributed,
        "webhooks of {object} look silent: the delta pass repaired {repaired} rows and no delivery for \
         {object} arrived since the previous pass. Likely causes: Twenty cannot reach the webhook URL; \
         Twenty's outbound safe mode blocks a private address on its worker; the workspace reached its \
         cap of webhooks; the subscription was deleted in Twenty's settings; the secret no longer \
         matches (check the refused deliveries in `twenty-mirror status`: {unattributed} named no known \
         object since the last pass)"
    );
}

struct ActiveRun {
    lock: Option<ReconcilerLock>,
    run_id: Option<i64>,
}

/// One object's pass within a run.
struct Pass<'a> {
    reconciler: &'a Reconciler,
    active: &'a ActiveRun,
    request: &'a RunRequest,
    object: &'a ObjectRow,
    mode: Mode,
}

impl Pass<'_> {
    /// What changed since the watermark, minus the overlap: `updatedAt` catches updates, soft
    /// deletes and restores (they all move it); `deletedAt` is there so Twenty returns soft-deleted
    /// records at all.
    ///
    /// Pages are read oldest first and each moves the watermark as it commits, so a pass that
    /// stops early (an error, or Twenty's pagination ending before its `totalCount`) leaves the
    /// watermark at the newest record committed, and the next pass reads on from there. Ending
    /// early, the pass is not recorded as complete.
    async fn delta(&self, watermark: DateTime<Utc>, counts: &mut Counts) -> Result<u64, ReconcileError> {
        let overlap = chrono::Duration::from_std(self.reconciler.settings.overlap).unwrap_or_default();
        let mut checkpoint = watermark;
        let mut restarts = 0;
        loop {
            let since = format_timestamp(checkpoint - overlap);
            let filter = format!("or(updatedAt[gte]:\"{since}\",deletedAt[gte]:\"{since}\")");
            // The count compared with `totalCount` is of this reading's filter alone.
            let mut seen = SeenIds::default();
            match self.read_all(&filter, &mut seen, counts).await? {
                Swept::Complete(sweep) => {
                    self.check_complete(&sweep)?;
                    return Ok(0);
                }
                Swept::CursorRejected { error, committed } => {
                    self.restart_after(error, &mut restarts)?;
                    checkpoint = checkpoint.max(committed.unwrap_or(checkpoint));
                }
            }
        }
    }

    /// Counts a restart after Twenty rejected a cursor, or gives up with its error past the bound.
    fn restart_after(&self, error: ClientError, restarts: &mut usize) -> Result<(), ReconcileError> {
        if *restarts >= CURSOR_RESTARTS {
            return Err(error.into());
        }
        *restarts += 1;
        tracing::warn!(
            %error,
            restart = *restarts,
            max_restarts = CURSOR_RESTARTS,
            "Twenty rejected the pass's cursor; reading again from the checkpoint"
        );
        Ok(())
    }

    /// Fails the pass when it read fewer distinct records than Twenty counts.
    fn check_complete(&self, sweep: &Sweep) -> Result<(), ReconcileError> {
        match sweep.total {
            Some(total) if sweep.read < total => Err(ReconcileError::IncompleteSweep {
                object: self.object.name_singular.clone(),
                mode: self.mode,
                read: sweep.read,
                total,
            }),
            _ => Ok(()),
        }
    }

    /// Every record; then the rows Twenty no longer has are marked destroyed, if the sweep
    /// completed and the circuit breaker allows it. Answers how many rows were missing.
    async fn full(&self, counts: &mut Counts) -> Result<u64, ReconcileError> {
        let store = &self.reconciler.store;
        let object = self.object.name_singular.as_str();
        let sweep_started = Utc::now();
        let present_before = store.count_present(object).await?;
        // Ids seen before a rejected cursor stay seen: a restart can only make fewer rows candidates.
        let mut seen = SeenIds::default();
        let mut restarts = 0;
        loop {
            match self.read_all(EVERY_RECORD, &mut seen, counts).await? {
                Swept::Complete(sweep) => {
                    // A sweep known to be incomplete says nothing of what Twenty lost, `force` or not.
                    self.check_complete(&sweep)?;
                    break;
                }
                Swept::CursorRejected { error, .. } => self.restart_after(error, &mut restarts)?,
            }
        }

        // A row written less than the overlap before the sweep began may belong to a record that
        // Twenty had not made readable yet: never a candidate.
        let overlap = chrono::Duration::from_std(self.reconciler.settings.overlap).unwrap_or_default();
        let written_before = sweep_started - overlap;
        let missing: Vec<String> = store
            .destroy_candidates(object, written_before)
            .await?
            .into_iter()
            .filter(|id| !seen.contains(id))
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let limit = self.reconciler.settings.max_destroy_share;
        let share = missing.len() as f64 / present_before.max(1) as f64;
        if share > limit && !self.request.force {
            return Err(ReconcileError::TooManyMissing {
                object: object.to_owned(),
                missing: missing.len() as u64,
                present: present_before,
                share: share * 100.0,
                limit: limit * 100.0,
            });
        }
        let Some(run_id) = self.active.run_id else {
            return Ok(missing.len() as u64); // a dry run only reports them
        };
        let destroyed = store.mark_destroyed(object, &missing, sweep_started, written_before, run_id).await?;
        counts.add(Counts::of_sweep(destroyed));
        Ok(missing.len() as u64)
    }

    /// Pages through `filter`, applying each page with its checkpoint, until the last page, or
    /// until Twenty rejects a cursor: then the pages in flight commit and the caller restarts.
    async fn read_all(
        &self,
        filter: &str,
        seen: &mut SeenIds,
        counts: &mut Counts,
    ) -> Result<Swept, ReconcileError> {
        let reconciler = self.reconciler;
        let object = self.object.name_singular.as_str();
        // A page is fetched, parsed and turned into changes on a task of its own, so that it runs
        // on another core while the page before it is written: this task's turns go to the write.
        let fetch = |cursor: Option<String>| {
            let (client, plural, filter, object) = (
                reconciler.client.clone(),
                self.object.name_plural.clone(),
                filter.to_owned(),
                object.to_owned(),
            );
            AbortOnDropHandle::new(tokio::spawn(async move {
                let page = client.list_page(&plural, Some(&filter), Some(ORDER), cursor.as_deref()).await?;
                let changes = changes_of(&object, &page.records);
                Ok::<_, ClientError>((page, changes))
            }))
        };
        // Pages are applied in order, up to `pages_in_flight` at once. A page applied while the one
        // before it may still fail to commit moves the watermark only as far as the pages known
        // to be committed, so that a crash never leaves the watermark past a lost page; the last
        // page waits for the others and takes the watermark to its end.
        let apply = |changes: Vec<Change>, watermark: Option<DateTime<Utc>>, total: Option<u64>| async move {
            let write = PageWrite {
                object,
                changes: &changes,
                watermark,
                run_id: self.active.run_id,
                lock: self.active.lock.as_ref(),
            };
            let outcomes = reconciler.store.apply_page(&write).await?;
            Ok::<_, StoreError>(AppliedPage {
                counts: Counts::of_page(&changes, &outcomes),
                newest: changes.iter().map(|c| c.updated_at).max(),
                total,
            })
        };
        let mut applying = FuturesOrdered::new();
        let mut committed: Option<DateTime<Utc>> = None;
        let mut applied = |page: AppliedPage, committed: &mut Option<DateTime<Utc>>| {
            *committed = (*committed).max(page.newest);
            counts.add(page.counts);
            if self.active.run_id.is_some() {
                reconciler.metrics.page(object, page.counts.fetched as u64, page.counts.repaired as u64);
            }
            if let Some(progress) = &reconciler.progress {
                progress(&Progress {
                    object,
                    mode: self.mode,
                    fetched: counts.fetched,
                    total: page.total,
                    requests: reconciler.client.stats().total_requests(),
                });
            }
        };
        // Distinct records read (and those that could not be read as changes), against the
        // newest `totalCount`: records created during the pass are counted and read at its end.
        let mut unreadable = 0_u64;
        let mut total = None;
        let mut next = Some(fetch(None));
        let mut next_has_cursor = false;
        while let Some(mut fetching) = next.take() {
            // The pages in flight go on while the next one arrives.
            let fetched = loop {
                tokio::select! {
                    fetched = &mut fetching => break fetched,
                    Some(page) = applying.next() => applied(page?, &mut committed),
                }
            };
            let (page, changes) = match fetched {
                Ok(Ok(fetched)) => fetched,
                Ok(Err(error)) if next_has_cursor && is_invalid_cursor(&error) => {
                    while let Some(page) = applying.next().await {
                        applied(page?, &mut committed);
                    }
                    return Ok(Swept::CursorRejected { error, committed });
                }
                Ok(Err(error)) => return Err(error.into()),
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(_) => return Err(ReconcileError::Cancelled),
            };
            for change in &changes {
                seen.insert(&change.id);
            }
            unreadable += (page.records.len() - changes.len()) as u64;
            total = page.total_count.or(total);
            let next_cursor = page.end_cursor.clone().filter(|_| page.has_next_page);
            next_has_cursor = next_cursor.is_some();
            // The next page is fetched while this one is written, so a pass takes about the longer
            // of the two instead of their sum.
            next = next_cursor.map(|cursor| fetch(Some(cursor)));
            let limit = if next.is_some() { reconciler.store.pages_in_flight() } else { 1 };
            while applying.len() >= limit {
                match applying.next().await {
                    Some(page) => applied(page?, &mut committed),
                    None => break,
                }
            }
            // Shutdown stops a pass between pages: those in flight commit, no new one begins.
            if reconciler.shutdown.is_cancelled() {
                while let Some(page) = applying.next().await {
                    applied(page?, &mut committed);
                }
                return Err(ReconcileError::Cancelled);
            }
            let newest = changes.iter().map(|c| c.updated_at).max();
            let watermark = watermark_for(committed, newest, !applying.is_empty());
            applying.push_back(apply(changes, watermark, page.total_count));
        }
        while let Some(page) = applying.next().await {
            applied(page?, &mut committed);
        }
        Ok(Swept::Complete(Sweep { read: seen.len() + unreadable, total }))
    }
}

/// How a reading of a filter ended.
enum Swept {
    /// Twenty said there was no next page.
    Complete(Sweep),
    /// Twenty rejected a cursor (`INVALID_CURSOR`); the pages before it committed, the newest of
    /// their records is `committed`.
    CursorRejected { error: ClientError, committed: Option<DateTime<Utc>> },
}

/// What a complete reading saw.
struct Sweep {
    /// Distinct records read.
    read: u64,
    /// Twenty's `totalCount` with the last page, when it sent one.
    total: Option<u64>,
}

/// Whether Twenty refused a cursor as made for another order (`INVALID_CURSOR`): reading again
/// without a cursor helps, as its message says. The error name is not kept in the message, so the
/// words are matched.
fn is_invalid_cursor(error: &ClientError) -> bool {
    let ClientError::Rejected { status: 400, message, .. } = error else { return false };
    let message = message.to_ascii_lowercase();
    ["invalid_cursor", "encoded for a different orderby", "restart pagination without a cursor"]
        .iter()
        .any(|words| message.contains(words))
}

/// Where a page may move the watermark: to its own newest record when every page before it has
/// committed, otherwise only as far as the pages known to be committed, so that a page that fails
/// after a later one committed is still read again by the next delta pass.
fn watermark_for(
    committed: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
    earlier_in_flight: bool,
) -> Option<DateTime<Utc>> {
    if earlier_in_flight { committed } else { committed.max(newest) }
}

/// What a page did, once committed.
struct AppliedPage {
    counts: Counts,
    /// The newest `updatedAt` among its records.
    newest: Option<DateTime<Utc>>,
    /// `totalCount` as Twenty answered it with the page.
    total: Option<u64>,
}

/// The records of a page as changes; a record without what the mirror needs is skipped, loudly.
fn changes_of(object: &str, records: &[serde_json::Value]) -> Vec<Change> {
    records
        .iter()
        .filter_map(|record| match Change::upsert(object, record, Source::Reconcile) {
            Ok(change) => Some(change),
            Err(error) => {
                tracing::warn!(%error, "skipped a record Twenty returned without what the mirror needs");
                None
            }
        })
        .collect()
}

/// The ids a sweep has seen, 16 bytes each whatever their length, so that an object of a million
/// records costs tens of megabytes at most, not the records themselves.
#[derive(Default)]
struct SeenIds(HashSet<u128>);

impl SeenIds {
    fn key(id: &str) -> u128 {
        let digest = Sha256::digest(id.as_bytes());
        let mut bytes = [0_u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        u128::from_le_bytes(bytes)
    }

    fn insert(&mut self, id: &str) {
        self.0.insert(Self::key(id));
    }

    fn contains(&self, id: &str) -> bool {
        self.0.contains(&Self::key(id))
    }

    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::parse_timestamp;

    #[test]
    fn a_page_behind_one_in_flight_moves_the_watermark_only_to_what_committed() {
        let at = |minute: u32| parse_timestamp(&format!("2026-09-21T10:{minute:02}:00.000Z"));
        assert_eq!(watermark_for(at(1), at(3), true), at(1), "page 2 may still fail");
        assert_eq!(watermark_for(None, at(3), true), None);
        assert_eq!(watermark_for(at(1), at(3), false), at(3), "every page before it committed");
        assert_eq!(watermark_for(at(5), at(3), false), at(5), "never down");
        assert_eq!(watermark_for(None, None, false), None);
    }
}
