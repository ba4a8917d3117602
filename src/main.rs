use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use twenty_mirror::app::build_reconciler;
use twenty_mirror::config::{Settings, parse_duration};
use twenty_mirror::mirror::Store;
use twenty_mirror::mirror::{Mode, RunStatus, Trigger};
use twenty_mirror::sync::reconciler::{Progress, ReconcileError, RunOutcome, RunRequest};
use twenty_mirror::sync::status::status;
use twenty_mirror::{Application, telemetry};

/// Keeps a Twenty CRM workspace mirrored in your own database: webhooks keep it fresh, a
/// reconciler makes it complete. Every setting comes from the environment (see the README).
#[derive(Parser)]
#[command(name = "twenty-mirror", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations, then serve HTTP and reconcile on schedule (the default).
    Serve,
    /// Apply migrations and exit (a release command on a PaaS).
    Migrate,
    /// Reconcile once in the foreground: progress on stderr, a summary on stdout, non-zero exit on
    /// failure.
    Reconcile {
        /// Only this object (singular name, e.g. person); repeat for several.
        #[arg(long = "object", value_name = "NAME")]
        objects: Vec<String>,
        /// Read every record and infer what was destroyed, instead of what changed since the last run.
        #[arg(long)]
        full: bool,
        /// Report what would change without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// Let a full pass mark more than RECONCILE_MAX_DESTROY_SHARE of an object destroyed.
        #[arg(long)]
        force: bool,
    },
    /// Show, per object, the rows mirrored, the last webhook, the last run and how stale it is.
    Status {
        /// Print JSON (the same as GET /admin/status) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create, update or verify the webhook subscription in Twenty that feeds this service (needs
    /// TWENTY_API_URL and TWENTY_API_KEY).
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Re-apply stored deliveries through the apply rule (after a fix, or into an emptied mirror).
    Replay {
        /// Deliveries received since this time: RFC 3339 (2026-09-21T10:00:00Z) or a duration ago (24h).
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: DateTime<Utc>,
        /// Only this object's deliveries (singular name).
        #[arg(long, value_name = "NAME")]
        object: Option<String>,
    },
}

