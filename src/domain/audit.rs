//! The audit trail: what happened to which account, done by whom, from where. Events are
//! written in the same transaction as the change they record, so one never exists without the
//! other; their detail is a small JSON object that never holds a secret.

use serde_json::Value;
use uuid::Uuid;

use super::ids::new_id;
use super::time::Timestamp;

/// Where a request came from: kept on the sessions it opens and the events it causes, for the
/// user to recognise them.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The kinds of event (API.md, "Audit events").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    UserRegistered,
    LoginSucceeded,
    LoginFailed,
    LoggedOut,
    RefreshTokenReused,
    PasswordChanged,
    ProfileUpdated,
    UserDeleted,
    SessionRevoked,
    RoleChanged,
    StatusChanged,
    EmailVerified,
    PasswordReset,
    WalletCreated,
    WalletDeleted,
    TransferMade,
    BalanceAdjusted,
    HoldPlaced,
    HoldEnded,
    SignInLocked,
    SignInUnlocked,
    UsersImported,
    TotpEnabled,
    TotpDisabled,
    PasskeyAdded,
    PasskeyRemoved,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    SecondFactorsReset,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRegistered => "user.registered",
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::LoggedOut => "session.logged_out",
            Self::RefreshTokenReused => "session.refresh_token_reused",
            Self::PasswordChanged => "user.password_changed",
            Self::ProfileUpdated => "user.profile_updated",
            Self::UserDeleted => "user.deleted",
            Self::SessionRevoked => "session.revoked",
            Self::RoleChanged => "user.role_changed",
            Self::StatusChanged => "user.status_changed",
            Self::EmailVerified => "user.email_verified",
            Self::PasswordReset => "user.password_reset",
            Self::WalletCreated => "wallet.created",
            Self::WalletDeleted => "wallet.deleted",
            Self::TransferMade => "wallet.transfer",
            Self::BalanceAdjusted => "wallet.adjusted",
            Self::HoldPlaced => "wallet.hold_placed",
            Self::HoldEnded => "wallet.hold_ended",
            Self::SignInLocked => "login.locked",
            Self::SignInUnlocked => "login.unlocked",
            Self::UsersImported => "users.imported",
            Self::TotpEnabled => "mfa.totp_enabled",
            Self::TotpDisabled => "mfa.totp_disabled",
            Self::PasskeyAdded => "mfa.passkey_added",
            Self::PasskeyRemoved => "mfa.passkey_removed",
            Self::RecoveryCodesRegenerated => "mfa.recovery_codes_regenerated",
            Self::RecoveryCodeUsed => "mfa.recovery_code_used",
            Self::SecondFactorsReset => "mfa.reset",
        }
    }

    pub const ALL: [EventType; 29] = [
        Self::UserRegistered,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoggedOut,
        Self::RefreshTokenReused,
        Self::PasswordChanged,
        Self::ProfileUpdated,
        Self::UserDeleted,
        Self::SessionRevoked,
        Self::RoleChanged,
        Self::StatusChanged,
        Self::EmailVerified,
        Self::PasswordReset,
        Self::WalletCreated,
        Self::WalletDeleted,
        Self::TransferMade,
        Self::BalanceAdjusted,
        Self::HoldPlaced,
        Self::HoldEnded,
        Self::SignInLocked,
        Self::SignInUnlocked,
        Self::UsersImported,
        Self::TotpEnabled,
        Self::TotpDisabled,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::RecoveryCodesRegenerated,
        Self::RecoveryCodeUsed,
        Self::SecondFactorsReset,
    ];

    /// The kind named `text`, as stored.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One event: made by an operation and stored with its change, or read back for the trail.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: Uuid,
    pub kind: EventType,
    /// Who did it (`None`: nobody signed in, e.g. a failed login).
    pub actor_id: Option<Uuid>,
    /// Whose account it concerns.
    pub user_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Value,
    pub created_at: Timestamp,
}

impl AuditEvent {
    /// An event a user caused on their own account.
    pub fn by_self(kind: EventType, user_id: Uuid, client: &ClientInfo, detail: Value) -> Self {
        Self::new(kind, Some(user_id), Some(user_id), client, detail)
    }

    pub fn new(
        kind: EventType,
        actor_id: Option<Uuid>,
        user_id: Option<Uuid>,
        client: &ClientInfo,
        detail: Value,
    ) -> Self {
        Self {
            id: new_id(),
            kind,
            actor_id,
            user_id,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            detail,
            created_at: Timestamp::now(),
        }
    }
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<Uuid>,
    /// An event type as stored (`login.failed`); one that names no type matches nothing.
    pub kind: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventType::parse("user.exploded"), None);
    }
}
