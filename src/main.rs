//! The `twenty-mirror` binary: parses the arguments, loads the settings, starts logging and hands
//! over to `cli`, which runs the command and says how to exit.

use std::process::ExitCode;

use clap::Parser as _;
use twenty_mirror::cli::{Cli, Exit};
use twenty_mirror::config::Settings;
use twenty_mirror::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("twenty-mirror: {error}");
            return Exit::Settings.into();
        }
    };
    let console = cli.console();
    telemetry::init(&settings.log, console.log_writer());
    cli.run(settings, console).await.into()
}
