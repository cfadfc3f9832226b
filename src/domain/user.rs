//! The account as the domain sees it, with its role and status.

use serde::Deserialize;
use uuid::Uuid;

use super::error::Invalid;
use super::fields::{Metadata, email_key, plain_text};
use super::time::Timestamp;

/// Which unique identifier a sign-in names.
#[derive(Debug, Clone)]
pub enum LoginName {
    Username(String),
    Email(String),
}

impl LoginName {
    /// A username as typed; control characters are refused, as no account has them.
    pub fn username(raw: String) -> Result<Self, Invalid> {
        plain_text(&raw)?;
        Ok(Self::Username(raw))
    }

    /// An e-mail address as typed; control characters are refused, as no account has them.
    pub fn email(raw: String) -> Result<Self, Invalid> {
        plain_text(&raw)?;
        Ok(Self::Email(raw))
    }

    /// The key the account is indexed by: the username lower-cased, or the address's
    /// [`email_key`].
    pub fn key(&self) -> String {
        match self {
            Self::Username(name) => username_key(name),
            Self::Email(email) => email_key(email),
        }
    }
}

/// The form a username is compared and indexed in (usernames are ASCII).
pub fn username_key(username: &str) -> String {
    username.trim().to_lowercase()
}

/// Roles, ordered by rank: `user` < `admin` < `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::User, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [UserStatus::Active, UserStatus::Disabled].into_iter().find(|status| status.as_str() == text)
    }
}

/// The fields a user may edit about themselves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    pub username: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub metadata: Metadata,
}

/// An account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub profile: Profile,
    pub email_verified_at: Option<Timestamp>,
    /// An address the user asked to change to, not yet confirmed through the link mailed to
    /// it; until then `profile.email` stays the account's address.
    pub pending_email: Option<String>,
    pub role: Role,
    pub status: UserStatus,
    /// A PHC string; never serialised, never logged (`Debug` of the whole user is for tests).
    pub password_hash: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

impl User {
    /// Identifiers a new password must not equal.
    pub fn identifiers(&self) -> [&str; 2] {
        [self.profile.username.as_deref().unwrap_or(""), self.profile.email.as_deref().unwrap_or("")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ranked_and_round_trip() {
        assert!(Role::User < Role::Admin && Role::Admin < Role::Owner);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(UserStatus::parse("disabled"), Some(UserStatus::Disabled));
    }
}
