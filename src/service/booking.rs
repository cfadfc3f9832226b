//! What every movement of money between two wallets shares: locking both in id order, and
//! booking the transfer with its two entries and its audit event.

use serde_json::json;
use uuid::Uuid;

use super::error::Error;
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::ids::new_id;
use crate::domain::wallet::{EntryKind, LedgerEntry, Transfer, Wallet, WalletStatus};
use crate::storage::{Connection, ledger, wallets};

/// Both wallets of a movement, locked in id order (one statement), the payer's checked to be
/// `actor`'s.
pub async fn lock_pair(tx: &mut Connection, actor: Uuid, from: Uuid, to: Uuid) -> Result<(Wallet, Wallet), Error> {
    let mut locked = wallets::lock_and_find_all(tx, &[from, to]).await?;
    let mut take = |id: Uuid| locked.iter().position(|w| w.id == id).map(|at| locked.swap_remove(at));
    let from = take(from).filter(|w| w.owner_id == actor).ok_or(Error::NotFound)?;
    let to = take(to).ok_or(Error::NotFound)?;
    if from.status == WalletStatus::Frozen || to.status == WalletStatus::Frozen {
        return Err(Error::WalletFrozen);
    }
    if from.currency != to.currency {
        return Err(Error::invalid("to_wallet_id", "currency_mismatch", "must hold the same currency"));
    }
    Ok((from, to))
}

/// Writes a transfer that left its payer at `from_after` and its payee at `to_after`, with its
/// two entries and its audit event.
pub async fn book(
    tx: &mut Connection,
    actor: Uuid,
    transfer: &Transfer,
    (from_after, to_after): (i64, i64),
    client: &ClientInfo,
) -> Result<(), Error> {
    let (from, to, amount, now) =
        (transfer.from_wallet_id, transfer.to_wallet_id, transfer.amount, transfer.created_at);
    let entries = [(from, -amount, from_after, EntryKind::TransferOut), (to, amount, to_after, EntryKind::TransferIn)]
        .map(|(wallet_id, signed, balance_after, kind)| LedgerEntry {
            id: new_id(),
            wallet_id,
            amount: signed,
            balance_after,
            kind,
            transfer_id: Some(transfer.id),
            description: transfer.description.clone(),
            created_at: now,
        });
    let detail = json!({
        "transfer_id": transfer.id, "from_wallet_id": from, "to_wallet_id": to,
        "amount": amount, "currency": transfer.currency.code(),
    });
    let event = AuditEvent::by_self(EventType::TransferMade, actor, client, detail);
    ledger::book(tx, transfer, &entries, &event).await?;
    Ok(())
}

/// A credit that would take a balance past 10^15.
pub fn over_ceiling() -> Error {
    Error::invalid("amount", "balance_limit", "would take a wallet's balance past 10^15 minor units")
}
