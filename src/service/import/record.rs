//! One account as an import or export file holds it (JSON Lines, or CSV with the same column
//! names): the User fields of API.md plus what moving needs (`password` or `password_hash`,
//! exact timestamps). An export of one tessera imports into another losslessly.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::error::Invalid;
use crate::domain::fields::{Email, Metadata, PersonName, Phone, Username};
use crate::domain::ids::new_id;
use crate::domain::password::Password;
use crate::domain::time::Timestamp;
use crate::domain::user::{Profile, Role, User, UserStatus};
use crate::service::hashing::{FirebaseParams, StoredHash};

/// A line of an import or export file. Every field may be absent; unknown fields are refused,
/// so that a misspelt `pasword_hash` is not silently an account without a password. No `Debug`:
/// it may hold a password.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub username: Option<String>,
    pub email: Option<String>,
    /// `true`/`false`, or in CSV `t`/`f`, `1`/`0`, `true`/`false`.
    pub email_verified: Option<Value>,
    /// When the address was verified (taken over `email_verified` when given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified_at: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    /// A JSON object; in CSV, its JSON text.
    pub metadata: Option<Value>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub last_login_at: Option<String>,
    pub pending_email: Option<String>,
    /// A plain-text password, hashed at import.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A stored hash in any format tessera reads (see `service::hashing::formats`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// A Firebase account's salt (base64): its `password_hash` is then Firebase scrypt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_salt: Option<String>,
}

/// The stored hash of an account without a password (no line's password matches it; the
/// account's owner sets one with a password reset). Django's unusable passwords start with `!`
/// too, and import as this.
pub const NO_PASSWORD: &str = "!";

/// The longest stored hash the `password_hash` column holds.
const MAX_HASH_CHARS: usize = 255;

/// How a line's password becomes the stored hash.
pub enum Secret {
    /// A hash stored as it is, in the format named.
    Ready { hash: String, scheme: &'static str },
    /// A plain-text password, to hash with today's Argon2id.
    Plain(SecretString),
    /// An unsafe digest, to wrap (see `service::hashing::legacy`); `werkzeug`: salted as
    /// Werkzeug did (an HMAC).
    Digest { stored: String, scheme: &'static str, werkzeug: bool },
    /// No password at all.
    None,
}

/// Who made the salted digests of a file (`md5$salt$hex`), which read alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltedDigests {
    /// Django: the digest of salt then password.
    Django,
    /// Werkzeug before 2.3: an HMAC of the password keyed by the salt.
    Werkzeug,
}

/// What a line may carry, set by the import's flags.
#[derive(Debug, Clone, Default)]
pub struct Allowances {
    pub legacy_digests: bool,
    pub salted_digests: Option<SaltedDigests>,
    pub firebase: Option<FirebaseParams>,
}

/// Which profile fields a line has, and when it says the account was last changed: an update
/// overwrites only those, and none if the account changed after that.
#[derive(Debug, Clone, Copy, Default)]
pub struct Present {
    pub phone: bool,
    pub first_name: bool,
    pub last_name: bool,
    pub display_name: bool,
    pub metadata: bool,
    pub updated_at: Option<Timestamp>,
}

/// A checked line: the account it makes, its password, and what it has.
pub struct Account {
    pub user: User,
    pub secret: Secret,
    pub present: Present,
}

impl UserRecord {
    /// The account a tessera export writes for `user`; its hash only when asked.
    pub fn exported(user: &User, with_password_hash: bool) -> Self {
        let p = &user.profile;
        let instant = |t: Timestamp| t.to_rfc3339_exact();
        Self {
            id: Some(user.id),
            username: p.username.clone(),
            email: p.email.clone(),
            email_verified: Some(Value::Bool(user.email_verified_at.is_some())),
            email_verified_at: user.email_verified_at.map(instant),
            phone: p.phone.clone(),
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            display_name: p.display_name.clone(),
            role: Some(user.role.as_str().to_owned()),
            status: Some(user.status.as_str().to_owned()),
            metadata: Some(Value::Object(p.metadata.as_map().clone())),
            created_at: Some(instant(user.created_at)),
            updated_at: Some(instant(user.updated_at)),
            last_login_at: user.last_login_at.map(instant),
            pending_email: user.pending_email.clone(),
            password: None,
            password_hash: with_password_hash.then(|| user.password_hash.clone()),
            password_salt: None,
        }
    }

