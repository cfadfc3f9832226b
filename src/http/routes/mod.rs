//! The route groups, each a `Router<AppState>` of its own.

pub mod account_pages;
pub mod audit;
pub mod auth;
pub mod holds;
pub mod me;
pub mod mfa;
pub mod pages;
pub mod passkeys;
pub mod recovery;
pub mod sessions;
pub mod users;
pub mod wallets;
