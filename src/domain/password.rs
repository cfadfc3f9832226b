//! The password policy (API.md, "User"): 8–128 characters counted as Unicode scalar values,
//! not a commonly used password, not the account's own username or e-mail.

use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};

use super::error::Invalid;

/// The 30,000 most common passwords (lower-cased, sorted), from the zxcvbn project (MIT).
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// The entries long enough to pass the length rule: the only ones worth looking up.
static COMMON: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| COMMON_PASSWORDS.lines().filter(|line| line.chars().count() >= Password::MIN_CHARS).collect());

/// A password that passed the policy. Never printed: `Debug` shows a placeholder.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    /// Checks `raw` against the policy; `identifiers` are the account's username and e-mail.
    pub fn parse(raw: &str, identifiers: &[&str]) -> Result<Self, Invalid> {
        let length = raw.chars().count();
        if length < Self::MIN_CHARS {
            return Err(Invalid::new("too_short", "must be at least 8 characters"));
        }
        if length > Self::MAX_CHARS {
            return Err(Invalid::new("too_long", "must be at most 128 characters"));
        }
        let lowered = raw.to_lowercase();
        if identifiers.iter().any(|id| !id.is_empty() && id.trim().to_lowercase() == lowered) {
            return Err(Invalid::new("matches_identifier", "must not be the same as the username or e-mail"));
        }
        if is_common(&lowered) {
            return Err(Invalid::new("too_common", "is one of the most commonly used passwords"));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// Whether the lower-cased `candidate` is on the common-password list.
fn is_common(candidate: &str) -> bool {
    COMMON.binary_search(&candidate).is_ok()
}

/// A password as typed at login or to confirm a change: not checked against the policy
/// (rules change; old passwords must keep working), only bounded in size.
pub fn presented(raw: &str) -> SecretString {
    SecretString::from(raw)
}

/// Whether a presented password is too long to be worth hashing (a cheap DoS guard).
pub fn is_oversized(secret: &SecretString) -> bool {
    secret.expose_secret().len() > Password::MAX_CHARS * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str, ids: &[&str]) -> &'static str {
        Password::parse(raw, ids).err().map(|e| e.code).unwrap_or("ok")
    }

    #[test]
    fn the_list_is_large_and_sorted() {
        assert!(COMMON.len() >= 10_000, "{} entries", COMMON.len());
        assert!(COMMON.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn policy_rules() {
        assert_eq!(code("correct horse battery", &[]), "ok");
        assert_eq!(code("short", &[]), "too_short");
        assert_eq!(code("ééééééé", &[]), "too_short");
        assert_eq!(code("éééééééé", &[]), "ok");
        assert_eq!(code(&"x".repeat(129), &[]), "too_long");
        assert_eq!(code("password", &[]), "too_common");
        assert_eq!(code("PassWord1", &[]), "too_common");
        assert_eq!(code("Ada.Lovelace", &["ada.lovelace"]), "matches_identifier");
        assert_eq!(code("ada@example.com", &["", "ADA@example.com"]), "matches_identifier");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = Password::parse("correct horse battery", &[]);
        let shown = format!("{password:?}");
        assert!(!shown.contains("horse"), "{shown}");
    }
}
