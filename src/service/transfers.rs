//! Moving money: transfers between wallets and administrators' adjustments, each one database
//! transaction that writes the balances and their ledger entries together, or nothing.
//!
//! Wallet rows are locked in the order of their ids, so two opposite transfers queue instead of
//! deadlocking; a transaction the database still gives up (a deadlock or serialization failure)
//! is run again, a bounded number of times. Every request carries an idempotency key, recorded
//! first in its transaction: a repeat of the request (the same caller, key and body) waits for
//! the first and answers what it made, never doing the work twice; the key with another body is
//! `IdempotencyConflict`.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use serde_json::json;
use uuid::Uuid;

use super::booking::{book, check_movable, lock_pair, over_ceiling, same_wallet};
use super::error::Error;
use super::holds::{self, HoldRequest};
use super::transfer_batch::{Batched, Queued, TransferBatcher};
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::error::Invalid;
use crate::domain::ids::new_id;
use crate::domain::money::{Adjustment, Amount};
use crate::domain::time::Timestamp;
use crate::domain::wallet::{EntryKind, Hold, LedgerEntry, Transfer};
use crate::storage::{Backend, Connection, Store, StoreError, audit, ledger, wallets};

/// Runs of a transaction the database gave up, before the caller is told to try later.
const ATTEMPTS: u32 = 5;
/// Waits for a concurrent request with the same key to record what it made.
const REPLAY_WAITS: u32 = 20;

/// An `Idempotency-Key`: 1–255 visible ASCII characters, unique per caller for a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new("invalid_idempotency_key", "must be 1 to 255 visible ASCII characters"))
        }
    }
}

/// A request under its key: who sent it, and a digest of what it asked (route and body).
#[derive(Debug, Clone)]
pub struct Once {
    pub actor: Uuid,
    pub key: IdempotencyKey,
    pub request_hash: String,
}

/// A transfer to make, checked.
#[derive(Debug, Clone)]
pub struct TransferRequest {
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Uuid,
    pub amount: Amount,
    pub description: Option<String>,
}

/// The work one request under a key does. `id` is what it makes (a transfer, an entry, a
/// hold) or the hold it ends: known before it runs, so the key records it in its first write.
enum Work<'a> {
    Transfer { id: Uuid, request: &'a TransferRequest, client: &'a ClientInfo },
    Adjust { id: Uuid, owner: Uuid, wallet_id: Uuid, amount: Adjustment, reason: &'a str, client: &'a ClientInfo },
    Hold { id: Uuid, request: &'a HoldRequest, client: &'a ClientInfo },
    Capture { id: Uuid, amount: Option<Amount>, client: &'a ClientInfo },
    Void { id: Uuid, client: &'a ClientInfo },
}

/// What a request under a key made: the transfer itself when this request made one, else the
/// id of what it made (or replays), for the caller to read back.
enum Made {
    Transfer(Transfer),
    Id(Uuid),
}

impl Made {
    fn id(&self) -> Uuid {
        match self {
            Self::Transfer(transfer) => transfer.id,
            Self::Id(id) => *id,
        }
    }
}

impl Work<'_> {
    fn id(&self) -> Uuid {
        match self {
            Self::Transfer { id, .. }
            | Self::Adjust { id, .. }
            | Self::Hold { id, .. }
            | Self::Capture { id, .. }
            | Self::Void { id, .. } => *id,
        }
    }
}

/// The ledger's Prometheus figures, registered by the metrics module.
#[derive(Clone, Default)]
pub struct LedgerStats {
    /// Money-moving transactions run again after the database broke a conflict (a deadlock,
    /// a serialization failure or a busy SQLite file).
    pub retries: Counter,
}

#[derive(Clone)]
pub struct Transfers {
    store: Store,
    stats: LedgerStats,
    /// SQLite: transfers are written by group commit.
    batcher: Option<TransferBatcher>,
}

impl Transfers {
    pub fn new(store: Store, stats: LedgerStats) -> Self {
        let batcher = (store.backend() == Backend::Sqlite).then(|| TransferBatcher::start(store.clone()));
        Self { store, stats, batcher }
    }

    /// Moves money from a wallet of the caller's to any open wallet of the same currency.
    pub async fn transfer(
        &self,
        once: &Once,
        request: &TransferRequest,
        client: &ClientInfo,
    ) -> Result<Transfer, Error> {
        if request.from_wallet_id == request.to_wallet_id {
            return Err(same_wallet());
        }
        let id = new_id();
        if let Some(batcher) = &self.batcher {
            match batcher.transfer(queued(once, id, request, client)).await {
                Batched::Made(transfer) => return Ok(transfer),
                Batched::Refused(refusal) => return Err(refusal),
                Batched::KeyTaken => return self.made_by_first(once).await,
                // Its batch failed: it runs alone below.
                Batched::Retry => {}
            }
        }
        match self.run_once(once, &Work::Transfer { id, request, client }).await? {
            Made::Transfer(transfer) => Ok(transfer),
            Made::Id(id) => self.stored_transfer(id).await,
        }
    }

