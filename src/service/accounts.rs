//! Self-service account operations: register, read, edit, change password, delete.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use uuid::Uuid;

use super::abuse::lockout::Lockout;
use super::auth::cache::AuthCache;
use super::error::Error;
use super::hashing::PasswordHasher;
use super::notices::Notices;
use super::profile::{
    ProfilePatchInput, changed_fields, clear_address, keeps_an_identifier, parse_patch, request_address,
};
use crate::domain::audit::ClientInfo;
use crate::domain::audit::{AuditEvent, EventType};
use crate::domain::error::Invalid;
use crate::domain::fields::{Email, Metadata, PersonName, Phone, Username};
use crate::domain::ids::new_id;
use crate::domain::password::Password;
use crate::domain::time::Timestamp;
use crate::domain::user::{Profile, Role, User, UserStatus};
use crate::storage::email_tokens::{self, Purpose};
use crate::storage::{Store, StoreError, audit, second_factors, sessions, users, wallets};
use crate::validated;

/// A registration as received, before any rule is checked.
#[derive(Debug, Default)]
pub struct RegistrationInput {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: SecretString,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub metadata: Option<Value>,
}

/// A registration that passed every rule.
#[derive(Debug)]
pub struct NewAccount {
    profile: Profile,
    password: Password,
    pub role: Role,
    pub status: UserStatus,
    pub email_verified: bool,
}

impl NewAccount {
    /// Checks every field and answers all refusals together. New accounts are active users
    /// with an unverified e-mail; administrators may change that before creating.
    pub fn parse(input: RegistrationInput) -> Result<Self, Error> {
        let identifiers = [input.username.as_deref().unwrap_or(""), input.email.as_deref().unwrap_or("")];
        let password = Password::parse(input.password.expose_secret(), &identifiers).map_err(|e| e.at("password"));
        let username = optional(input.username.as_deref(), Username::parse, "username");
        let email = optional(input.email.as_deref(), Email::parse, "email");
        let phone = optional(input.phone.as_deref(), Phone::parse, "phone");
        let first_name = optional(input.first_name.as_deref(), PersonName::parse, "first_name");
        let last_name = optional(input.last_name.as_deref(), PersonName::parse, "last_name");
        let display_name = optional(input.display_name.as_deref(), PersonName::parse, "display_name");
        let metadata =
            input.metadata.map_or_else(|| Ok(Metadata::default()), Metadata::parse).map_err(|e| e.at("metadata"));
        let identified = if input.username.is_none() && input.email.is_none() {
            Err(Invalid::new("required", "a username or an e-mail is required").at("username"))
        } else {
            Ok(())
        };
        let (password, username, email, phone, first_name, last_name, display_name, metadata, ()) =
            validated!(password, username, email, phone, first_name, last_name, display_name, metadata, identified)?;
        Ok(Self {
            profile: Profile {
                username: username.map(Username::into_inner),
                email: email.map(Email::into_inner),
                phone: phone.map(Phone::into_inner),
                first_name: first_name.map(PersonName::into_inner),
                last_name: last_name.map(PersonName::into_inner),
                display_name: display_name.map(PersonName::into_inner),
                metadata,
            },
            password,
            role: Role::User,
            status: UserStatus::Active,
            email_verified: false,
        })
    }
}

/// Self-service account operations.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    hasher: PasswordHasher,
    cache: Arc<AuthCache>,
    notices: Notices,
    lockout: Lockout,
    require_verification: bool,
}

