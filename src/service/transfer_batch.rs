//! Transfers on SQLite written by group commit, the way `storage::rotations` writes refresh
//! rotations.
//!
//! SQLite has one writer, and sqlx runs each statement on the connection's own thread: a
//! transfer in a transaction of its own is six round trips to that thread (begin, claim the key,
//! read the wallets, move the balances, book, commit) while every other writer waits. Here the
//! transfers that arrive while a batch is being written wait together and are written as the
//! next batch, in one transaction of five round trips whatever its size: begin, read every
//! wallet of the batch, read which of its keys are recorded already, write (balances in one
//! statement, then keys, transfers, entries and audit events in one call), commit.
//!
//! The transaction holds SQLite's write lock from its start, so the wallets read in it are what
//! its writes change. Each transfer is then decided exactly as in its own transaction, in the
//! order they arrived, on the balances the earlier ones in the batch left: the same checks
//! ([`checked_pair`], [`check_movable`]), and a key recorded already (or by an earlier transfer
//! of the batch) makes the request replay what that one made. A refused transfer records
//! nothing, its key included. A batch that fails answers [`Batched::Retry`] to all of its
//! transfers, which then run alone, so one bad row cannot fail the others.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use uuid::Uuid;

use super::booking::{booking_of, check_movable, checked_pair};
use super::error::Error;
use crate::domain::audit::{AuditEvent, ClientInfo};
use crate::domain::time::Timestamp;
use crate::domain::wallet::{LedgerEntry, Transfer, Wallet};
use crate::storage::group_commit::GroupCommit;
use crate::storage::ledger::{self, KeyClaim};
use crate::storage::{Store, StoreError, wallets};

/// Transfers written in one transaction at most.
const MAX_BATCH: usize = 128;
/// Transfers waiting for the batcher at most; more wait to be queued.
const QUEUE: usize = 4096;

/// One transfer to make: transfer `id` asked by `actor` under `key`, whose request digests to
/// `request_hash`.
#[derive(Debug, Clone)]
pub struct Queued {
    pub actor: Uuid,
    pub key: String,
    pub request_hash: String,
    pub id: Uuid,
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Uuid,
    pub amount: i64,
    pub description: Option<String>,
    pub client: ClientInfo,
}

/// How a queued transfer ended.
#[derive(Debug)]
pub enum Batched {
    /// Written.
    Made(Transfer),
    /// Refused as its own transaction would have refused it; nothing was written.
    Refused(Error),
    /// Its key was recorded already (or earlier in the batch): replay what that request made.
    KeyTaken,
    /// Not written (its batch failed): run it in a transaction of its own.
    Retry,
}

/// The handle requests queue their transfers on.
#[derive(Clone, Debug)]
pub struct TransferBatcher {
    batches: GroupCommit<Queued, Batched>,
}

impl TransferBatcher {
    /// Starts the batcher on `store` (a SQLite store). A request dropped before its batch
    /// starts is not made, and its key stays free for the retry; one dropped later is made, and
    /// its retry replays it.
    pub fn start(store: Store) -> Self {
        let batches = GroupCommit::start(QUEUE, MAX_BATCH, move |batch: Vec<Queued>| {
            let store = store.clone();
            async move {
                let transfers: Vec<&Queued> = batch.iter().collect();
                match write(&store, &transfers).await {
                    Ok(outcomes) => outcomes,
                    // The database could not even be reached: running each alone would only
                    // make every one of them wait for it again.
                    Err(Error::Unavailable(reason)) => {
                        tracing::warn!(%reason, transfers = batch.len(), "a batch of transfers found the database unavailable");
                        batch.iter().map(|_| Batched::Refused(Error::Unavailable(reason.clone()))).collect()
                    }
                    Err(error) => {
                        tracing::warn!(%error, transfers = batch.len(), "a batch of transfers failed; each runs alone");
                        batch.iter().map(|_| Batched::Retry).collect()
                    }
                }
            }
        });
        Self { batches }
    }