    /// The transfer the first request under `once`'s key made.
    async fn made_by_first(&self, once: &Once) -> Result<Transfer, Error> {
        let id = self.replay(once).await?.id();
        self.stored_transfer(id).await
    }

    async fn stored_transfer(&self, id: Uuid) -> Result<Transfer, Error> {
        ledger::find_transfer(&mut *self.store.conn().await?, id).await?.ok_or(Error::NotFound)
    }

    /// Adds money to (or takes it from) a wallet of `owner`: the only way money enters or
    /// leaves. `reason` is kept on the entry and in the audit trail.
    pub async fn adjust(
        &self,
        once: &Once,
        owner: Uuid,
        wallet_id: Uuid,
        amount: Adjustment,
        reason: &str,
        client: &ClientInfo,
    ) -> Result<LedgerEntry, Error> {
        let work = Work::Adjust { id: new_id(), owner, wallet_id, amount, reason, client };
        let id = self.run_once(once, &work).await?.id();
        ledger::find_entry(&mut *self.store.conn().await?, id).await?.ok_or(Error::NotFound)
    }

    /// Reserves money in a wallet of the caller's for another wallet, until captured, voided or
    /// expired.
    pub async fn place_hold(&self, once: &Once, request: &HoldRequest, client: &ClientInfo) -> Result<Hold, Error> {
        if request.from_wallet_id == request.to_wallet_id {
            return Err(same_wallet());
        }
        let id = self.run_once(once, &Work::Hold { id: new_id(), request, client }).await?.id();
        self.stored_hold(id).await
    }

    /// Turns a pending hold of the caller's into a transfer of `amount` (all of it by
    /// default), releasing the rest.
    pub async fn capture(
        &self,
        once: &Once,
        id: Uuid,
        amount: Option<Amount>,
        client: &ClientInfo,
    ) -> Result<Hold, Error> {
        let id = self.run_once(once, &Work::Capture { id, amount, client }).await?.id();
        self.stored_hold(id).await
    }

    /// Releases a pending hold of the caller's.
    pub async fn void(&self, once: &Once, id: Uuid, client: &ClientInfo) -> Result<Hold, Error> {
        let id = self.run_once(once, &Work::Void { id, client }).await?.id();
        self.stored_hold(id).await
    }

    /// A hold its payer or payee asks for.
    pub async fn hold(&self, actor: Uuid, id: Uuid) -> Result<Hold, Error> {
        holds::visible_to(&self.store, actor, id).await
    }

    async fn stored_hold(&self, id: Uuid) -> Result<Hold, Error> {
        crate::storage::holds::find(&mut *self.store.conn().await?, id).await?.ok_or(Error::NotFound)
    }

