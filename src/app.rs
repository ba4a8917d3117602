//! The running service: the HTTP server, the group-commit writer and the periodic tasks, started
//! together and stopped together.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_actix_web::TracingLogger;

use crate::clock::Clock;
use crate::config::{DatabaseUrl, ReconcileSettings, Settings, TwentyApiSettings};
use crate::http::read::ReadApi;
use crate::http::refusals::{self, RefusalTally};
use crate::http::tokens::BearerTokens;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::mirror::Store;
use crate::mirror::writer::Writer;
use crate::sync::scheduler::{self, Schedule};
use crate::sync::{Reconciler, ReconcilerSettings, Rediscovery};
use crate::twenty::client::{ClientSettings, TwentyClient};
use crate::twenty::signature::SignaturePolicy;

/// How long in-flight requests get to finish after SIGTERM. The platform's kill timeout
/// (`kill_timeout` in fly.toml) must be longer.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Old deliveries are pruned ten times per retention period, but at most hourly (retention is
/// usually days, and an hourly pass keeps each deletion small) and at least a second apart.
fn prune_period(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    shutdown: CancellationToken,
    writer_stop: CancellationToken,
    writer_task: JoinHandle<()>,
    background: TaskTracker,
    store: Store,
    refusals: Arc<RefusalTally>,
}

impl Application {
    /// Connects to the database, applies migrations and binds the listener (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::System).await
    }

    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let store = open_store(&settings.database_url).await?;

        let webhook = &settings.webhook;
        if webhook.secrets.is_empty() && !webhook.allow_unsigned {
            tracing::warn!(
                "TWENTY_WEBHOOK_SECRET is not set: every webhook delivery will be refused with 401. \
                 Set it to the subscription's secret, or set TWENTY_WEBHOOK_ALLOW_UNSIGNED=true for a \
                 subscription made without one"
            );
        } else if webhook.allow_unsigned {
            tracing::warn!("TWENTY_WEBHOOK_ALLOW_UNSIGNED=true: deliveries without a signature are accepted");
        }

        let shutdown = CancellationToken::new();
        let writer_stop = CancellationToken::new();
        let (writer, writer_task) = Writer::start(store.clone(), store.commit_slots(), writer_stop.clone());
        let metrics = Arc::new(Metrics::default());
        let reconciler = match &settings.twenty_api {
            Some(api) => Some(
                build_reconciler(&store, api, &settings.reconcile, shutdown.clone())?
                    .with_metrics(metrics.clone()),
            ),
            None => {
                tracing::warn!(
                    "TWENTY_API_KEY is not set: the reconciler is off, the mirror follows webhooks only"
                );
                None
            }
        };
        let background = TaskTracker::new();
        let rediscovery =
            reconciler.as_ref().map(|r| Rediscovery::start(r.clone(), &background, shutdown.clone()));
        let refusals = Arc::new(RefusalTally::default());
        let state = web::Data::new(AppState {
            store: store.clone(),
            writer,
            signature_policy: SignaturePolicy {
                secrets: webhook.secrets.clone(),
                allow_unsigned: webhook.allow_unsigned,
                tolerance: webhook.tolerance,
            },
            clock,
            reconciler: reconciler.clone(),
            rediscovery,
            admin_token: settings.admin_token.as_ref().map(|token| BearerTokens::new([token])),
            read_api: ReadApi::new(
                (!settings.read_api_tokens.is_empty()).then(|| BearerTokens::new(&settings.read_api_tokens)),
            ),
            tasks: background.clone(),
            metrics: metrics.clone(),
            stale_after: settings.stale_after,
            refusals: refusals.clone(),
        });

        let address = SocketAddr::new(settings.host, settings.port);
        let listener = TcpListener::bind(address).with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        let max_body = webhook.max_body_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .configure(http::routes)
        })
        .listen(listener)
        .context("listening")?
        // Signals are ours (see `run_until_stopped`): actix treats SIGINT as a forced stop.
        .disable_signals()
        .shutdown_timeout(DRAIN_TIMEOUT.as_secs())
        .run();

        background.spawn(prune_events(store.clone(), settings.event_retention, shutdown.clone()));
        background.spawn(fold_kept_counts(store.clone(), shutdown.clone()));
        background.spawn(refusals::flush_periodically(refusals.clone(), store.clone(), shutdown.clone()));
        // Checks the webhook subscription in Twenty without delaying start: a warning names what is wrong.
        if let (Some(public_url), Some(reconciler)) = (&settings.public_url, &reconciler) {
            background.spawn(crate::subscription::check_at_start(
                reconciler.client().clone(),
                public_url.webhook_url(),
                webhook.secrets.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(reconciler) = reconciler {
            let schedule = Schedule {
                delta_every: settings.reconcile.delta_every,
                full_every: settings.reconcile.full_every,
            };
            background.spawn(scheduler::run(reconciler, store.clone(), schedule, shutdown.clone()));
        }
        tracing::info!(port, backend = store.backend(), "twenty-mirror is listening");
        Ok(Application { port, server, shutdown, writer_stop, writer_task, background, store, refusals })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancelling this token stops the service gracefully, as SIGTERM does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM, SIGINT or the shutdown token; then stops accepting connections, lets
    /// in-flight deliveries finish and commit, and stops the background tasks.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { server, shutdown, writer_stop, writer_task, background, store, refusals, .. } =
            self;
        let handle = server.handle();
        let signals = tokio::spawn(crate::shutdown::cancel_on_signal(shutdown.clone()));
        let stopper = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                tracing::info!("shutting down: draining in-flight requests");
                handle.stop(true).await;
            }
        });

        let served = server.await.context("running the HTTP server");
        shutdown.cancel();
        // Runs stop between pages; their last page commits first.
        background.close();
        background.wait().await;
        // Every request has been answered: count the last refusals, and let the writer stop.
        if let Err(error) = refusals.flush(&store).await {
            tracing::warn!(%error, "could not count the last refused deliveries");
        }
        writer_stop.cancel();
        for task in [writer_task, stopper] {
            task.await.context("joining a background task")?;
        }
        signals.await.context("joining the signal listener")?;
        store.close().await;
        tracing::info!("stopped");
        served
    }
}