    /// Queues `transfer` and waits for its batch to be written.
    pub async fn transfer(&self, transfer: Queued) -> Batched {
        self.batches.submit(transfer).await.unwrap_or(Batched::Retry)
    }
}

/// What a batch writes, gathered as its transfers are decided.
#[derive(Default)]
struct Booked<'a> {
    claims: Vec<KeyClaim<'a>>,
    transfers: Vec<Transfer>,
    entries: Vec<LedgerEntry>,
    events: Vec<AuditEvent>,
    /// Each wallet's net change, in id order.
    moves: BTreeMap<Uuid, i64>,
}

/// Writes one batch in one transaction; answers each transfer's outcome, in order.
async fn write(store: &Store, batch: &[&Queued]) -> Result<Vec<Batched>, Error> {
    let mut tx = store.begin().await?;
    let ids: Vec<Uuid> =
        batch.iter().flat_map(|q| [q.from_wallet_id, q.to_wallet_id]).collect::<BTreeSet<_>>().into_iter().collect();
    let mut books: HashMap<Uuid, Wallet> =
        wallets::lock_and_find_all(&mut tx, &ids).await?.into_iter().map(|w| (w.id, w)).collect();
    let keys: Vec<(Uuid, &str)> = batch.iter().map(|q| (q.actor, q.key.as_str())).collect();
    let mut taken: HashSet<(Uuid, String)> = ledger::recorded_keys(&mut tx, &keys).await?;
    let now = Timestamp::now();
    let mut booked = Booked::default();
    let mut outcomes = Vec::with_capacity(batch.len());
    for queued in batch {
        let key = (queued.actor, queued.key.clone());
        if taken.contains(&key) {
            outcomes.push(Batched::KeyTaken);
            continue;
        }
        match decide(&mut books, queued, now) {
            Ok((transfer, after)) => {
                let (entries, event) = booking_of(queued.actor, &transfer, after, &queued.client);
                booked.claims.push(KeyClaim {
                    actor: queued.actor,
                    key: &queued.key,
                    request_hash: &queued.request_hash,
                    result: transfer.id,
                });
                *booked.moves.entry(transfer.from_wallet_id).or_default() -= transfer.amount;
                *booked.moves.entry(transfer.to_wallet_id).or_default() += transfer.amount;
                booked.entries.extend(entries);
                booked.events.push(event);
                booked.transfers.push(transfer.clone());
                outcomes.push(Batched::Made(transfer));
                taken.insert(key);
            }
            Err(refusal) => outcomes.push(Batched::Refused(refusal)),
        }
    }
    if !booked.transfers.is_empty() {
        // Wallets whose net change is nil are written too, as alone: their `updated_at` moves.
        let moves: Vec<(Uuid, i64)> = booked.moves.into_iter().collect();
        if !wallets::move_many(&mut tx, &moves, now).await? {
            return Err(Error::Retry("the wallets changed under the write lock".into()));
        }
        ledger::book_many(&mut tx, &booked.claims, &booked.transfers, &booked.entries, &booked.events, now).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(outcomes)
}

/// Decides `queued` on the wallets as the batch has left them so far, and moves its money
/// there; answers the transfer and the balances it left.
fn decide(books: &mut HashMap<Uuid, Wallet>, queued: &Queued, now: Timestamp) -> Result<(Transfer, (i64, i64)), Error> {
    let (from, to) = checked_pair(books.get(&queued.from_wallet_id), books.get(&queued.to_wallet_id), queued.actor)?;
    check_movable(from, to, queued.amount)?;
    let after = (from.balance - queued.amount, to.balance + queued.amount);
    let transfer = Transfer {
        id: queued.id,
        from_wallet_id: from.id,
        to_wallet_id: to.id,
        amount: queued.amount,
        currency: from.currency,
        description: queued.description.clone(),
        created_at: now,
    };
    for (id, balance) in [(transfer.from_wallet_id, after.0), (transfer.to_wallet_id, after.1)] {
        if let Some(wallet) = books.get_mut(&id) {
            wallet.balance = balance;
        }
    }
    Ok((transfer, after))
}