    /// Runs `work` in a transaction whose first write records `once`'s key, again after a
    /// conflict the database broke; a key already recorded answers what its request made.
    async fn run_once(&self, once: &Once, work: &Work<'_>) -> Result<Made, Error> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                self.stats.retries.inc();
                tokio::time::sleep(conflict_pause(attempt)).await;
            }
            let mut tx = self.store.begin().await?;
            match self.attempt(&mut tx, once, work).await {
                Ok(Some(made)) => match tx.commit().await.map_err(StoreError::from) {
                    Ok(()) => return Ok(made),
                    Err(StoreError::Retryable(_)) => continue,
                    Err(other) => return Err(other.into()),
                },
                Ok(None) => {
                    drop(tx);
                    return self.replay(once).await;
                }
                Err(Error::Retry(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(Error::Retry(format!("gave up after {ATTEMPTS} conflicts")))
    }

    /// Claims the key and does the work; `None` when the key was taken.
    async fn attempt(&self, tx: &mut Connection, once: &Once, work: &Work<'_>) -> Result<Option<Made>, Error> {
        let (actor, made) = (once.actor, work.id());
        if !ledger::claim_key(tx, actor, &once.key.0, &once.request_hash, made, Timestamp::now()).await? {
            return Ok(None);
        }
        match work {
            Work::Transfer { id, request, client } => {
                return Ok(Some(Made::Transfer(transfer_in(tx, *id, actor, request, client).await?)));
            }
            Work::Adjust { id, owner, wallet_id, amount, reason, client } => {
                let adjustment = Adjusting { entry_id: *id, owner: *owner, wallet_id: *wallet_id, amount: *amount };
                adjust_in(tx, actor, &adjustment, reason, client).await?;
            }
            Work::Hold { id, request, client } => holds::place_in(tx, *id, actor, request, client).await?,
            Work::Capture { id, amount, client } => holds::capture_in(tx, actor, *id, *amount, client).await?,
            Work::Void { id, client } => holds::void_in(tx, actor, *id, client).await?,
        }
        Ok(Some(Made::Id(made)))
    }

    /// What the first request under the key made, once it has recorded it.
    async fn replay(&self, once: &Once) -> Result<Made, Error> {
        for _ in 0..REPLAY_WAITS {
            let record = ledger::find_key(&mut *self.store.conn().await?, once.actor, &once.key.0).await?;
            match record {
                Some(record) if record.request_hash != once.request_hash => return Err(Error::IdempotencyConflict),
                Some(ledger::KeyRecord { result_id: Some(made), .. }) => return Ok(Made::Id(made)),
                // Still running elsewhere (or rolled back just now): look again shortly.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        Err(Error::Retry("the first request under this key has not finished".into()))
    }
}

/// `request` under `once`, as the batcher takes it.
fn queued(once: &Once, id: Uuid, request: &TransferRequest, client: &ClientInfo) -> Queued {
    Queued {
        actor: once.actor,
        key: once.key.0.clone(),
        request_hash: once.request_hash.clone(),
        id,
        from_wallet_id: request.from_wallet_id,
        to_wallet_id: request.to_wallet_id,
        amount: request.amount.get(),
        description: request.description.clone(),
        client: client.clone(),
    }
}

/// Transfer `id` itself, in `tx`: both wallets locked in id order, then checked, then the
/// debit (conditional on funds), the credit, the transfer and its two entries.
async fn transfer_in(
    tx: &mut Connection,
    id: Uuid,
    actor: Uuid,
    request: &TransferRequest,
    client: &ClientInfo,
) -> Result<Transfer, Error> {
    let (from, to) = lock_pair(tx, actor, request.from_wallet_id, request.to_wallet_id).await?;
    let amount = request.amount.get();
    // Both rows are locked: what was read is what the update changes.
    check_movable(&from, &to, amount)?;
    let now = Timestamp::now();
    if !wallets::move_many(tx, &[(from.id, -amount), (to.id, amount)], now).await? {
        return Err(Error::Retry("the wallets changed under their locks".into()));
    }
    let transfer = Transfer {
        id,
        from_wallet_id: from.id,
        to_wallet_id: to.id,
        amount,
        currency: from.currency,
        description: request.description.clone(),
        created_at: now,
    };
    book(tx, actor, &transfer, (from.balance - amount, to.balance + amount), client).await?;
    Ok(transfer)
}

/// An adjustment to make: entry `entry_id` on `owner`'s wallet.
struct Adjusting {
    entry_id: Uuid,
    owner: Uuid,
    wallet_id: Uuid,
    amount: Adjustment,
}

/// The adjustment itself, in `tx`: the wallet locked, the balance moved (a debit only from
/// what is available), one entry, one audit event.
async fn adjust_in(
    tx: &mut Connection,
    actor: Uuid,
    adjustment: &Adjusting,
    reason: &str,
    client: &ClientInfo,
) -> Result<(), Error> {
    let Adjusting { entry_id, owner, wallet_id, amount } = *adjustment;
    wallets::lock_and_find(tx, wallet_id).await?.filter(|w| w.owner_id == owner).ok_or(Error::NotFound)?;
    let now = Timestamp::now();
    let moved = wallets::move_balance(tx, wallet_id, amount.get(), now).await?;
    let balance_after =
        moved.ok_or_else(|| if amount.get() < 0 { Error::InsufficientFunds } else { over_ceiling() })?;
    let entry = LedgerEntry {
        id: entry_id,
        wallet_id,
        amount: amount.get(),
        balance_after,
        kind: EntryKind::Adjustment,
        transfer_id: None,
        description: Some(reason.to_owned()),
        created_at: now,
    };
    ledger::insert_entries(tx, std::slice::from_ref(&entry)).await?;
    let detail = json!({ "wallet_id": wallet_id, "entry_id": entry.id, "amount": amount.get(), "reason": reason });
    let event = AuditEvent::new(EventType::BalanceAdjusted, Some(actor), Some(owner), client, detail);
    audit::insert(tx, &event).await?;
    Ok(())
}

/// How long to wait before the `attempt`th try after a conflict: a random part of 1, 2, 4 and
/// then 8 ms. Transactions that broke each other's locks and retried at once would meet again
/// in the same order; a jittered pause lets one of them finish first.
fn conflict_pause(attempt: u32) -> Duration {
    use rand_core::{OsRng, RngCore as _};
    let ceiling_micros = 1000_u32 << attempt.saturating_sub(1).min(3);
    Duration::from_micros(u64::from(OsRng.next_u32() % ceiling_micros))
}
