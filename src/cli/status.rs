//! `status`: per object, the rows mirrored, the last webhook, the last run and how stale it is.

use anyhow::Context as _;
use chrono::Utc;

use crate::app::open_store;
use crate::cli::Exit;
use crate::config::Settings;
use crate::sync::status::status;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON (the same as GET /admin/status) instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<Exit> {
    let store = open_store(&settings.database_url).await?;
    let report = status(&store, Utc::now()).await.context("reading the status")?;
    store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("printing the status")?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(Exit::Success)
}
