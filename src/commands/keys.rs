//! `tessera keys rotate`, `list`, `seal` and `new-master-key`.

use crate::app::key_retention;
use crate::config::Config;
use crate::service::auth::keys;
use crate::service::sealing::{self, Sealer};
use crate::storage::{Store, signing_keys};

/// Makes a new key current. Running nodes pick it up within their reload interval; tokens
/// signed with the old keys keep verifying until they expire.
pub async fn rotate(config: &Config) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    let outcome = async { keys::rotate(&store, &Sealer::new(config.master_key())?, key_retention(config)).await }.await;
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

/// Seals, with the master key, every signing key and server secret stored in clear. Safe to
/// run while nodes serve (they read sealed and clear values alike) and to run again.
pub async fn seal(config: &Config) -> anyhow::Result<()> {
    let Some(master_key) = config.master_key() else {
        anyhow::bail!("set TESSERA_MASTER_KEY (or TESSERA_MASTER_KEY_FILE) to the key to seal with");
    };
    let sealer = Sealer::new(Some(master_key))?;
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    let outcome = async {
        let done = sealing::seal_stored(&store, &sealer).await?;
        // Keys that were ever in clear may be in old backups: a new one, sealed from birth,
        // becomes current, and the old ones only verify until their tokens expire.
        let kid = if done.signing_keys > 0 {
            Some(keys::rotate(&store, &sealer, key_retention(config)).await?)
        } else {
            None
        };
        Ok::<_, crate::service::Error>((done, kid))
    }
    .await;
    store.close().await;
    let (done, kid) = outcome?;
    println!(
        "sealed {} signing keys, {} server secrets and {} TOTP secrets",
        done.signing_keys, done.server_secrets, done.totp_secrets
    );
    if let Some(kid) = kid {
        println!("new signing key {kid} is current; the keys that were in clear retire");
    }
    Ok(())
}

/// Prints a fresh random master key. Keep it outside the database and its backups: without it
/// a sealed database cannot sign or verify tokens.
pub fn new_master_key() {
    use secrecy::ExposeSecret as _;
    println!("{}", sealing::new_master_key().expose_secret());
}
