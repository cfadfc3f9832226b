//! `tessera ledger verify`: recomputes every wallet's balance from its entries and its held
//! amount from its pending holds, and checks that every transfer's two entries cancel. Prints a
//! summary and exits non-zero on any mismatch; shows a progress bar on a terminal, and a line
//! every tenth of the way otherwise.

use std::time::Instant;

use anyhow::bail;

use super::progress::{Progress, Unit};
use crate::config::Config;
use crate::storage::Store;
use crate::storage::ledger::{self, WalletBooks};

/// Wallets checked per batch.
const BATCH: i64 = 1_000;
/// Mismatches printed before the rest are only counted.
const SHOWN: usize = 20;

pub async fn verify(config: &Config) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    let outcome = check(&store).await;
    store.close().await;
    let (wallets, entries, transfers, wrong) = outcome?;
    if wrong > 0 {
        bail!("{wrong} mismatches in {wallets} wallets, {entries} entries and {transfers} transfers");
    }
    println!("ok: {wallets} wallets, {entries} entries and {transfers} transfers agree");
    Ok(())
}

async fn check(store: &Store) -> anyhow::Result<(i64, i64, i64, u64)> {
    let started = Instant::now();
    let mut conn = store.conn().await?;
    let (wallets, entries, transfers) = ledger::sizes(&mut conn).await?;
    let mut progress = Progress::new(u64::try_from(wallets).unwrap_or(0), Unit::Items("wallets"));
    let mut wrong = 0_u64;
    let mut after = None;
    loop {
        let books = ledger::books(&mut conn, after, BATCH).await?;
        let Some(last) = books.last() else { break };
        after = Some(last.id);
        for book in books.iter().filter(|b| b.balance != b.entries || b.held != b.pending_holds) {
            wrong += 1;
            if usize::try_from(wrong).unwrap_or(usize::MAX) <= SHOWN {
                progress.println(mismatch(book));
            }
        }
        progress.advance(books.len() as u64);
    }
    progress.finish();
    let uneven = ledger::uneven_transfers(&mut conn).await?;
    if uneven > 0 {
        eprintln!("{uneven} transfers whose entries do not cancel");
        wrong += u64::try_from(uneven).unwrap_or(0);
    }
    eprintln!("checked in {:.1} s", started.elapsed().as_secs_f64());
    Ok((wallets, entries, transfers, wrong))
}

fn mismatch(book: &WalletBooks) -> String {
    format!(
        "wallet {}: balance {} but entries sum to {}; held {} but pending holds sum to {}",
        book.id, book.balance, book.entries, book.held, book.pending_holds
    )
}
