//! Second factors: TOTP codes from an authenticator app (RFC 6238: SHA-1, six digits, 30-second
//! steps, one step of drift either way) and single-use recovery codes.

use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq as _;
use totp_rs::{Algorithm, TOTP};

use super::error::Invalid;

/// How long a right password waits for its second factor.
pub const MFA_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
/// Recovery codes in a set.
pub const RECOVERY_CODES: usize = 10;
/// Seconds in one TOTP step.
const STEP_SECS: u64 = 30;
/// Bytes of a TOTP secret: 160 bits, as RFC 4226 recommends for SHA-1.
const SECRET_BYTES: usize = 20;
/// Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or off paper is typed right.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// What second factors an account has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Factors {
    pub totp: bool,
    pub passkeys: i64,
    pub recovery_codes_left: i64,
}

impl Factors {
    /// Whether the account has a second factor (recovery codes stand in for one; they are not one).
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }

    /// How many factors the account has: the app counts one, each passkey one.
    pub fn count(&self) -> i64 {
        i64::from(self.totp) + self.passkeys
    }
}

/// Which accounts must have a second factor (`TESSERA_REQUIRE_MFA`). Until they add one they
/// get only a short session that can do nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MfaPolicy {
    #[default]
    None,
    /// Administrators and owners.
    Admin,
    All,
}

impl MfaPolicy {
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "none" => Some(Self::None),
            "admin" => Some(Self::Admin),
            "all" => Some(Self::All),
            _ => None,
        }
    }

    /// Whether an account of `role` must have a second factor.
    pub fn covers(self, role: super::user::Role) -> bool {
        match self {
            Self::None => false,
            Self::Admin => super::ranks::is_administrator(role),
            Self::All => true,
        }
    }
}

/// How long an enrolment-only session lasts, however often it is refreshed.
pub const ENROLMENT_SESSION: Duration = Duration::from_secs(15 * 60);

/// What an account's TOTP secret is sealed to (see `service::sealing`): its row.
pub fn seal_context(user_id: uuid::Uuid) -> String {
    format!("totp_factors:{user_id}")
}

/// A TOTP secret, as the app is given it (base32, RFC 4648, no padding).
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0_u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret from its base32 text; `None` when it is not one.
    pub fn from_base32(text: &str) -> Option<Self> {
        totp_rs::Secret::Encoded(text.to_owned()).to_bytes().ok().map(Self)
    }

    pub fn to_base32(&self) -> String {
        totp_rs::Secret::Raw(self.0.clone()).to_encoded().to_string()
    }

    /// The generator for `account` at `issuer`. totp-rs refuses secrets under 128 bits, which
    /// this one never is.
    fn totp(&self, issuer: &str, account: &str) -> Option<TOTP> {
        // totp-rs refuses a ':' in either name (it separates them in the URL's label).
        let clean = |name: &str| name.replace(':', " ");
        TOTP::new(Algorithm::SHA1, 6, 1, STEP_SECS, self.0.clone(), Some(clean(issuer)), clean(account)).ok()
    }

    /// The `otpauth://` URL an authenticator app scans.
    pub fn otpauth_url(&self, issuer: &str, account: &str) -> Option<String> {
        self.totp(issuer, account).map(|totp| totp.get_url())
    }

    /// The step whose code `code` is, among the step of `unix_secs` and one either side; `None`
    /// when it is none of them. Each candidate is compared in constant time.
    pub fn matching_step(&self, code: &TotpCode, unix_secs: u64) -> Option<u64> {
        let totp = self.totp("tessera", "account")?;
        let now = unix_secs / STEP_SECS;
        let mut found = None;
        for step in now.saturating_sub(1)..=now + 1 {
            let expected = totp.generate(step * STEP_SECS);
            if bool::from(expected.as_bytes().ct_eq(code.0.as_bytes())) {
                found = Some(step);
            }
        }
        found
    }

    /// The code of the step at `unix_secs` (for tests and the hosted page's check).
    pub fn code_at(&self, unix_secs: u64) -> Option<String> {
        self.totp("tessera", "account").map(|totp| totp.generate(unix_secs))
    }
}

