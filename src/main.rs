use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use twenty_mirror::config::Settings;
use twenty_mirror::mirror::Store;
use twenty_mirror::{Application, telemetry};

/// Keeps a Twenty CRM workspace mirrored in your own database: webhooks keep it fresh, and every
/// setting comes from the environment (see the README).
#[derive(Parser)]
#[command(name = "twenty-mirror", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations, then serve HTTP (the default when no command is given).
    Serve,
    /// Apply migrations and exit (a release command on a PaaS).
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("twenty-mirror: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "twenty-mirror failed");
            eprintln!("twenty-mirror: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    Application::build(settings).await?.run_until_stopped().await
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = Store::connect(&settings.database_url).await.context("opening the database")?;
    store.migrate().await.context("applying migrations")?;
    tracing::info!(backend = store.backend(), "migrations applied");
    store.close().await;
    Ok(())
}
