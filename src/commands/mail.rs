//! `tessera mail failed` and `tessera mail retry`: the dead letters, for an operator.

use crate::cli::RetryArgs;
use crate::config::Config;
use crate::domain::time::Timestamp;
use crate::storage::{Store, outbox};

/// Lists the dead letters, oldest first: id, when queued and set aside, attempts, recipient,
/// subject and the last error (never the body, which may hold a link).
pub async fn failed(config: &Config) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    let listed = async { outbox::dead_letters(&mut *store.conn().await?).await }.await;
    store.close().await;
    let letters = listed?;
    for letter in &letters {
        println!(
            "{}\tqueued {}\tset aside {}\t{} attempts\t{}\t{}\t{}",
            letter.id,
            letter.created_at.to_rfc3339(),
            letter.failed_at.to_rfc3339(),
            letter.attempts,
            letter.recipient,
            letter.subject,
            letter.last_error.as_deref().unwrap_or("")
        );
    }
    eprintln!("{} dead letters", letters.len());
    Ok(())
}

/// Requeues the named dead letters, or all of them; running nodes pick them up within a second.
pub async fn retry(config: &Config, args: RetryArgs) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    let ids = (!args.all).then_some(args.ids.as_slice());
    let requeued = store.write(async |conn| outbox::requeue(conn, ids, Timestamp::now()).await).await;
    store.close().await;
    println!("requeued {} mails", requeued?);
    Ok(())
}