/// Six digits, as typed (spaces allowed between them).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(String);

/// Codes are secrets: never in a log.
impl std::fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpCode(…)")
    }
}

impl TotpCode {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let digits: String = raw.chars().filter(|c| *c != ' ').collect();
        if raw.len() <= 16 && digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(digits))
        } else {
            Err(Invalid::new("invalid_code", "must be the 6 digits the authenticator app shows"))
        }
    }
}

/// A recovery code: 16 Crockford base32 characters (80 bits) shown in four groups of four.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

/// Codes are secrets: never in a log.
impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(…)")
    }
}

impl RecoveryCode {
    pub fn generate() -> Self {
        let mut bytes = [0_u8; 16];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes.iter().map(|b| CROCKFORD[usize::from(b & 31)] as char).collect())
    }

    /// A code as typed: case, dashes and spaces do not matter, and the letters Crockford reads
    /// as digits (I, L as 1; O as 0) are taken as those digits.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let invalid = || Invalid::new("invalid_code", "must be a recovery code: 16 letters and digits");
        if raw.len() > 40 {
            return Err(invalid());
        }
        let mut code = String::with_capacity(16);
        for c in raw.chars().filter(|c| !matches!(c, '-' | ' ')) {
            let c = match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                c => c,
            };
            if !CROCKFORD.contains(&(c as u8)) || !c.is_ascii() {
                return Err(invalid());
            }
            code.push(c);
        }
        if code.len() == 16 { Ok(Self(code)) } else { Err(invalid()) }
    }

    /// As shown to the user: `ABCD-EFGH-JKMN-PQRS`.
    pub fn display(&self) -> String {
        let groups: Vec<&str> = (0..4).map(|n| &self.0[n * 4..n * 4 + 4]).collect();
        groups.join("-")
    }

    /// As stored: the hex SHA-256 of the normalised code.
    pub fn digest(&self) -> String {
        super::secrets::sha256_hex(self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_rfc_6238_for_sha1() {
        // RFC 6238, appendix B: the ASCII secret "12345678901234567890", 8-digit codes; the
        // last six digits are the 6-digit code.
        let secret = TotpSecret(b"12345678901234567890".to_vec());
        for (time, eight) in [(59, "94287082"), (1_111_111_109, "07081804"), (2_000_000_000, "69279037")] {
            assert_eq!(secret.code_at(time).as_deref(), Some(&eight[2..]));
        }
        let code = TotpCode::parse("287 082").unwrap();
        assert_eq!(secret.matching_step(&code, 59), Some(1));
        assert_eq!(secret.matching_step(&code, 59 + 30), Some(1), "one step late is accepted");
        assert_eq!(secret.matching_step(&code, 59 + 60), None, "two steps late is not");
        assert!(TotpCode::parse("12345").is_err() && TotpCode::parse("12345a").is_err());
    }

    #[test]
    fn secrets_round_trip_through_base32_and_url() {
        let secret = TotpSecret::generate();
        let text = secret.to_base32();
        assert_eq!(text.len(), 32);
        assert_eq!(TotpSecret::from_base32(&text).map(|s| s.0), Some(secret.0.clone()));
        let url = secret.otpauth_url("tessera: dev", "ada").unwrap();
        assert!(url.starts_with("otpauth://totp/") && url.contains(&text), "{url}");
    }

    #[test]
    fn recovery_codes_are_forgiving_to_type_and_strict_to_match() {
        let code = RecoveryCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 19);
        assert_eq!(RecoveryCode::parse(&shown.to_lowercase()).unwrap(), code);
        assert_eq!(RecoveryCode::parse("0l0i-0000-0000-0000").unwrap().0, "0101000000000000");
        assert!(RecoveryCode::parse("ABCD-EFGH-JKMN-PQR").is_err());
        assert!(RecoveryCode::parse("ABCD-EFGH-JKMN-PQRU").is_err(), "U is not in the alphabet");
        assert!(RecoveryCode::parse("ABCD-EFGH-JKMN-PQRÉ").is_err());
        assert_ne!(RecoveryCode::generate(), code);
    }
}
