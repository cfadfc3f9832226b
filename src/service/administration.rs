//! Managing other accounts: find, create, edit, disable, delete, and force sign-outs, under the
//! rank rules of [`super::ranks`]. Every change writes its audit event in the same transaction.

use std::sync::Arc;

use serde_json::json;

use super::abuse::lockout;
use super::accounts::{Accounts, NewAccount, uniqueness};
use super::auth::Principal;
use super::auth::cache::AuthCache;
use super::auth::live_sessions;
use super::cursor::{Cursors, Page};
use super::error::Error;
use super::profile::{ProfilePatchInput, changed_fields, keeps_an_identifier, parse_patch, set_address};
use crate::domain::audit::{AuditEvent, EventType};
use crate::domain::audit::{AuditFilter, ClientInfo};
use crate::domain::ids::parse_id;
use crate::domain::ranks::{Action, is_administrator, may_create, permits};
use crate::domain::session::Session;
use crate::domain::time::Timestamp;
use crate::domain::user::{Role, User, UserStatus};
use std::ops::Deref;

use crate::domain::listing::{Position, UserFilter, UserSort};
use crate::domain::user::LoginName;
use crate::storage::email_tokens::{self, Purpose};
use crate::storage::{Store, StoreError, audit, sessions, user_list, users, wallets};

/// An administrator's change to an account: profile fields as in `PATCH /v1/me`, and more.
#[derive(Debug, Default)]
pub struct AccountChanges {
    pub profile: ProfilePatchInput,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
    pub email_verified: Option<bool>,
}

/// A page of `GET /v1/users`.
#[derive(Debug)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next_cursor: Option<String>,
    pub total: Option<i64>,
}

/// A signed-in administrator (`admin` or `owner`). Only [`Administrator::try_from`] makes one,
/// so an operation that takes it needs no second look at the caller's role: what remains for
/// it to check is the rank rules against each target.
#[derive(Debug, Clone)]
pub struct Administrator(Principal);

impl TryFrom<Principal> for Administrator {
    type Error = Error;

    fn try_from(principal: Principal) -> Result<Self, Error> {
        if is_administrator(principal.role) { Ok(Self(principal)) } else { Err(Error::Forbidden) }
    }
}

impl Deref for Administrator {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

/// Administration of accounts other than one's own.
#[derive(Clone)]
pub struct Administration {
    store: Store,
    accounts: Accounts,
    cache: Arc<AuthCache>,
    cursors: Cursors,
}

impl Administration {
    pub fn new(store: Store, accounts: Accounts, cache: Arc<AuthCache>, cursors: Cursors) -> Self {
        Self { store, accounts, cache, cursors }
    }

    /// The account `reference` names (an id or a username), if `actor` may read it.
    pub async fn find(&self, actor: &Administrator, reference: &str) -> Result<User, Error> {
        self.target(actor, reference, Action::Read).await
    }

    /// Creates an account with a role below the actor's own.
    pub async fn create(&self, actor: &Administrator, account: NewAccount, client: &ClientInfo) -> Result<User, Error> {
        if !may_create(actor.role, account.role) {
            return Err(Error::Forbidden);
        }
        self.accounts.register(account, Some(actor.user_id), client).await
    }

