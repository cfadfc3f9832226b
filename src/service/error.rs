//! The outcomes of an operation a caller can be told about, kept apart from the store's own
//! failures.

use crate::domain::error::{FieldError, Invalid};
use crate::storage::StoreError;

/// Everything a service operation can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("username taken")]
    UsernameTaken,
    #[error("email taken")]
    EmailTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("wrong password")]
    WrongPassword,
    #[error("account disabled")]
    AccountDisabled,
    /// A correct password, but the address is not verified and verification is required.
    #[error("e-mail unverified")]
    EmailUnverified,
    #[error("unauthenticated")]
    Unauthenticated,
    /// A refresh, verification or reset token that is unknown, expired or used.
    #[error("invalid token")]
    InvalidToken,
    /// A rotated refresh token presented after the grace period: its session is revoked.
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// A right password on an account with a second factor: the sign-in goes on with the
    /// factor and this single-use token.
    #[error("second factor required")]
    MfaRequired { mfa_token: secrecy::SecretString, methods: Vec<&'static str> },
    /// A session that may only add a second factor (`TESSERA_REQUIRE_MFA`) asked for more.
    #[error("second factor enrolment required")]
    EnrolmentRequired,
    /// A second-factor code that is wrong, or was used already.
    #[error("invalid code")]
    InvalidCode,
    /// A second-factor change that the account's factors do not allow now (`code` says which).
    #[error("second factor state: {0}")]
    FactorState(&'static str),
    /// Too many wrong passwords for this account lately: no password is checked until then.
    #[error("too many attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("last owner")]
    LastOwner,
    /// A page cursor this service did not make (forged, garbled or from elsewhere).
    #[error("bad cursor")]
    BadCursor,
    /// Authenticated, but not allowed (role, rank, another user's resource).
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    /// Spending more than a wallet has available.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// Closing a wallet, or an account, that still holds money.
    #[error("wallet not empty")]
    WalletNotEmpty,
    /// A frozen wallet neither sends nor receives.
    #[error("wallet frozen")]
    WalletFrozen,
    /// A hold past its expiry: it can no longer be captured or voided.
    #[error("hold expired")]
    HoldExpired,
    /// A hold that was already captured, voided or expired.
    #[error("hold not pending")]
    HoldNotPending,
    /// An idempotency key reused with another request.
    #[error("idempotency conflict")]
    IdempotencyConflict,
    /// The database gave up a transaction to break a deadlock or a serialization conflict:
    /// worth running again.
    #[error("transaction conflict: {0}")]
    Retry(String),
    /// The password-hashing pool has more work queued than it may hold.
    #[error("password hashing pool overloaded")]
    Overloaded,
    /// The database cannot be reached or the pool is exhausted: worth retrying. The text is
    /// logged, never shown.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the text is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A store failure, classified for the caller: a missing row is `NotFound`, an outage
/// `Unavailable`, anything else a bug whose cause is kept for the log.
impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound,
            StoreError::Unavailable(source) => Self::Unavailable(source.to_string()),
            StoreError::Retryable(source) => Self::Retry(source.to_string()),
            other => {
                let source = std::error::Error::source(&other).map(ToString::to_string).unwrap_or_default();
                Self::Internal(format!("{other}: {source}"))
            }
        }
    }
}

impl From<FieldError> for Error {
    fn from(error: FieldError) -> Self {
        Self::Validation(vec![error])
    }
}

impl Error {
    /// One refused field.
    pub fn invalid(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self::Validation(vec![Invalid::new(code, message).at(field)])
    }
}

/// Gathers the results of several field checks and answers all refusals at once, so a
/// client sees every problem with its request in one round trip.
///
/// ```text
/// let (name, mail) = validated!(name, mail)?;
/// ```
#[macro_export]
macro_rules! validated {
    ($($field:ident),+ $(,)?) => {{
        let mut errors = ::std::vec::Vec::new();
        $( if let ::std::result::Result::Err(e) = &$field { errors.push(e.clone()); } )+
        if errors.is_empty() {
            ::std::result::Result::Ok(($(match $field {
                ::std::result::Result::Ok(value) => value,
                ::std::result::Result::Err(_) => unreachable!("every error was collected above"),
            }),+))
        } else {
            ::std::result::Result::Err($crate::service::error::Error::Validation(errors))
        }
    }};
}
