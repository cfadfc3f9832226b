//! What every handler can reach: the service operations, the store for readiness, and the
//! metrics.

use std::ops::Deref;
use std::sync::Arc;

use crate::http::metrics::Metrics;
use crate::service::abuse::limiter::RateLimiter;
use crate::service::accounts::Accounts;
use crate::service::administration::Administration;
use crate::service::auth::Auth;
use crate::service::hashing::PasswordHasher;
use crate::service::health::Health;
use crate::service::recovery::Recovery;
use crate::service::second_factors::SecondFactors;
use crate::service::transfers::Transfers;
use crate::service::wallets::Wallets;

/// What every handler can reach, behind one `Arc`: axum clones the state for every extractor
/// of every request, and cloning the services one by one (dozens of `Arc`s) was a tenth of
/// the CPU time of `GET /v1/me`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services themselves.
pub struct Services {
    pub accounts: Accounts,
    pub admin: Administration,
    pub auth: Auth,
    pub recovery: Recovery,
    pub health: Health,
    pub wallets: Wallets,
    pub transfers: Transfers,
    pub factors: SecondFactors,
    pub hasher: PasswordHasher,
    pub limiter: RateLimiter,
    pub metrics: Arc<Metrics>,
}
