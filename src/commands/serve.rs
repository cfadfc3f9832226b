//! `tessera serve`: run the service until SIGINT or SIGTERM.

use crate::app::Application;
use crate::config::Config;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    tracing::info!(database = %config.database_url.masked(), "starting tessera");
    let app = Application::build(config).await?;
    app.run_until_stopped().await?;
    Ok(())
}
