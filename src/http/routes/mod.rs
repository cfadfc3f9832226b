//! The route groups, each a `Router<AppState>` of its own.

pub mod audit;
pub mod auth;
pub mod me;
pub mod sessions;
pub mod users;