    /// Checks every field by the rules registration applies (API.md, "User"), except the
    /// password policy: passwords people already have keep working. `now` stands in for a
    /// missing `created_at`. The account's hash is left empty, to be set from the [`Secret`].
    pub fn into_account(self, allow: &Allowances, now: Timestamp) -> Result<Account, String> {
        let secret = self.secret(allow)?;
        let given = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
        let mut present = Present {
            phone: given(&self.phone),
            first_name: given(&self.first_name),
            last_name: given(&self.last_name),
            display_name: given(&self.display_name),
            metadata: !matches!(self.metadata, None | Some(Value::Null)),
            updated_at: None,
        };
        let field = |name: &str, invalid: Invalid| format!("{name}: {}", invalid.message);
        let text = |value: Option<String>| value.filter(|v| !v.is_empty());
        let username = text(self.username)
            .map(|v| Username::parse(&v).map_err(|e| field("username", e)))
            .transpose()?
            .map(Username::into_inner);
        let email = text(self.email)
            .map(|v| Email::parse(&v).map_err(|e| field("email", e)))
            .transpose()?
            .map(Email::into_inner);
        if username.is_none() && email.is_none() {
            return Err("an account needs a username or an email".into());
        }
        let phone = text(self.phone)
            .map(|v| Phone::parse(&v).map_err(|e| field("phone", e)))
            .transpose()?
            .map(Phone::into_inner);
        let name = |label: &str, value: Option<String>| {
            text(value)
                .map(|v| PersonName::parse(&v).map_err(|e| field(label, e)).map(PersonName::into_inner))
                .transpose()
        };
        let metadata = match self.metadata {
            None | Some(Value::Null) => Metadata::default(),
            Some(Value::String(json)) if json.is_empty() => Metadata::default(),
            Some(Value::String(json)) => serde_json::from_str(&json)
                .map_err(|_| "metadata: must be a JSON object".to_owned())
                .and_then(|v| Metadata::parse(v).map_err(|e| field("metadata", e)))?,
            Some(value) => Metadata::parse(value).map_err(|e| field("metadata", e))?,
        };
        let profile = Profile {
            first_name: name("first_name", self.first_name)?,
            last_name: name("last_name", self.last_name)?,
            display_name: name("display_name", self.display_name)?,
            username,
            email,
            phone,
            metadata,
        };
        let role = match text(self.role) {
            Some(role) => Role::parse(&role).ok_or("role: must be user, admin or owner")?,
            None => Role::User,
        };
        let status = match text(self.status) {
            Some(status) => UserStatus::parse(&status).ok_or("status: must be active or disabled")?,
            None => UserStatus::Active,
        };
        let created_at = instant("created_at", self.created_at)?.unwrap_or(now);
        let verified = flag("email_verified", self.email_verified)?;
        let email_verified_at = instant("email_verified_at", self.email_verified_at)?
            .or(verified.then_some(created_at))
            .filter(|_| profile.email.is_some());
        let pending_email = text(self.pending_email)
            .map(|v| Email::parse(&v).map_err(|e| field("pending_email", e)))
            .transpose()?
            .map(Email::into_inner);
        present.updated_at = instant("updated_at", self.updated_at)?;
        let user = User {
            id: self.id.unwrap_or_else(new_id),
            profile,
            email_verified_at,
            pending_email,
            role,
            status,
            password_hash: String::new(),
            created_at,
            updated_at: present.updated_at.unwrap_or(created_at),
            last_login_at: instant("last_login_at", self.last_login_at)?,
        };
        Ok(Account { user, secret, present })
    }

