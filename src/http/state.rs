//! What every handler can reach: the service operations, the store for readiness, and the
//! metrics.

use std::sync::Arc;

use crate::http::metrics::Metrics;
use crate::service::abuse::limiter::RateLimiter;
use crate::service::accounts::Accounts;
use crate::service::administration::Administration;
use crate::service::auth::Auth;
use crate::service::hashing::PasswordHasher;
use crate::service::health::Health;
use crate::service::recovery::Recovery;
use crate::service::transfers::Transfers;
use crate::service::wallets::Wallets;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Accounts,
    pub admin: Administration,
    pub auth: Auth,
    pub recovery: Recovery,
    pub health: Health,
    pub wallets: Wallets,
    pub transfers: Transfers,
    pub hasher: PasswordHasher,
    pub limiter: RateLimiter,
    pub metrics: Arc<Metrics>,
}
