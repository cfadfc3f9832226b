//! The outcomes a caller can be told about, kept apart from the store's own failures.

use std::borrow::Cow;

use crate::storage::StoreError;

/// Why one input field was refused: a stable `code` and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// Names the field this verdict is about.
    pub fn at(self, field: &'static str) -> FieldError {
        FieldError { field: Cow::Borrowed(field), code: self.code, message: self.message }
    }
}

/// A refused input field, as shown in a problem's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Cow<'static, str>,
    pub code: &'static str,
    pub message: String,
}

/// Everything a domain operation can answer besides success.
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
    /// The password-hashing pool has more work queued than it may hold.
    #[error("password hashing pool overloaded")]
    Overloaded,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an unexpected failure; the text is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
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
            ::std::result::Result::Err($crate::domain::Error::Validation(errors))
        }
    }};
}
