//! Wallets and their ledger: what a wallet is, the entries that change its balance, and the
//! transfers whose two entries cancel.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::money::Currency;
use super::time::Timestamp;

/// What a wallet is for; it changes nothing about how money moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalletKind {
    #[default]
    Personal,
    Business,
    Savings,
}

impl WalletKind {
    pub const ALL: [WalletKind; 3] = [Self::Personal, Self::Business, Self::Savings];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Business => "business",
            Self::Savings => "savings",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// A frozen wallet neither sends nor receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalletStatus {
    Active,
    Frozen,
}

impl WalletStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Frozen => "frozen",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Frozen].into_iter().find(|status| status.as_str() == text)
    }
}

/// A wallet. `balance` is the sum of its entries; `held` the sum of its pending holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub currency: Currency,
    pub kind: WalletKind,
    pub description: Option<String>,
    pub status: WalletStatus,
    pub balance: i64,
    pub held: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Wallet {
    /// What transfers and new holds may spend.
    pub fn available(&self) -> i64 {
        self.balance - self.held
    }

    /// Whether it still holds money, so it (or its owner) cannot go.
    pub fn holds_money(&self) -> bool {
        self.balance != 0 || self.held != 0
    }
}

/// Why a ledger entry changed a balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Adjustment,
    TransferIn,
    TransferOut,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adjustment => "adjustment",
            Self::TransferIn => "transfer_in",
            Self::TransferOut => "transfer_out",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Adjustment, Self::TransferIn, Self::TransferOut].into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One change of one wallet's balance, with the balance it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub amount: i64,
    pub balance_after: i64,
    pub kind: EntryKind,
    pub transfer_id: Option<Uuid>,
    pub description: Option<String>,
    pub created_at: Timestamp,
}

/// Money moved from one wallet to another of the same currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: Uuid,
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Uuid,
    pub amount: i64,
    pub currency: Currency,
    pub description: Option<String>,
    pub created_at: Timestamp,
}

/// Where a page of entries (newest first) ends: ids are time-ordered, so the last id suffices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPosition {
    #[serde(rename = "e")]
    pub id: Uuid,
}

/// Where a hold is in its life: pending until exactly one of the others ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    Pending,
    Captured,
    Voided,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Captured => "captured",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Captured, Self::Voided, Self::Expired].into_iter().find(|s| s.as_str() == text)
    }
}

/// Money reserved in one wallet for another (a two-phase transfer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: Uuid,
    pub from_wallet_id: Uuid,
    pub to_wallet_id: Uuid,
    pub amount: i64,
    pub currency: Currency,
    pub status: HoldStatus,
    pub captured_amount: Option<i64>,
    pub transfer_id: Option<Uuid>,
    pub description: Option<String>,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
