//! `tessera keys rotate` and `tessera keys list`.

use crate::app::key_retention;
use crate::config::Config;
use crate::service::auth::keys;
use crate::storage::{Store, signing_keys};

/// Makes a new key current. Running nodes pick it up within their reload interval; tokens
/// signed with the old keys keep verifying until they expire.
pub async fn rotate(config: &Config) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    let outcome = keys::rotate(&store, key_retention(config)).await;
    store.close().await;
    let kid = outcome?;
    println!("new signing key {kid} is current");
    if config.jwt_secret.is_some() {
        println!("note: TESSERA_JWT_SECRET is set, so tokens are signed with HS256 until it is removed");
    }
    Ok(())
}

/// Prints every stored key: id, algorithm, creation and retirement.
pub async fn list(config: &Config) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    let mut conn = store.conn().await?;
    let stored = signing_keys::list(&mut conn).await;
    drop(conn);
    store.close().await;
    for key in stored? {
        let retired = key.retired_at.map_or_else(|| "current".to_owned(), |t| format!("retired {}", t.to_rfc3339()));
        println!("{}\t{}\tcreated {}\t{retired}", key.kid, key.algorithm, key.created_at.to_rfc3339());
    }
    Ok(())
}