/// Opens the database and applies its migrations: every command that touches the mirror starts here.
pub async fn open_store(database_url: &DatabaseUrl) -> anyhow::Result<Store> {
    let store = Store::connect(database_url.expose()).await.context("opening the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// The client of Twenty's API for every command that talks to it: the one place that turns the
/// settings into a client.
pub fn twenty_client(api: &TwentyApiSettings) -> anyhow::Result<TwentyClient> {
    TwentyClient::new(ClientSettings {
        rate_limits: api.rate_limits.clone(),
        ..ClientSettings::new(api.base_url.clone(), api.api_key.clone())
    })
    .context("building the Twenty client")
}

/// The reconciler of `serve` and of the `reconcile` command.
pub fn build_reconciler(
    store: &Store,
    api: &TwentyApiSettings,
    reconcile: &ReconcileSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<Reconciler> {
    let settings = ReconcilerSettings {
        overlap: reconcile.overlap,
        max_destroy_share: reconcile.max_destroy_share,
        allowlist: reconcile.objects.clone(),
    };
    Ok(Reconciler::new(store.clone(), twenty_client(api)?, settings, shutdown))
}

/// How often `serve` folds PostgreSQL's appended count deltas into the kept counts (a no-op on
/// SQLite). A scrape or a status call sums the deltas not folded yet: one row per writing
/// statement and object, so a minute of the heaviest webhook load leaves a few thousand rows,
/// summed in milliseconds.
const FOLD_EVERY: Duration = Duration::from_secs(60);

async fn fold_kept_counts(store: Store, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(FOLD_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(error) = store.fold_kept_counts().await {
            tracing::warn!(error = %error, "folding the kept counts failed; will try again");
        }
    }
}

async fn prune_events(store: Store, retention: Duration, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(prune_period(retention));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let Ok(retention) = chrono::Duration::from_std(retention) else { return };
        match store.prune_events(Utc::now() - retention).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned old deliveries from the event log"),
            Err(error) => tracing::warn!(error = %error, "pruning the event log failed; will try again"),
        }
    }
}
