//! `serve`, the default command, and `migrate`, its release step.

use crate::Application;
use crate::app::open_store;
use crate::cli::Exit;
use crate::config::Settings;

/// Serves until SIGTERM or SIGINT, then drains (see `Application::run_until_stopped`).
pub async fn serve(settings: Settings) -> anyhow::Result<Exit> {
    Application::build(settings).await?.run_until_stopped().await?;
    Ok(Exit::Success)
}

pub async fn migrate(settings: Settings) -> anyhow::Result<Exit> {
    let store = open_store(&settings.database_url).await?;
    tracing::info!(backend = store.backend(), "migrations applied");
    store.close().await;
    Ok(Exit::Success)
}