    /// Applies `changes`, each part under its own permission; disabling an account signs it
    /// out everywhere.
    pub async fn update(
        &self,
        actor: &Administrator,
        reference: &str,
        changes: AccountChanges,
        client: &ClientInfo,
    ) -> Result<User, Error> {
        let found = self.target(actor, reference, Action::Read).await?;
        let touches_profile = changes.email_verified.is_some() || has_profile_changes(&changes.profile);
        let may = |user: &User| {
            let allowed = |action| permits(actor.role, actor.user_id, action, user.role, user.id);
            let refused = (touches_profile && !allowed(Action::UpdateProfile))
                || changes.role.is_some_and(|role| !allowed(Action::ChangeRole(role)))
                || (changes.status.is_some() && !allowed(Action::ChangeStatus));
            if refused { Err(Error::Forbidden) } else { Ok(()) }
        };
        may(&found)?;
        let (edits, email) = parse_patch(changes.profile)?;
        // One's own address changes only through `PATCH /v1/me`, which asks for the password,
        // and nobody vouches for their own address.
        if found.id == actor.user_id && (email.is_some() || changes.email_verified.is_some()) {
            return Err(Error::Forbidden);
        }
        let now = Timestamp::now();
        let mut tx = self.store.begin().await?;
        let mut user = users::lock_and_find(&mut tx, found.id).await?.ok_or(Error::NotFound)?;
        // The rank rules again, against the row as it is now that it cannot change under us.
        may(&user)?;
        let before = user.clone();
        edits.apply(&mut user.profile);
        if let Some(new) = email {
            set_address(&mut user, new);
        }
        if let Some(verified) = changes.email_verified {
            user.email_verified_at = if verified { user.email_verified_at.or(Some(now)) } else { None };
        }
        keeps_an_identifier(&user)?;
        user.role = changes.role.unwrap_or(user.role);
        user.status = changes.status.unwrap_or(user.status);
        if user.status == UserStatus::Disabled {
            // A disabled account completes no change of address.
            user.pending_email = None;
        }
        user.updated_at = now;
        users::update(&mut tx, &before.profile, &user).await.map_err(uniqueness)?;
        if user.status == UserStatus::Disabled && before.status != UserStatus::Disabled {
            sessions::revoke_all_except(&mut tx, user.id, None, now).await?;
        }
        for event in change_events(actor, &before, &user, client) {
            audit::insert(&mut tx, &event).await?;
        }
        let notices = self.accounts.notices();
        if before.profile.email != user.profile.email {
            email_tokens::invalidate(&mut tx, user.id, Purpose::ResetPassword, now).await?;
            notices.address_changed(&mut tx, &user, before.profile.email.as_deref(), now).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        notices.wake();
        self.cache.forget_user(user.id);
        Ok(user)
    }

    /// Deletes an account of a lower rank.
    pub async fn delete(&self, actor: &Administrator, reference: &str, client: &ClientInfo) -> Result<(), Error> {
        let found = self.target(actor, reference, Action::Delete).await?;
        let mut tx = self.store.begin().await?;
        // Checked again under the lock: the account may have been promoted since.
        let user = users::lock_and_find(&mut tx, found.id).await?.ok_or(Error::NotFound)?;
        if !permits(actor.role, actor.user_id, Action::Delete, user.role, user.id) {
            return Err(Error::Forbidden);
        }
        if !wallets::delete_all_empty(&mut tx, user.id, Timestamp::now()).await? {
            return Err(Error::WalletNotEmpty);
        }
        users::delete(&mut tx, user.id).await?;
        let detail = json!({ "username": user.profile.username, "role": user.role.as_str() });
        audit::insert(
            &mut tx,
            &AuditEvent::new(EventType::UserDeleted, Some(actor.user_id), Some(user.id), client, detail),
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.cache.forget_user(user.id);
        Ok(())
    }

    /// The account's live sessions.
    pub async fn sessions(
        &self,
        actor: &Administrator,
        reference: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Session>, Error> {
        let user = self.target(actor, reference, Action::ListSessions).await?;
        live_sessions(&self.store, &self.cursors, user.id, cursor, limit).await
    }

    /// Signs the account out everywhere, at once.
    pub async fn revoke_sessions(
        &self,
        actor: &Administrator,
        reference: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let user = self.target(actor, reference, Action::RevokeSessions).await?;
        let mut tx = self.store.begin().await?;
        let revoked = sessions::revoke_all_except(&mut tx, user.id, None, Timestamp::now()).await?;
        let detail = json!({ "all": true, "sessions_revoked": revoked });
        audit::insert(
            &mut tx,
            &AuditEvent::new(EventType::SessionRevoked, Some(actor.user_id), Some(user.id), client, detail),
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.cache.forget_user(user.id);
        Ok(())
    }

    /// Clears the sign-in locks on an account (audited, also when there was none).
    pub async fn clear_lockout(
        &self,
        actor: &Administrator,
        reference: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let user = self.target(actor, reference, Action::ClearLockout).await?;
        let mut tx = self.store.begin().await?;
        lockout::unlock(&mut tx, user.id, Some(actor.user_id), client, true).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// A page of accounts matching `filter` in `sort` order, with the total when asked. A
    /// cursor from a list in another order is refused like a forged one.
    pub async fn list(
        &self,
        _admin: &Administrator,
        filter: &UserFilter,
        sort: UserSort,
        cursor: Option<&str>,
        limit: u32,
        include_total: bool,
    ) -> Result<UserPage, Error> {
        let after: Option<Position> = cursor.map(|c| self.cursors.decode(c)).transpose()?;
        if after.as_ref().is_some_and(|position| position.sort != sort) {
            return Err(Error::BadCursor);
        }
        let mut conn = self.store.conn().await?;
        let users = user_list::list(&mut conn, filter, sort, after.as_ref(), i64::from(limit) + 1).await?;
        let page = self.cursors.page(users, limit, |user| Position::after(user, sort));
        let total = if include_total { Some(user_list::count(&mut conn, filter).await?) } else { None };
        Ok(UserPage { users: page.items, next_cursor: page.next_cursor, total })
    }

    /// A page of audit events, newest first, for administrators.
    pub async fn audit_events(
        &self,
        _admin: &Administrator,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AuditEvent>, Error> {
        let before: Option<uuid::Uuid> = cursor.map(|c| self.cursors.decode(c)).transpose()?;
        let mut conn = self.store.conn().await?;
        let events = audit::list(&mut conn, filter, before, i64::from(limit) + 1).await?;
        Ok(self.cursors.page(events, limit, |event| event.id))
    }

    /// Resolves `reference` and checks `action` on it under the rank rules.
    pub async fn target(&self, actor: &Administrator, reference: &str, action: Action) -> Result<User, Error> {
        let mut conn = self.store.conn().await?;
        let user = match parse_id(reference) {
            Some(id) => users::find_by_id(&mut conn, id).await?,
            None => users::find_by_login(&mut conn, &LoginName::Username(reference.to_owned())).await?,
        }
        .ok_or(Error::NotFound)?;
        if permits(actor.role, actor.user_id, action, user.role, user.id) { Ok(user) } else { Err(Error::Forbidden) }
    }
}

fn has_profile_changes(patch: &ProfilePatchInput) -> bool {
    patch.username.is_some()
        || patch.email.is_some()
        || patch.phone.is_some()
        || patch.first_name.is_some()
        || patch.last_name.is_some()
        || patch.display_name.is_some()
        || patch.metadata.is_some()
}

/// One event per kind of change made: profile fields, e-mail verification, role, status.
fn change_events(actor: &Administrator, before: &User, after: &User, client: &ClientInfo) -> Vec<AuditEvent> {
    let event = |kind, detail| AuditEvent::new(kind, Some(actor.user_id), Some(after.id), client, detail);
    let mut fields = changed_fields(before, after);
    if before.email_verified_at.is_some() != after.email_verified_at.is_some() {
        fields.push("email_verified");
    }
    let mut events = Vec::new();
    if !fields.is_empty() {
        events.push(event(EventType::ProfileUpdated, json!({ "fields": fields })));
    }
    if before.role != after.role {
        events.push(event(EventType::RoleChanged, json!({ "from": before.role.as_str(), "to": after.role.as_str() })));
    }
    if before.status != after.status {
        events.push(event(
            EventType::StatusChanged,
            json!({ "from": before.status.as_str(), "to": after.status.as_str() }),
        ));
    }
    events
}
