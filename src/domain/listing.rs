//! Listing accounts: the orders a list can take, its filters, and where a page ends. Storage
//! turns these into index ranges; the cursor that carries a [`Position`] is signed by the
//! service.

use serde::{Deserialize, Serialize};

use super::fields::email_key;
use super::time::Timestamp;
use super::user::{Profile, Role, User, UserStatus, username_key};

/// The orders a list can take.
///
/// The names are the query parameter's (`sort=-created_at`) and a cursor's, which records the
/// order it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum UserSort {
    #[default]
    #[serde(rename = "created_at")]
    CreatedAsc,
    #[serde(rename = "-created_at")]
    CreatedDesc,
    #[serde(rename = "username")]
    UsernameAsc,
    #[serde(rename = "-username")]
    UsernameDesc,
}

impl UserSort {
    /// Whether the list runs from the largest key down.
    pub fn descending(self) -> bool {
        matches!(self, Self::CreatedDesc | Self::UsernameDesc)
    }

    /// Whether the key is the account's [`sort_name`] rather than its creation time.
    pub fn by_name(self) -> bool {
        matches!(self, Self::UsernameAsc | Self::UsernameDesc)
    }
}

/// Which accounts to list. `created_after` and `created_before` are exclusive.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
    pub email_verified: Option<bool>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    /// A prefix of a username, e-mail address, first, last or display name, any case.
    pub q: Option<String>,
}

/// Where a page ends: the sort key and id of its last account, in the order it was listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    #[serde(rename = "s")]
    pub sort: UserSort,
    #[serde(rename = "k")]
    pub key: SortKey,
    #[serde(rename = "i")]
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortKey {
    Time(i64),
    Name(String),
}

impl Position {
    /// The position just after `user` in `sort` order.
    pub fn after(user: &User, sort: UserSort) -> Self {
        let key = match sort {
            UserSort::CreatedAsc | UserSort::CreatedDesc => SortKey::Time(user.created_at.as_micros()),
            UserSort::UsernameAsc | UserSort::UsernameDesc => {
                SortKey::Name(sort_name(&user.profile).unwrap_or_default())
            }
        };
        Self { sort, key, id: user.id.to_string() }
    }
}

/// The key of `sort=username`: the lower-cased username, else the e-mail address, so every
/// account has one (registration requires one of the two).
pub fn sort_name(profile: &Profile) -> Option<String> {
    match (&profile.username, &profile.email) {
        (Some(username), _) => Some(username_key(username)),
        (None, Some(email)) => Some(email_key(email)),
        (None, None) => None,
    }
}
