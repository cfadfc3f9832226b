//! `tessera migrate`: apply pending migrations and exit.

use crate::config::Config;
use crate::storage::Store;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 1).await?;
    let applied = store.migrate().await?;
    store.close().await;
    if applied.is_empty() {
        println!("the database schema is up to date");
    } else {
        let versions: Vec<String> = applied.iter().map(ToString::to_string).collect();
        println!("applied migrations: {}", versions.join(", "));
    }
    Ok(())
}
