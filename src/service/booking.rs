//! What every movement of money between two wallets shares: locking both in id order, and
//! booking the transfer with its two entries and its audit event.

use serde_json::json;
use uuid::Uuid;

use super::error::Error;
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::ids::new_id;
use crate::domain::wallet::{EntryKind, LedgerEntry, Transfer, Wallet, WalletStatus};
use crate::storage::{Connection, audit, ledger, wallets};

/// Both wallets of a movement, locked in id order, the payer's checked to be `actor`'s.
pub async fn lock_pair(tx: &mut Connection, actor: Uuid, from: Uuid, to: Uuid) -> Result<(Wallet, Wallet), Error> {
    let (first, second) = if from < to { (from, to) } else { (to, from) };
    let first = wallets::lock_and_find(tx, first).await?;
    let second = wallets::lock_and_find(tx, second).await?;
    let (from, to) = if from < to { (first, second) } else { (second, first) };
    let from = from.filter(|w| w.owner_id == actor).ok_or(Error::NotFound)?;
    let to = to.ok_or(Error::NotFound)?;
    if from.status == WalletStatus::Frozen || to.status == WalletStatus::Frozen {
        return Err(Error::WalletFrozen);
    }
    if from.currency != to.currency {
        return Err(Error::invalid("to_wallet_id", "currency_mismatch", "must hold the same currency"));
    }
    Ok((from, to))
}

/// Credits a transfer whose debit left the payer at `from_after`, and writes it with its two
/// entries and its audit event.
pub async fn book(
    tx: &mut Connection,
    actor: Uuid,
    transfer: &Transfer,
    from_after: i64,
    client: &ClientInfo,
) -> Result<(), Error> {
    let (from, to, amount, now) =
        (transfer.from_wallet_id, transfer.to_wallet_id, transfer.amount, transfer.created_at);
    let to_after = wallets::move_balance(tx, to, amount, now).await?.ok_or_else(over_ceiling)?;
    ledger::insert_transfer(tx, transfer).await?;
    for (wallet_id, signed, balance_after, kind) in
        [(from, -amount, from_after, EntryKind::TransferOut), (to, amount, to_after, EntryKind::TransferIn)]
    {
        let entry = LedgerEntry {
            id: new_id(),
            wallet_id,
            amount: signed,
            balance_after,
            kind,
            transfer_id: Some(transfer.id),
            description: transfer.description.clone(),
            created_at: now,
        };
        ledger::insert_entry(tx, &entry).await?;
    }
    let detail = json!({
        "transfer_id": transfer.id, "from_wallet_id": from, "to_wallet_id": to,
        "amount": amount, "currency": transfer.currency.code(),
    });
    audit::insert(tx, &AuditEvent::by_self(EventType::TransferMade, actor, client, detail)).await?;
    Ok(())
}

/// A credit that would take a balance past 10^15.
pub fn over_ceiling() -> Error {
    Error::invalid("amount", "balance_limit", "would take a wallet's balance past 10^15 minor units")
}
