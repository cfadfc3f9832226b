//! Why a stored hash cannot be taken.

/// Why a stored hash is not accepted: said per line by the import, and the reason a login
/// against such a hash fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown password hash format")]
    Unknown,
    #[error("malformed password hash: {0}")]
    Malformed(&'static str),
    #[error("password hash too costly to verify: {0}")]
    TooCostly(String),
    #[error("password hash too weak to keep: {0}")]
    TooWeak(String),
}
