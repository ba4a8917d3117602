//! The command line: the commands, what they print and how they exit. Results go to stdout; logs
//! and progress go to stderr.

mod exit;
mod playground;
mod progress;
mod reconcile;
mod replay;
mod serve;
mod status;
mod views;
mod webhook;

use clap::{Parser, Subcommand};

pub use exit::Exit;
pub use progress::Console;

use crate::config::Settings;

/// Keeps a Twenty CRM workspace mirrored in your own database: webhooks keep it fresh, a
/// reconciler makes it complete. Every setting comes from the environment (see the README).
#[derive(Parser)]
#[command(name = "twenty-mirror", version)]
pub struct Cli {
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
    Reconcile(reconcile::Args),
    /// Show, per object, the rows mirrored, the last webhook, the last run and how stale it is.
    Status(status::Args),
    /// Create, update or verify the webhook subscription in Twenty that feeds this service (needs
    /// TWENTY_API_URL and TWENTY_API_KEY).
    Webhook {
        #[command(subcommand)]
        command: webhook::Command,
    },
    /// Re-apply stored deliveries through the apply rule (after a fix, or into an emptied mirror).
    Replay(replay::Args),
    /// Run the service against a simulated Twenty workspace, on a temporary SQLite database and
    /// 127.0.0.1 only, for a first look: NOT connected to a real Twenty. It sets for itself every
    /// setting that could reach a database, a Twenty or another network interface.
    Playground(playground::Args),
    /// List the typed views (one per mirrored object) with their columns and types; `--sql` prints
    /// the statements that created them.
    Views(views::Args),
}

impl Cli {
    /// Where the command shows its progress: bars on a terminal for `reconcile`, nothing else.
    pub fn console(&self) -> Console {
        match self.command {
            Some(Command::Reconcile(_)) => Console::for_stderr(),
            _ => Console::plain(),
        }
    }

    /// Runs the command (`serve` when none is given) to its end.
    pub async fn run(self, settings: Settings, console: Console) -> Exit {
        let result = match self.command.unwrap_or(Command::Serve) {
            Command::Serve => serve::serve(settings).await,
            Command::Migrate => serve::migrate(settings).await,
            Command::Reconcile(args) => reconcile::run(settings, args, console).await,
            Command::Status(args) => status::run(settings, args).await,
            Command::Webhook { command } => webhook::run(settings, command).await,
            Command::Replay(args) => replay::run(settings, args).await,
            Command::Playground(args) => playground::run(settings, args).await,
            Command::Views(args) => views::run(settings, args).await,
        };
        result.unwrap_or_else(|error| {
            tracing::error!(error = format!("{error:#}"), "twenty-mirror failed");
            eprintln!("twenty-mirror: {error:#}");
            Exit::Failure
        })
    }
}