    fn secret(&self, allow: &Allowances) -> Result<Secret, String> {
        let present = |value: &Option<String>| value.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
        match (present(&self.password), present(&self.password_hash), present(&self.password_salt)) {
            (Some(_), Some(_), _) => Err("give either password or password_hash, not both".into()),
            (None, None, _) => Ok(Secret::None),
            (None, Some(hash), None) if hash.starts_with(NO_PASSWORD) => Ok(Secret::None),
            (Some(password), None, _) => {
                if password.chars().count() > Password::MAX_CHARS {
                    return Err(format!("password: must be at most {} characters", Password::MAX_CHARS));
                }
                Ok(Secret::Plain(SecretString::from(password)))
            }
            (None, Some(hash), Some(salt)) => {
                let firebase = allow.firebase.as_ref().ok_or(
                    "a password_salt means a Firebase scrypt hash: give the project's --firebase-signer-key, \
                     --firebase-salt-separator, --firebase-rounds and --firebase-mem-cost",
                )?;
                let hash = firebase.stored_hash(&hash, &salt).map_err(|refusal| refusal.to_string())?;
                ready(hash, "firebase-scrypt")
            }
            (None, Some(hash), None) => {
                let parsed = StoredHash::parse(&hash).map_err(|refusal| refusal.to_string())?;
                let StoredHash::Digest(digest) = parsed else {
                    let scheme = parsed.scheme();
                    return ready(hash, scheme);
                };
                let name = digest.scheme().trim_start_matches("legacy-");
                if !allow.legacy_digests {
                    return Err(format!(
                        "an unsafe {name} digest: pass --allow-legacy-digests to import it wrapped in Argon2id, \
                         upgraded at the next sign-in"
                    ));
                }
                let werkzeug = match (digest.is_salted(), allow.salted_digests) {
                    (false, _) => false,
                    (true, Some(made_by)) => made_by == SaltedDigests::Werkzeug,
                    (true, None) => {
                        return Err(format!(
                            "a salted {name} digest: say who made it with --salted-digests django (digest of \
                             salt then password) or werkzeug (HMAC keyed by the salt, Werkzeug before 2.3)"
                        ));
                    }
                };
                let scheme = if werkzeug { digest.made_by_werkzeug().scheme() } else { digest.scheme() };
                Ok(Secret::Digest { stored: hash, scheme, werkzeug })
            }
        }
    }
}

/// A hash stored as it is, if the column holds it.
fn ready(hash: String, scheme: &'static str) -> Result<Secret, String> {
    if hash.chars().count() > MAX_HASH_CHARS {
        return Err(format!("password_hash: longer than {MAX_HASH_CHARS} characters"));
    }
    Ok(Secret::Ready { hash, scheme })
}

/// A yes-or-no field: JSON booleans, and the spellings CSV exports use.
fn flag(name: &str, value: Option<Value>) -> Result<bool, String> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => Ok(n.as_u64() == Some(1)),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "" | "f" | "false" | "0" | "no" => Ok(false),
            "t" | "true" | "1" | "yes" => Ok(true),
            _ => Err(format!("{name}: must be true or false")),
        },
        Some(_) => Err(format!("{name}: must be true or false")),
    }
}

/// An instant: RFC 3339, or the `2024-01-05 10:00:00[.123456][+00]` that SQL databases print,
/// read as UTC when no offset is given.
fn instant(name: &str, value: Option<String>) -> Result<Option<Timestamp>, String> {
    let Some(text) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else { return Ok(None) };
    let mut normal = text.replacen(' ', "T", 1);
    let time_part = normal.split_once('T').map_or("", |(_, time)| time);
    let has_offset = time_part.ends_with('Z') || time_part.ends_with('z') || time_part.contains(['+', '-']);
    if !has_offset {
        normal.push('Z');
    } else if time_part.rfind(['+', '-']).is_some_and(|at| time_part.len() - at == 3) {
        // `+00`, as PostgreSQL prints a UTC offset: RFC 3339 wants `+00:00`.
        normal.push_str(":00");
    }
    Timestamp::parse_rfc3339(&normal)
        .map(Some)
        .ok_or_else(|| format!("{name}: must be an instant like 2024-01-05T10:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_from_sql_exports_are_read_as_utc() {
        let at = |text: &str| instant("t", Some(text.to_owned())).ok().flatten().map(Timestamp::to_rfc3339_exact);
        assert_eq!(at("2024-01-05T10:00:00Z").as_deref(), Some("2024-01-05T10:00:00Z"));
        assert_eq!(at("2024-01-05 10:00:00").as_deref(), Some("2024-01-05T10:00:00Z"));
        assert_eq!(at("2024-01-05 10:00:00.123456").as_deref(), Some("2024-01-05T10:00:00.123456Z"));
        assert_eq!(at("2024-01-05 12:00:00+02").as_deref(), Some("2024-01-05T10:00:00Z"));
        assert_eq!(at("2024-01-05T12:00:00+02:00").as_deref(), Some("2024-01-05T10:00:00Z"));
        assert!(instant("t", Some("yesterday".into())).is_err());
        assert!(matches!(instant("t", Some(String::new())), Ok(None)));
    }

    #[test]
    fn flags_accept_the_spellings_of_csv_exports() {
        for yes in [Value::Bool(true), Value::from(1), Value::from("t"), Value::from("TRUE")] {
            assert_eq!(flag("f", Some(yes)), Ok(true));
        }
        for no in [Value::Bool(false), Value::from(0), Value::from("f"), Value::from("")] {
            assert_eq!(flag("f", Some(no)), Ok(false));
        }
        assert!(flag("f", Some(Value::from("maybe"))).is_err());
    }
}
