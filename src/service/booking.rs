//! What every movement of money between two wallets shares: locking both in id order, and
//! booking the transfer with its two entries and its audit event.

use std::borrow::Borrow;

use serde_json::json;
use uuid::Uuid;

use super::error::Error;
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::ids::new_id;
use crate::domain::money::MAX_AMOUNT;
use crate::domain::wallet::{EntryKind, LedgerEntry, Transfer, Wallet, WalletStatus};
use crate::storage::{Connection, ledger, wallets};

/// Both wallets of a movement, locked in id order (one statement), checked by [`checked_pair`].
pub async fn lock_pair(tx: &mut Connection, actor: Uuid, from: Uuid, to: Uuid) -> Result<(Wallet, Wallet), Error> {
    let mut locked = wallets::lock_and_find_all(tx, &[from, to]).await?;
    let mut take = |id: Uuid| locked.iter().position(|w| w.id == id).map(|at| locked.swap_remove(at));
    let (from, to) = (take(from), take(to));
    checked_pair(from, to, actor)
}

/// The two wallets of a movement, if they are two, both exist, the payer is `actor`'s, neither
/// is frozen and they hold one currency.
pub fn checked_pair<W: Borrow<Wallet>>(from: Option<W>, to: Option<W>, actor: Uuid) -> Result<(W, W), Error> {
    let from = from.filter(|w| w.borrow().owner_id == actor).ok_or(Error::NotFound)?;
    let to = to.ok_or(Error::NotFound)?;
    let (payer, payee) = (from.borrow(), to.borrow());
    if payer.id == payee.id {
        return Err(same_wallet());
    }
    if payer.status == WalletStatus::Frozen || payee.status == WalletStatus::Frozen {
        return Err(Error::WalletFrozen);
    }
    if payer.currency != payee.currency {
        return Err(Error::invalid("to_wallet_id", "currency_mismatch", "must hold the same currency"));
    }
    Ok((from, to))
}

/// Whether `amount` can move from `from` to `to` as they stand: the payer's available money
/// (balance less held) covers it and the payee stays at or below 10^15.
pub fn check_movable(from: &Wallet, to: &Wallet, amount: i64) -> Result<(), Error> {
    if from.balance - from.held < amount {
        return Err(Error::InsufficientFunds);
    }
    if to.balance > MAX_AMOUNT - amount {
        return Err(over_ceiling());
    }
    Ok(())
}

/// Writes a transfer that left its payer at `from_after` and its payee at `to_after`, with its
/// two entries and its audit event.
pub async fn book(
    tx: &mut Connection,
    actor: Uuid,
    transfer: &Transfer,
    after: (i64, i64),
    client: &ClientInfo,
) -> Result<(), Error> {
    let (entries, event) = booking_of(actor, transfer, after, client);
    ledger::book(tx, transfer, &entries, &event).await?;
    Ok(())
}

/// A transfer's two entries (the payer's then the payee's, with the balances they left) and its
/// audit event.
pub fn booking_of(
    actor: Uuid,
    transfer: &Transfer,
    (from_after, to_after): (i64, i64),
    client: &ClientInfo,
) -> ([LedgerEntry; 2], AuditEvent) {
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
    (entries, AuditEvent::by_self(EventType::TransferMade, actor, client, detail))
}

/// A movement from a wallet to itself.
pub fn same_wallet() -> Error {
    Error::invalid("to_wallet_id", "same_wallet", "must be another wallet than from_wallet_id")
}

/// A credit that would take a balance past 10^15.
pub fn over_ceiling() -> Error {
    Error::invalid("amount", "balance_limit", "would take a wallet's balance past 10^15 minor units")
}
