//! The rules of a profile edit, shared by self-service and administration: every field
//! checked at once, the e-mail address changed under each caller's own rule, and what an
//! account must keep.

use serde_json::Value;

use super::error::Error;
use crate::domain::error::Invalid;
use crate::domain::fields::{Email, Metadata, PersonName, Phone, Username, email_key};
use crate::domain::user::{Profile, User};
use crate::validated;

/// Changes to a profile as received: absent leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfilePatchInput {
    pub username: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub display_name: Option<Option<String>>,
    pub metadata: Option<Option<Value>>,
}

/// A patch entry parsed: absent stays absent, `null` clears, a value must pass `parse`.
fn patched<T>(
    raw: Option<Option<String>>,
    parse: fn(&str) -> Result<T, Invalid>,
    field: &'static str,
) -> Result<Option<Option<T>>, crate::domain::FieldError> {
    match raw {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(text)) => parse(&text).map(|v| Some(Some(v))).map_err(|e| e.at(field)),
    }
}

/// The profile fields of a patch, every one checked, except the e-mail address, whose change
/// each caller makes under its own rule.
#[derive(Debug, Default)]
pub struct ProfileEdits {
    username: Option<Option<String>>,
    phone: Option<Option<String>>,
    first_name: Option<Option<String>>,
    last_name: Option<Option<String>>,
    display_name: Option<Option<String>>,
    metadata: Option<Metadata>,
}

impl ProfileEdits {
    /// Writes the edits over `profile`.
    pub fn apply(self, profile: &mut Profile) {
        let slots = [
            (&mut profile.username, self.username),
            (&mut profile.phone, self.phone),
            (&mut profile.first_name, self.first_name),
            (&mut profile.last_name, self.last_name),
            (&mut profile.display_name, self.display_name),
        ];
        for (slot, value) in slots {
            if let Some(value) = value {
                *slot = value;
            }
        }
        if let Some(metadata) = self.metadata {
            profile.metadata = metadata;
        }
    }
}

/// Checks every field of `patch` and answers all refusals together: the profile edits, and
/// the e-mail address asked for (absent, `null` to remove it, or a new one).
pub fn parse_patch(patch: ProfilePatchInput) -> Result<(ProfileEdits, Option<Option<String>>), Error> {
    let username = patched(patch.username, Username::parse, "username");
    let email = patched(patch.email, Email::parse, "email");
    let phone = patched(patch.phone, Phone::parse, "phone");
    let first_name = patched(patch.first_name, PersonName::parse, "first_name");
    let last_name = patched(patch.last_name, PersonName::parse, "last_name");
    let display_name = patched(patch.display_name, PersonName::parse, "display_name");
    let metadata = match patch.metadata {
        None => Ok(None),
        Some(None) => Ok(Some(Metadata::default())),
        Some(Some(value)) => Metadata::parse(value).map(Some).map_err(|e| e.at("metadata")),
    };
    let (username, email, phone, first_name, last_name, display_name, metadata) =
        validated!(username, email, phone, first_name, last_name, display_name, metadata)?;
    let edits = ProfileEdits {
        username: username.map(|v| v.map(Username::into_inner)),
        phone: phone.map(|v| v.map(Phone::into_inner)),
        first_name: first_name.map(|v| v.map(PersonName::into_inner)),
        last_name: last_name.map(|v| v.map(PersonName::into_inner)),
        display_name: display_name.map(|v| v.map(PersonName::into_inner)),
        metadata,
    };
    Ok((edits, email.map(|v| v.map(Email::into_inner))))
}

/// Whether two addresses are the same one (they compare by [`email_key`]).
pub fn same_address(a: Option<&str>, b: Option<&str>) -> bool {
    a.map(email_key) == b.map(email_key)
}

/// Whether two addresses are, beyond doubt, the same mailbox: equal but for ASCII case. Full
/// case folding also joins addresses that may be different mailboxes (`ß` and `ss`), which
/// may not replace each other unconfirmed.
pub fn same_mailbox(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (None, None) => true,
        _ => false,
    }
}

/// Sets `new` as the account's address at once (an administrator's change): unverified, and
/// any pending change is dropped.
pub fn set_address(user: &mut User, new: Option<String>) {
    if !same_address(new.as_deref(), user.profile.email.as_deref()) {
        user.email_verified_at = None;
    }
    user.profile.email = new;
    user.pending_email = None;
}

/// Removes the account's address at once, with any pending change.
pub fn clear_address(user: &mut User) {
    set_address(user, None);
}

/// Asks for `new` to become the account's address; answers it when it is a change to confirm.
/// The current address in another ASCII case is the same mailbox: it is taken as written at
/// once, and drops a pending change.
pub fn request_address(user: &mut User, new: String) -> Option<String> {
    if same_mailbox(Some(&new), user.profile.email.as_deref()) {
        user.profile.email = Some(new);
        user.pending_email = None;
        return None;
    }
    user.pending_email = Some(new.clone());
    Some(new)
}

/// An account must keep a username or an e-mail address to sign in with.
pub fn keeps_an_identifier(user: &User) -> Result<(), Error> {
    if user.profile.username.is_none() && user.profile.email.is_none() {
        return Err(Error::invalid("username", "required", "a username or an e-mail is required"));
    }
    Ok(())
}

/// The names of the fields that differ (never their values: the audit trail records what
/// changed, not personal data).
pub fn changed_fields(before: &User, after: &User) -> Vec<&'static str> {
    let (b, a) = (&before.profile, &after.profile);
    let pairs = [
        ("username", b.username != a.username),
        ("email", b.email != a.email),
        ("pending_email", before.pending_email != after.pending_email),
        ("phone", b.phone != a.phone),
        ("first_name", b.first_name != a.first_name),
        ("last_name", b.last_name != a.last_name),
        ("display_name", b.display_name != a.display_name),
        ("metadata", b.metadata != a.metadata),
    ];
    pairs.into_iter().filter(|(_, changed)| *changed).map(|(name, _)| name).collect()
}