impl Accounts {
    /// `cache` is told of every change, so this node never serves a stale account. Wrong
    /// passwords confirming a change count toward `lockout`. With `require_verification`, an
    /// account that is not verified at creation needs an e-mail.
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        cache: Arc<AuthCache>,
        notices: Notices,
        lockout: Lockout,
        require_verification: bool,
    ) -> Self {
        Self { store, hasher, cache, notices, lockout, require_verification }
    }

    pub fn notices(&self) -> &Notices {
        &self.notices
    }

    /// Creates an account; `409` when the username or e-mail is taken in any case.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    /// `actor` is the administrator creating the account, `None` for a self-registration.
    pub async fn register(&self, account: NewAccount, actor: Option<Uuid>, client: &ClientInfo) -> Result<User, Error> {
        if self.require_verification && !account.email_verified && account.profile.email.is_none() {
            return Err(Error::invalid("email", "required", "an e-mail address is required: it must be verified"));
        }
        let password_hash = self.hasher.hash(account.password.secret().clone()).await?;
        let now = Timestamp::now();
        let user = User {
            id: new_id(),
            profile: account.profile,
            email_verified_at: account.email_verified.then_some(now),
            role: account.role,
            status: account.status,
            password_hash,
            created_at: now,
            updated_at: now,
            last_login_at: None,
            pending_email: None,
        };
        let mut tx = self.store.begin().await?;
        users::insert(&mut tx, &user).await.map_err(uniqueness)?;
        let event = AuditEvent::new(
            EventType::UserRegistered,
            actor,
            Some(user.id),
            client,
            json!({"role": user.role.as_str()}),
        );
        audit::insert(&mut tx, &event).await?;
        if user.email_verified_at.is_none() {
            self.notices.verification(&mut tx, &user, now).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        tracing::info!(user_id = %user.id, "account registered");
        Ok(user)
    }

    pub async fn get(&self, id: Uuid) -> Result<User, Error> {
        let mut conn = self.store.conn().await?;
        users::find_by_id(&mut conn, id).await?.ok_or(Error::NotFound)
    }

    /// Applies a profile patch; the account must keep a username or an e-mail.
    ///
    /// Changing the e-mail address needs `current_password`, so a stolen access token cannot
    /// move the account to an address its thief reads. A new address becomes the pending one:
    /// a confirmation link goes to it, the current address is told at once and stays the
    /// account's (and the one reset links go to) until the link is followed. Removing the
    /// address takes effect at once. Either way outstanding reset links stop working.
    ///
    /// The row is read under a lock in the writing transaction, so a concurrent change (say, an
    /// administrator's demotion) is never written back over.
    #[tracing::instrument(skip_all, fields(user_id = %id), err(level = "debug"))]
    pub async fn update_profile(
        &self,
        id: Uuid,
        patch: ProfilePatchInput,
        current_password: Option<SecretString>,
        client: &ClientInfo,
    ) -> Result<User, Error> {
        let (edits, email) = parse_patch(patch)?;
        let confirmed_hash = match (&email, current_password) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(Error::invalid("current_password", "required", "is required to change the e-mail address"));
            }
            (Some(_), Some(password)) => {
                let user = self.get(id).await?;
                self.confirm(&user, password, client).await?;
                Some(user.password_hash)
            }
        };
        let now = Timestamp::now();
        let mut tx = self.store.begin().await?;
        let mut user = users::lock_and_find(&mut tx, id).await?.ok_or(Error::NotFound)?;
        if confirmed_hash.is_some_and(|hash| hash != user.password_hash) {
            // The password changed since it was checked: the one given no longer counts.
            return Err(Error::WrongPassword);
        }
        let before = user.clone();
        edits.apply(&mut user.profile);
        let requested = match email {
            Some(Some(new)) => request_address(&mut user, new),
            Some(None) => {
                clear_address(&mut user);
                None
            }
            None => None,
        };
        keeps_an_identifier(&user)?;
        user.updated_at = now;
        if let Some(new) = &requested
            && users::email_taken(&mut tx, new, id).await?
        {
            return Err(Error::EmailTaken);
        }
        users::update(&mut tx, &before.profile, &user).await.map_err(uniqueness)?;
        let event = AuditEvent::by_self(
            EventType::ProfileUpdated,
            id,
            client,
            json!({ "fields": changed_fields(&before, &user) }),
        );
        audit::insert(&mut tx, &event).await?;
        if before.profile.email != user.profile.email {
            email_tokens::invalidate(&mut tx, id, Purpose::ResetPassword, now).await?;
            self.notices.address_changed(&mut tx, &user, before.profile.email.as_deref(), now).await?;
        }
        if let Some(new) = &requested {
            self.notices.address_change_requested(&mut tx, &user, new, now).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        self.cache.forget_user(id);
        Ok(user)
    }

    /// Changes the password after checking the current one; every other session is revoked.
    #[tracing::instrument(skip_all, fields(user_id = %id), err(level = "debug"))]
    pub async fn change_password(
        &self,
        id: Uuid,
        current_session: Uuid,
        current: SecretString,
        new: SecretString,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let user = self.get(id).await?;
        let password = Password::parse(new.expose_secret(), &user.identifiers())
            .map_err(|e| Error::Validation(vec![e.at("new_password")]))?;
        self.confirm(&user, current, client).await?;
        let hash = self.hasher.hash(password.secret().clone()).await?;
        let now = Timestamp::now();
        let mut tx = self.store.begin().await?;
        // Only over the hash the current password was checked against: a reset that landed
        // meanwhile wins, and the old password no longer counts.
        if !users::set_password(&mut tx, id, Some(&user.password_hash), &hash, now).await? {
            return Err(Error::WrongPassword);
        }
        email_tokens::invalidate(&mut tx, id, Purpose::ResetPassword, now).await?;
        let revoked = sessions::revoke_all_except(&mut tx, id, Some(current_session), now).await?;
        // A second step the old password opened ends with it.
        second_factors::delete_mfa_tokens_of(&mut tx, id).await?;
        let event = AuditEvent::by_self(EventType::PasswordChanged, id, client, json!({ "sessions_revoked": revoked }));
        audit::insert(&mut tx, &event).await?;
        self.notices.password_changed(&mut tx, &user, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        self.cache.forget_user(id);
        Ok(())
    }

    /// Deletes the account after checking its password; the last active owner cannot go.
    #[tracing::instrument(skip_all, fields(user_id = %id), err(level = "debug"))]
    pub async fn delete_self(&self, id: Uuid, password: SecretString, client: &ClientInfo) -> Result<(), Error> {
        let user = self.get(id).await?;
        self.confirm(&user, password, client).await?;
        let mut tx = self.store.begin().await?;
        if user.role == Role::Owner {
            users::lock_owners(&mut tx).await?;
            if users::count_active_owners(&mut tx).await? <= 1 && user.status == UserStatus::Active {
                return Err(Error::LastOwner);
            }
        }
        users::lock_row(&mut tx, id).await?;
        // An account still holding money cannot go; its empty wallets close with it.
        if !wallets::delete_all_empty(&mut tx, id, Timestamp::now()).await? {
            return Err(Error::WalletNotEmpty);
        }
        users::delete(&mut tx, id).await?;
        let event =
            AuditEvent::by_self(EventType::UserDeleted, id, client, json!({ "username": user.profile.username }));
        audit::insert(&mut tx, &event).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.cache.forget_user(id);
        tracing::info!(user_id = %id, "account deleted");
        Ok(())
    }

    /// `403 wrong_password` unless `password` is the account's (see [`Lockout::confirm_password`]).
    async fn confirm(&self, user: &User, password: SecretString, client: &ClientInfo) -> Result<(), Error> {
        self.lockout.confirm_password(&self.hasher, user, password, client).await
    }
}

fn optional<T>(
    raw: Option<&str>,
    parse: fn(&str) -> Result<T, Invalid>,
    field: &'static str,
) -> Result<Option<T>, crate::domain::FieldError> {
    raw.map(parse).transpose().map_err(|e| e.at(field))
}

/// Turns a uniqueness conflict into the answer that names the taken field.
pub fn uniqueness(error: StoreError) -> Error {
    if error.is_conflict_on(users::USERNAME_INDEX) {
        Error::UsernameTaken
    } else if error.is_conflict_on(users::EMAIL_INDEX) {
        Error::EmailTaken
    } else {
        error.into()
    }
}
