//! Sign-in sessions: one per login, each with its refresh tokens.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::time::Timestamp;
use super::user::{User, UserStatus};

/// A session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    /// When the session ends unless a refresh extends it.
    pub expires_at: Timestamp,
    /// The absolute end, however often it is refreshed.
    pub max_expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// How the sign-in that opened it proved who it was.
    pub proof: SignInProof,
}

/// How a sign-in proved who it was, as RFC 8176 authentication method references (`amr`),
/// which every access token of its session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInProof {
    /// A password alone.
    Password,
    /// A password, then a one-time code (from an authenticator app, or a recovery code).
    PasswordAndCode,
    /// A password, then a passkey.
    PasswordAndPasskey,
    /// A passkey alone. Passkeys are registered and used with user verification (a PIN or a
    /// biometric on the device), so possession and verification make two factors.
    Passkey,
    /// A password, on an account that must add a second factor first (`TESSERA_REQUIRE_MFA`):
    /// the session may only do that.
    EnrolmentOnly,
}

impl SignInProof {
    const ALL: [Self; 5] =
        [Self::Password, Self::PasswordAndCode, Self::PasswordAndPasskey, Self::Passkey, Self::EnrolmentOnly];

    /// The `amr` values ("hwk": proof of possession of a key held by a device).
    pub fn methods(self) -> &'static [&'static str] {
        match self {
            Self::Password | Self::EnrolmentOnly => &["pwd"],
            Self::PasswordAndCode => &["pwd", "otp", "mfa"],
            Self::PasswordAndPasskey => &["pwd", "hwk", "mfa"],
            Self::Passkey => &["hwk", "mfa"],
        }
    }

    /// Whether the sign-in proved more than one factor.
    pub fn is_multi_factor(self) -> bool {
        self.methods().contains(&"mfa")
    }

    /// The token `scope` of a session limited to adding a second factor.
    pub fn scope(self) -> Option<&'static str> {
        (self == Self::EnrolmentOnly).then_some("mfa_enrolment")
    }

    /// As stored: the values, space-separated.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::PasswordAndCode => "pwd otp mfa",
            Self::PasswordAndPasskey => "pwd hwk mfa",
            Self::Passkey => "hwk mfa",
            Self::EnrolmentOnly => "pwd enrol",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|proof| proof.as_str() == stored)
    }
}

/// What a request needs to know about the session behind its access token: the session's
/// window and its user as they were read.
#[derive(Debug, Clone)]
pub struct SessionState {
    pub user: User,
    /// How the session's sign-in proved who it was.
    pub proof: SignInProof,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl SessionState {
    /// Whether a request under this session may proceed at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at > now && self.user.status == UserStatus::Active
    }
}

/// Where a page of sessions (newest first) ends: the last one's creation time and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPosition {
    #[serde(rename = "c")]
    pub created_at: i64,
    #[serde(rename = "sid")]
    pub id: String,
}

impl SessionPosition {
    pub fn after(session: &Session) -> Self {
        Self { created_at: session.created_at.as_micros(), id: session.id.to_string() }
    }
}
