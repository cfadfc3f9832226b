//! Passkeys (WebAuthn credentials): their names, the ceremonies that register and use them, and
//! how they are keyed. The cryptography is webauthn-rs's; this is what tessera decides about it.

use std::time::Duration;

use super::error::Invalid;
use super::fields::Note;
use super::secrets::sha256_hex;

/// How long a ceremony (the browser asking the authenticator) may take before it must start again.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// Passkeys one account may register: enough for every device a person owns, and a bound on
/// the list each sign-in reads and on the ceremony state that lists them.
pub const MAX_PASSKEYS: i64 = 10;
/// The most a registered passkey may take, as stored (JSON). An ES256 or Ed25519 passkey takes
/// under 1 KiB and an RSA one under 2 KiB; ten of them must fit a ceremony's state in a
/// MySQL `TEXT` (64 KiB).
pub const MAX_CREDENTIAL_BYTES: usize = 3 * 1024;
/// The name a passkey gets when none is given.
pub const DEFAULT_NAME: &str = "Passkey";

/// What a WebAuthn ceremony was begun for; a challenge serves only its own purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Registering a new passkey on a signed-in account.
    Register,
    /// Signing in with a discoverable passkey alone: no account is known until it answers.
    SignIn,
    /// The second step of a sign-in whose password was right.
    SecondStep,
    /// Proving a factor to a signed-in account's change of its factors.
    StepUp,
}

impl CeremonyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignIn => "sign_in",
            Self::SecondStep => "second_step",
            Self::StepUp => "step_up",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Register, Self::SignIn, Self::SecondStep, Self::StepUp].into_iter().find(|p| p.as_str() == stored)
    }
}

/// A passkey's label, shown in its owner's list: a note's rule (1–200 characters, nothing
/// invisible, no control characters).
pub fn passkey_name(raw: Option<&str>) -> Result<String, Invalid> {
    match raw {
        None => Ok(DEFAULT_NAME.to_owned()),
        Some(raw) => Note::parse(raw).map(Note::into_inner),
    }
}

/// What a credential id is looked up by: its SHA-256 digest, of fixed length whatever the
/// authenticator chose (ids may be up to 1,023 bytes).
pub fn credential_key(credential_id: &[u8]) -> String {
    sha256_hex(credential_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_round_trip_and_names_are_checked() {
        for purpose in
            [CeremonyPurpose::Register, CeremonyPurpose::SignIn, CeremonyPurpose::SecondStep, CeremonyPurpose::StepUp]
        {
            assert_eq!(CeremonyPurpose::parse(purpose.as_str()), Some(purpose));
        }
        assert_eq!(CeremonyPurpose::parse("other"), None);
        assert_eq!(passkey_name(None).ok().as_deref(), Some(DEFAULT_NAME));
        assert_eq!(passkey_name(Some("Laptop")).ok().as_deref(), Some("Laptop"));
        assert!(passkey_name(Some(" ")).is_err());
        assert!(passkey_name(Some("a\u{202E}b")).is_err());
        assert!(passkey_name(Some(&"x".repeat(201))).is_err());
        assert_eq!(credential_key(b"id").len(), 64);
    }
}
