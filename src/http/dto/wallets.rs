//! The wallet routes' JSON shapes. Amounts are integers in minor units, never floats.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::present;
use crate::domain::wallet::{Hold, LedgerEntry, Transfer, Wallet, WalletKind, WalletStatus};
use crate::http::extract::Checked;

/// A wallet (API.md, "Wallet").
#[derive(Serialize, ToSchema)]
pub struct WalletView {
    pub id: String,
    pub owner_id: String,
    #[schema(example = "USD")]
    pub currency: &'static str,
    /// Digits of the currency's minor unit: 2 for USD.
    pub exponent: u16,
    #[schema(example = "personal")]
    pub kind: &'static str,
    pub description: Option<String>,
    #[schema(example = "active")]
    pub status: &'static str,
    pub balance: i64,
    pub held: i64,
    pub available: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Wallet> for WalletView {
    fn from(wallet: &Wallet) -> Self {
        Self {
            id: wallet.id.to_string(),
            owner_id: wallet.owner_id.to_string(),
            currency: wallet.currency.code(),
            exponent: wallet.currency.exponent(),
            kind: wallet.kind.as_str(),
            description: wallet.description.clone(),
            status: wallet.status.as_str(),
            balance: wallet.balance,
            held: wallet.held,
            available: wallet.available(),
            created_at: wallet.created_at.to_rfc3339(),
            updated_at: wallet.updated_at.to_rfc3339(),
        }
    }
}

/// `{"items": [Wallet]}`.
#[derive(Serialize, ToSchema)]
pub struct WalletList {
    pub items: Vec<WalletView>,
}

/// `POST /v1/me/wallets`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWalletRequest {
    /// An ISO 4217 code with a minor unit, e.g. `USD`.
    #[schema(example = "USD")]
    pub currency: String,
    /// `personal` (the default), `business` or `savings`.
    #[schema(value_type = Option<String>)]
    pub kind: Option<Checked<WalletKind>>,
    /// 1–200 characters.
    pub description: Option<String>,
}

/// `PATCH /v1/me/wallets/{id}`: absent fields stay, a `null` description clears it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWalletRequest {
    /// `personal`, `business` or `savings`.
    #[schema(value_type = Option<String>)]
    pub kind: Option<Checked<WalletKind>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `active` or `frozen`: a frozen wallet neither sends nor receives.
    #[schema(value_type = Option<String>)]
    pub status: Option<Checked<WalletStatus>>,
}

/// A ledger entry (API.md, "LedgerEntry").
#[derive(Serialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: String,
    pub wallet_id: String,
    /// Signed: negative takes money away.
    pub amount: i64,
    pub balance_after: i64,
    /// `adjustment`, `transfer_in` or `transfer_out`.
    pub kind: &'static str,
    pub transfer_id: Option<String>,
    pub description: Option<String>,
    pub created_at: String,
}

impl From<&LedgerEntry> for LedgerEntryView {
    fn from(entry: &LedgerEntry) -> Self {
        Self {
            id: entry.id.to_string(),
            wallet_id: entry.wallet_id.to_string(),
            amount: entry.amount,
            balance_after: entry.balance_after,
            kind: entry.kind.as_str(),
            transfer_id: entry.transfer_id.map(|id| id.to_string()),
            description: entry.description.clone(),
            created_at: entry.created_at.to_rfc3339(),
        }
    }
}

/// A page of ledger entries, newest first.
#[derive(Serialize, ToSchema)]
pub struct EntryPage {
    pub items: Vec<LedgerEntryView>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/transfers`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// A wallet of the caller's.
    pub from_wallet_id: String,
    /// Any open wallet of the same currency.
    pub to_wallet_id: String,
    /// 1 to 10^15 minor units.
    pub amount: i64,
    pub description: Option<String>,
}

/// A transfer made.
#[derive(Serialize, ToSchema)]
pub struct TransferView {
    pub id: String,
    pub from_wallet_id: String,
    pub to_wallet_id: String,
    pub amount: i64,
    pub currency: &'static str,
    pub description: Option<String>,
    pub created_at: String,
}

impl From<&Transfer> for TransferView {
    fn from(transfer: &Transfer) -> Self {
        Self {
            id: transfer.id.to_string(),
            from_wallet_id: transfer.from_wallet_id.to_string(),
            to_wallet_id: transfer.to_wallet_id.to_string(),
            amount: transfer.amount,
            currency: transfer.currency.code(),
            description: transfer.description.clone(),
            created_at: transfer.created_at.to_rfc3339(),
        }
    }
}

/// `POST /v1/users/{ref}/wallets/{id}/adjustments`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    /// Non-zero and signed: positive adds money, negative takes it (only what is available).
    pub amount: i64,
    /// Why, for the ledger and the audit trail: 1–200 characters.
    pub reason: String,
}

/// A hold (API.md, "Hold").
#[derive(Serialize, ToSchema)]
pub struct HoldView {
    pub id: String,
    pub from_wallet_id: String,
    pub to_wallet_id: String,
    pub amount: i64,
    pub currency: &'static str,
    /// `pending`, then exactly one of `captured`, `voided`, `expired`.
    pub status: &'static str,
    pub captured_amount: Option<i64>,
    pub transfer_id: Option<String>,
    pub description: Option<String>,
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Hold> for HoldView {
    fn from(hold: &Hold) -> Self {
        Self {
            id: hold.id.to_string(),
            from_wallet_id: hold.from_wallet_id.to_string(),
            to_wallet_id: hold.to_wallet_id.to_string(),
            amount: hold.amount,
            currency: hold.currency.code(),
            status: hold.status.as_str(),
            captured_amount: hold.captured_amount,
            transfer_id: hold.transfer_id.map(|id| id.to_string()),
            description: hold.description.clone(),
            expires_at: hold.expires_at.to_rfc3339(),
            created_at: hold.created_at.to_rfc3339(),
            updated_at: hold.updated_at.to_rfc3339(),
        }
    }
}

/// `POST /v1/holds`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// A wallet of the caller's.
    pub from_wallet_id: String,
    /// Any open wallet of the same currency.
    pub to_wallet_id: String,
    /// 1 to 10^15 minor units.
    pub amount: i64,
    /// Seconds until the hold expires: 1 to 2,592,000 (30 days) [default: 604,800, 7 days].
    pub expires_in: Option<u64>,
    pub description: Option<String>,
}

/// `POST /v1/holds/{id}/capture`: all of the hold unless `amount` says less.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureBody {
    /// At most the hold's amount; the rest is released.
    pub amount: Option<i64>,
}

/// `POST /v1/holds/{id}/void`: nothing to say.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidBody {}