/// Exit codes: settings errors are 2 (as a usage error), a run that another reconciler holds is 3.
const EXIT_SETTINGS: u8 = 2;
const EXIT_ALREADY_RUNNING: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("twenty-mirror: {error}");
            return ExitCode::from(EXIT_SETTINGS);
        }
    };
    telemetry::init(&settings.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Reconcile { objects, full, dry_run, force } => {
            let mode = if full { Mode::Full } else { Mode::Delta };
            let request = RunRequest { objects, dry_run, force, ..RunRequest::new(Trigger::Operator, mode) };
            reconcile(settings, request).await
        }
        Command::Status { json } => show_status(settings, json).await,
        Command::Webhook { command } => webhook(settings, command).await,
        Command::Replay { since, object } => replay(settings, since, object).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "twenty-mirror failed");
            eprintln!("twenty-mirror: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    Application::build(settings).await?.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(settings.database_url.expose()).await.context("opening the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

async fn migrate(settings: Settings) -> anyhow::Result<ExitCode> {
    let store = open_store(&settings).await?;
    tracing::info!(backend = store.backend(), "migrations applied");
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn reconcile(settings: Settings, request: RunRequest) -> anyhow::Result<ExitCode> {
    let api =
        settings.twenty_api.as_ref().context("the reconciler needs TWENTY_API_URL and TWENTY_API_KEY")?;
    let store = open_store(&settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nstopping after the current page…");
                shutdown.cancel();
            }
        }
    });
    let mut reconciler = build_reconciler(&store, api, &settings.reconcile, shutdown)?;
    if std::io::stderr().is_terminal() {
        let started = Instant::now();
        reconciler = reconciler.with_progress(Arc::new(move |p: &Progress<'_>| {
            let rate = p.fetched as f64 / started.elapsed().as_secs_f64().max(0.001);
            let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
            eprint!(
                "\r\x1b[2K{} ({}): {}{} records, {:.0}/s, {} requests",
                p.object,
                p.mode.as_str(),
                p.fetched,
                total,
                rate,
                p.requests
            );
        }));
    }
    let dry_run = request.dry_run;
    let outcome = reconciler.reconcile_once(request).await;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    store.close().await;
    match outcome {
        Ok(outcome) => {
            print!("{}", summary(&outcome, dry_run));
            Ok(if outcome.status == RunStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Err(error @ ReconcileError::AlreadyRunning(_)) => {
            eprintln!("twenty-mirror: {error}");
            Ok(ExitCode::from(EXIT_ALREADY_RUNNING))
        }
        Err(error) => Err(error.into()),
    }
}

fn summary(outcome: &RunOutcome, dry_run: bool) -> String {
    let mut out = format!(
        "{:<24} {:<6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "OBJECT", "MODE", "FETCHED", "INSERTED", "UPDATED", "DELETED", "DESTROYED", "UNCHANGED", "REPAIRED"
    );
    for report in &outcome.objects {
        let c = report.counts;
        out += &format!(
            "{:<24} {:<6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            report.object,
            report.mode.as_str(),
            c.fetched,
            c.inserted,
            c.updated,
            c.deleted,
            if dry_run { report.missing as i64 } else { c.destroyed },
            c.unchanged,
            c.repaired
        );
    }
    let c = outcome.counts;
    out += &format!(
        "{:<24} {:<6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "total", "", c.fetched, c.inserted, c.updated, c.deleted, c.destroyed, c.unchanged, c.repaired
    );
    let run =
        outcome.run_id.map(|id| format!("run {id}")).unwrap_or_else(|| "dry run (nothing written)".into());
    out += &format!("{run}: {}, {} requests to Twenty", outcome.status.as_str(), outcome.requests);
    if let Some(error) = &outcome.error {
        out += &format!("\nerror: {error}");
    }
    out.push('\n');
    out
}

async fn show_status(settings: Settings, json: bool) -> anyhow::Result<ExitCode> {
    let store = open_store(&settings).await?;
    let report = status(&store, Utc::now()).await.context("reading the status")?;
    store.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).context("printing the status")?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`: an RFC 3339 time, or a duration meaning that long ago.
fn parse_since(value: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    let ago = parse_duration(value)
        .map_err(|_| format!("{value:?}: expected an RFC 3339 time or a duration such as 24h"))?;
    chrono::Duration::from_std(ago).map(|ago| Utc::now() - ago).map_err(|e| e.to_string())
}

async fn replay(
    settings: Settings,
    since: DateTime<Utc>,
    object: Option<String>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(&settings).await?;
    let report =
        twenty_mirror::sync::replay::replay(&store, since, object.as_deref()).await.context("replaying")?;
    store.close().await;
    println!("replayed {} deliveries received since {}", report.deliveries, since.to_rfc3339());
    for (outcome, n) in &report.outcomes {
        println!("  {outcome:<10} {n}");
    }
    for failure in &report.failures {
        println!("  still failing: {failure}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// Subscribe URL to every record event and print the secret to set as TWENTY_WEBHOOK_SECRET.
    ///
    /// The subscription gets the five record events (*.created, *.updated, *.deleted, *.restored,
    /// *.destroyed) and a fresh secret, printed once. A subscription that already points at URL is
    /// updated (its secret replaced) rather than duplicated.
    Register {
        /// The service's webhook URL, https://HOST/webhooks/twenty; a base URL (https://HOST) gets
        /// /webhooks/twenty appended, any other path is kept.
        #[arg(long, value_name = "URL", env = "PUBLIC_URL")]
        url: String,
        /// Sign with this secret (e.g. the one already in TWENTY_WEBHOOK_SECRET) instead of 32
        /// random bytes from the operating system, hex-encoded.
        #[arg(long, value_name = "SECRET")]
        secret: Option<String>,
    },
    /// Verify the subscription for URL; exit 1 when it is missing, unsigned or misses events.
    ///
    /// Passes when a subscription points at URL, has a secret (one of TWENTY_WEBHOOK_SECRET, when
    /// that is set) and sends every record event.
    Check {
        /// The service's webhook URL, as for register.
        #[arg(long, value_name = "URL", env = "PUBLIC_URL")]
        url: String,
    },
}

async fn webhook(settings: Settings, command: WebhookCommand) -> anyhow::Result<ExitCode> {
    use twenty_mirror::subscription;
    use twenty_mirror::twenty::client::{ClientSettings, TwentyClient};

    let Some(api) = &settings.twenty_api else {
        eprintln!(
            "twenty-mirror: `webhook` needs TWENTY_API_URL and TWENTY_API_KEY (a key from Twenty's \
             Settings → APIs & Webhooks)"
        );
        return Ok(ExitCode::from(EXIT_SETTINGS));
    };
    let client = TwentyClient::new(ClientSettings {
        rate_limits: api.rate_limits.clone(),
        ..ClientSettings::new(api.base_url.clone(), api.api_key.clone())
    })
    .context("building the Twenty client")?;
    match command {
        WebhookCommand::Register { url, secret } => {
            let secret = secret.map(secrecy::SecretString::from);
            let registered = subscription::register(&client, &url, secret).await?;
            print!("{}", registered.to_text());
            Ok(ExitCode::SUCCESS)
        }
        WebhookCommand::Check { url } => {
            let mut report = subscription::check(&client, &url).await?;
            report.compare_secrets(&settings.webhook.secrets);
            print!("{report}");
            Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
