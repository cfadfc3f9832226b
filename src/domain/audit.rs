//! The audit trail: what happened to which account, done by whom, from where. Events are
//! written in the same transaction as the change they record, so one never exists without the
//! other; their detail is a small JSON object that never holds a secret.

use serde_json::Value;
use uuid::Uuid;

use super::auth::ClientInfo;
use super::ids::new_id;
use super::time::Timestamp;

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
        }
    }
}

/// One event, ready to be stored.
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
