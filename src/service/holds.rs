//! Holds: two-phase transfers. Placing one reserves money in the payer's wallet; capturing it
//! makes a transfer of up to its amount and releases the rest; voiding it, or its expiry,
//! releases it all. A hold leaves `pending` by one conditional update, taken before the
//! wallets are locked, so exactly one of a capture, a void and an expiry racing for it wins;
//! the lock order everywhere is hold, then wallets in id order.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::booking::{book, lock_pair, over_ceiling};
use super::error::Error;
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::ids::new_id;
use crate::domain::money::Amount;
use crate::domain::time::Timestamp;
use crate::domain::wallet::{Hold, HoldStatus, Transfer};
use crate::storage::{Connection, Store, StoreError, audit, holds, wallets};

/// How long a hold lives when the request does not say.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(7 * 86_400);
/// The longest a hold may live.
pub const MAX_EXPIRY: Duration = Duration::from_secs(30 * 86_400);
/// Expired holds released per sweep.
const EXPIRY_BATCH: i64 = 500;

/// A hold to place, checked.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Uuid,
    pub amount: Amount,
    pub expires_in: Duration,
    pub description: Option<String>,
}

/// Places hold `id`.
pub(super) async fn place_in(
    tx: &mut Connection,
    id: Uuid,
    actor: Uuid,
    request: &HoldRequest,
    client: &ClientInfo,
) -> Result<(), Error> {
    let (from, to) = lock_pair(tx, actor, request.from_wallet_id, request.to_wallet_id).await?;
    let now = Timestamp::now();
    if !wallets::reserve(tx, from.id, request.amount.get(), now).await? {
        return Err(Error::InsufficientFunds);
    }
    let hold = Hold {
        id,
        from_wallet_id: from.id,
        to_wallet_id: to.id,
        amount: request.amount.get(),
        currency: from.currency,
        status: HoldStatus::Pending,
        captured_amount: None,
        transfer_id: None,
        description: request.description.clone(),
        expires_at: now.plus(request.expires_in),
        created_at: now,
        updated_at: now,
    };
    holds::insert(tx, &hold).await?;
    let detail = json!({ "hold_id": hold.id, "from_wallet_id": from.id, "to_wallet_id": to.id, "amount": hold.amount });
    audit::insert(tx, &AuditEvent::by_self(EventType::HoldPlaced, actor, client, detail)).await?;
    Ok(())
}

/// The hold, if `actor` pays it (owns its source wallet).
async fn paid_by(tx: &mut Connection, actor: Uuid, id: Uuid) -> Result<Hold, Error> {
    let hold = holds::find(tx, id).await?.ok_or(Error::NotFound)?;
    let payer = wallets::find(tx, hold.from_wallet_id).await?;
    payer.filter(|w| w.owner_id == actor).map(|_| hold).ok_or(Error::NotFound)
}

/// Why a hold could not be ended now: expired, or already ended.
async fn why_not_pending(tx: &mut Connection, id: Uuid, now: Timestamp) -> Error {
    match holds::find(tx, id).await {
        Ok(Some(hold)) if hold.status == HoldStatus::Pending && hold.expires_at <= now => Error::HoldExpired,
        Ok(Some(hold)) if hold.status == HoldStatus::Expired => Error::HoldExpired,
        Ok(_) => Error::HoldNotPending,
        Err(error) => error.into(),
    }
}

pub(super) async fn capture_in(
    tx: &mut Connection,
    actor: Uuid,
    id: Uuid,
    amount: Option<Amount>,
    client: &ClientInfo,
) -> Result<(), Error> {
    let hold = paid_by(tx, actor, id).await?;
    let captured = amount.map_or(hold.amount, Amount::get);
    if captured > hold.amount {
        return Err(Error::invalid("amount", "over_hold", "must be at most the hold's amount"));
    }
    let now = Timestamp::now();
    let transfer_id = new_id();
    if !holds::end(tx, id, HoldStatus::Captured, Some((captured, transfer_id)), now).await? {
        return Err(why_not_pending(tx, id, now).await);
    }
    let (from, to) = lock_pair(tx, actor, hold.from_wallet_id, hold.to_wallet_id).await?;
    let from_after = wallets::settle(tx, from.id, captured, hold.amount, now).await?;
    let transfer = Transfer {
        id: transfer_id,
        from_wallet_id: from.id,
        to_wallet_id: to.id,
        amount: captured,
        currency: hold.currency,
        description: hold.description.clone(),
        created_at: now,
    };
    let to_after = wallets::move_balance(tx, to.id, captured, now).await?.ok_or_else(over_ceiling)?;
    book(tx, actor, &transfer, (from_after, to_after), client).await?;
    let detail = json!({ "hold_id": id, "status": "captured", "captured_amount": captured });
    audit::insert(tx, &AuditEvent::by_self(EventType::HoldEnded, actor, client, detail)).await?;
    Ok(())
}

pub(super) async fn void_in(tx: &mut Connection, actor: Uuid, id: Uuid, client: &ClientInfo) -> Result<(), Error> {
    let hold = paid_by(tx, actor, id).await?;
    let now = Timestamp::now();
    if !holds::end(tx, id, HoldStatus::Voided, None, now).await? {
        return Err(why_not_pending(tx, id, now).await);
    }
    wallets::lock_and_find(tx, hold.from_wallet_id).await?;
    wallets::settle(tx, hold.from_wallet_id, 0, hold.amount, now).await?;
    let detail = json!({ "hold_id": id, "status": "voided" });
    audit::insert(tx, &AuditEvent::by_self(EventType::HoldEnded, actor, client, detail)).await?;
    Ok(())
}

/// A hold as its payer or its payee may read it; anyone else gets `NotFound`.
pub async fn visible_to(store: &Store, actor: Uuid, id: Uuid) -> Result<Hold, Error> {
    let mut conn = store.conn().await?;
    let hold = holds::find(&mut conn, id).await?.ok_or(Error::NotFound)?;
    for wallet in [hold.from_wallet_id, hold.to_wallet_id] {
        if wallets::find(&mut conn, wallet).await?.is_some_and(|w| w.owner_id == actor) {
            return Ok(hold);
        }
    }
    Err(Error::NotFound)
}

/// Releases the holds that expired by `now`, each in a transaction of its own; answers how many
/// this call ended (a capture or a void racing it may win instead).
pub async fn expire_due(store: &Store, now: Timestamp) -> Result<u64, Error> {
    let due = holds::expired(&mut *store.conn().await?, now, EXPIRY_BATCH).await?;
    let mut ended = 0;
    for id in due {
        let mut tx = store.begin().await?;
        // The hold first, then its wallet: the order captures and voids take.
        if !holds::end(&mut tx, id, HoldStatus::Expired, None, now).await? {
            continue;
        }
        let Some(hold) = holds::find(&mut tx, id).await? else { continue };
        let payer = wallets::lock_and_find(&mut tx, hold.from_wallet_id).await?;
        wallets::settle(&mut tx, hold.from_wallet_id, 0, hold.amount, now).await?;
        let detail = json!({ "hold_id": id, "status": "expired" });
        let event =
            AuditEvent::new(EventType::HoldEnded, None, payer.map(|w| w.owner_id), &ClientInfo::default(), detail);
        audit::insert(&mut tx, &event).await?;
        tx.commit().await.map_err(StoreError::from)?;
        ended += 1;
    }
    Ok(ended)
}
