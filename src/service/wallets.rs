//! A user's wallets: open, read, change, close, and read their ledger. Money moves only
//! through [`super::transfers`].

use serde_json::json;
use uuid::Uuid;

use super::cursor::{Cursors, Page};
use super::error::Error;
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::ids::new_id;
use crate::domain::money::Currency;
use crate::domain::time::Timestamp;
use crate::domain::wallet::{EntryPosition, LedgerEntry, Wallet, WalletKind, WalletStatus};
use crate::storage::{Store, StoreError, audit, ledger, users, wallets};

/// A wallet to open, checked.
#[derive(Debug, Clone)]
pub struct NewWallet {
    pub currency: Currency,
    pub kind: WalletKind,
    pub description: Option<String>,
}

/// What an owner may change: absent stays; a `None` description clears it.
#[derive(Debug, Clone, Default)]
pub struct WalletChanges {
    pub kind: Option<WalletKind>,
    pub description: Option<Option<String>>,
    pub status: Option<WalletStatus>,
}

#[derive(Clone)]
pub struct Wallets {
    store: Store,
    cursors: Cursors,
}

impl Wallets {
    pub fn new(store: Store, cursors: Cursors) -> Self {
        Self { store, cursors }
    }

    /// Opens an empty wallet for `owner`.
    pub async fn create(&self, owner: Uuid, new: NewWallet, client: &ClientInfo) -> Result<Wallet, Error> {
        let now = Timestamp::now();
        let wallet = Wallet {
            id: new_id(),
            owner_id: owner,
            currency: new.currency,
            kind: new.kind,
            description: new.description,
            status: WalletStatus::Active,
            balance: 0,
            held: 0,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.begin().await?;
        // Under the account's lock: a wallet never outlives an account deleted meanwhile.
        users::lock_and_find(&mut tx, owner).await?.ok_or(Error::NotFound)?;
        wallets::insert(&mut tx, &wallet).await?;
        let detail = json!({ "wallet_id": wallet.id, "currency": wallet.currency.code() });
        audit::insert(&mut tx, &AuditEvent::by_self(EventType::WalletCreated, owner, client, detail)).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(wallet)
    }

    /// The owner's open wallets.
    pub async fn list(&self, owner: Uuid) -> Result<Vec<Wallet>, Error> {
        Ok(wallets::list_of(&mut *self.store.conn().await?, owner).await?)
    }

    /// One of the owner's wallets; anyone else's is `NotFound`, as if it did not exist.
    pub async fn get(&self, owner: Uuid, id: Uuid) -> Result<Wallet, Error> {
        let wallet = wallets::find(&mut *self.store.conn().await?, id).await?;
        wallet.filter(|w| w.owner_id == owner).ok_or(Error::NotFound)
    }

    /// Changes kind, description or status, under the wallet's lock.
    pub async fn update(&self, owner: Uuid, id: Uuid, changes: WalletChanges) -> Result<Wallet, Error> {
        let mut tx = self.store.begin().await?;
        let mut wallet =
            wallets::lock_and_find(&mut tx, id).await?.filter(|w| w.owner_id == owner).ok_or(Error::NotFound)?;
        wallet.kind = changes.kind.unwrap_or(wallet.kind);
        wallet.status = changes.status.unwrap_or(wallet.status);
        if let Some(description) = changes.description {
            wallet.description = description;
        }
        wallet.updated_at = Timestamp::now();
        wallets::update_settings(&mut tx, &wallet).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(wallet)
    }

    /// Closes an empty wallet; one holding money (or held money) is `WalletNotEmpty`.
    pub async fn delete(&self, owner: Uuid, id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        let now = Timestamp::now();
        let mut tx = self.store.begin().await?;
        wallets::lock_and_find(&mut tx, id).await?.filter(|w| w.owner_id == owner).ok_or(Error::NotFound)?;
        if !wallets::delete_empty(&mut tx, id, now).await? {
            return Err(Error::WalletNotEmpty);
        }
        let detail = json!({ "wallet_id": id });
        audit::insert(&mut tx, &AuditEvent::by_self(EventType::WalletDeleted, owner, client, detail)).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// A page of the ledger of one of the owner's wallets, newest first.
    pub async fn entries(
        &self,
        owner: Uuid,
        id: Uuid,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<LedgerEntry>, Error> {
        self.get(owner, id).await?;
        let before: Option<EntryPosition> = cursor.map(|c| self.cursors.decode(c)).transpose()?;
        let mut conn = self.store.conn().await?;
        let rows = ledger::list_entries(&mut conn, id, before.as_ref(), i64::from(limit) + 1).await?;
        Ok(self.cursors.page(rows, limit, |entry| EntryPosition { id: entry.id }))
    }
}
