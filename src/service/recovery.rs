//! E-mail verification and password reset: the links [`super::notices`] mails, and what
//! following them does.
//!
//! Resend and forgot answer before anything is looked up: the lookup and the mailing run in
//! a task of their own, so the answer, and its timing, is the same whether or not the
//! account exists. At most [`MAX_PENDING`] such tasks run at once; beyond, a request is
//! dropped (and counted), so a flood cannot pile up tasks without end.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use super::abuse::AbuseStats;
use super::abuse::lockout;
use super::accounts::uniqueness;
use super::auth::cache::AuthCache;
use super::background::Background;
use super::error::Error;
use super::hashing::PasswordHasher;
use super::notices::Notices;
use super::profile::same_mailbox;
use crate::domain::audit::ClientInfo;
use crate::domain::audit::{AuditEvent, EventType};
use crate::domain::password::Password;
use crate::domain::secrets::digest;
use crate::domain::time::Timestamp;
use crate::domain::user::LoginName;
use crate::domain::user::{User, UserStatus};
use crate::storage::email_tokens::{self, Purpose};
use crate::storage::{Store, StoreError, audit, second_factors, sessions, users};

/// Tries of a background mail request before it is given up (and logged as an error).
const BACKGROUND_ATTEMPTS: u32 = 3;
/// Background mail requests in progress at most; more are dropped.
pub const MAX_PENDING: usize = 256;

/// A mail asked for without an account: by address or name, answered before it is looked up.
enum MailRequest {
    Verification(String),
    ResetLink(LoginName),
}

impl MailRequest {
    fn what(&self) -> &'static str {
        match self {
            MailRequest::Verification(_) => "verification resend",
            MailRequest::ResetLink(_) => "password reset request",
        }
    }
}

#[derive(Clone)]
pub struct Recovery {
    store: Store,
    hasher: PasswordHasher,
    cache: Arc<AuthCache>,
    notices: Notices,
    pending: Arc<Semaphore>,
    stats: AbuseStats,
    /// Where mail requests are handled, apart from the HTTP requests that made them.
    background: Background,
}

impl Recovery {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        cache: Arc<AuthCache>,
        notices: Notices,
        stats: AbuseStats,
    ) -> Self {
        let pending = Arc::new(Semaphore::new(MAX_PENDING));
        Self { store, hasher, cache, notices, pending, stats, background: Background::current() }
    }

    /// Follows a link mailed to an address: the account's own address becomes verified, or a
    /// pending address becomes the account's (verified; the old one is told, and reset links
    /// sent to it stop working). A link to an address that is neither any more proves nothing.
    pub async fn verify_email(&self, token: &SecretString, client: &ClientInfo) -> Result<User, Error> {
        let digest = digest(token);
        let now = Timestamp::now();
        let user_id = {
            let mut conn = self.store.conn().await?;
            email_tokens::find_live(&mut conn, &digest, Purpose::VerifyEmail, now).await?.ok_or(Error::InvalidToken)?
        };
        let mut tx = self.store.begin().await?;
        // The account first, then its tokens: the order every change to both takes.
        let mut user = users::lock_and_find(&mut tx, user_id).await?.ok_or(Error::InvalidToken)?;
        let (_, email) =
            email_tokens::consume(&mut tx, &digest, Purpose::VerifyEmail, now).await?.ok_or(Error::InvalidToken)?;
        let before = user.clone();
        let confirms_change =
            user.status == UserStatus::Active && same_mailbox(Some(&email), user.pending_email.as_deref());
        if confirms_change {
            user.profile.email = user.pending_email.take();
        } else if !same_mailbox(Some(&email), user.profile.email.as_deref()) {
            return Err(Error::InvalidToken);
        } else if user.email_verified_at.is_some() {
            tx.commit().await.map_err(StoreError::from)?;
            return Ok(user);
        }
        user.email_verified_at = Some(now);
        user.updated_at = now;
        users::update(&mut tx, &before.profile, &user).await.map_err(uniqueness)?;
        let detail = json!({ "address_changed": confirms_change });
        audit::insert(&mut tx, &AuditEvent::by_self(EventType::EmailVerified, user.id, client, detail)).await?;
        if confirms_change {
            email_tokens::invalidate(&mut tx, user.id, Purpose::ResetPassword, now).await?;
            self.notices.address_changed(&mut tx, &user, before.profile.email.as_deref(), now).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        self.cache.forget_user(user.id);
        Ok(user)
    }

    /// Mails a new verification link to `email` if an active account has it unverified.
    pub fn resend_verification(&self, email: String) {
        self.in_background(MailRequest::Verification(email));
    }

    /// Mails a reset link if an active account with an address has this name; older links
    /// stop working.
    pub fn forgot_password(&self, name: LoginName) {
        self.in_background(MailRequest::ResetLink(name));
    }

    /// Sets a new password with a reset token: the token is used up, every session of the
    /// account ends, and the owner is told. A refused password leaves the token usable.
    pub async fn reset_password(
        &self,
        token: &SecretString,
        new: SecretString,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let digest = digest(token);
        let user = {
            let mut conn = self.store.conn().await?;
            let user_id = email_tokens::find_live(&mut conn, &digest, Purpose::ResetPassword, Timestamp::now())
                .await?
                .ok_or(Error::InvalidToken)?;
            users::find_by_id(&mut conn, user_id).await?.ok_or(Error::InvalidToken)?
        };
        let password = Password::parse(new.expose_secret(), &user.identifiers())
            .map_err(|e| Error::Validation(vec![e.at("new_password")]))?;
        let hash = self.hasher.hash(password.secret().clone()).await?;
        let now = Timestamp::now();
        let mut tx = self.store.begin().await?;
        let user = users::lock_and_find(&mut tx, user.id).await?.ok_or(Error::InvalidToken)?;
        // Used up here, not above: of two resets racing with one token, one wins.
        let (_, mailed_to) =
            email_tokens::consume(&mut tx, &digest, Purpose::ResetPassword, now).await?.ok_or(Error::InvalidToken)?;
        if !same_mailbox(Some(&mailed_to), user.profile.email.as_deref()) {
            // The address changed since this link was mailed: it no longer proves anything.
            return Err(Error::InvalidToken);
        }
        users::set_password(&mut tx, user.id, None, &hash, now).await?;
        // Any other reset link still out there dies with the password it would have replaced.
        email_tokens::invalidate(&mut tx, user.id, Purpose::ResetPassword, now).await?;
        let revoked = sessions::revoke_all_except(&mut tx, user.id, None, now).await?;
        second_factors::delete_mfa_tokens_of(&mut tx, user.id).await?;
        let event =
            AuditEvent::by_self(EventType::PasswordReset, user.id, client, json!({ "sessions_revoked": revoked }));
        audit::insert(&mut tx, &event).await?;
        // Whoever follows the mailed link may sign in at once: a lock an attacker caused ends here.
        lockout::unlock(&mut tx, user.id, Some(user.id), client, false).await?;
        self.notices.password_changed(&mut tx, &user, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        self.cache.forget_user(user.id);
        tracing::info!(user_id = %user.id, "password reset");
        Ok(())
    }

    /// Handles `request` apart from the HTTP request, trying again after a transient failure
    /// (a deadlock, a lost connection) so that an accepted request is not silently dropped.
    fn in_background(&self, request: MailRequest) {
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            self.stats.mail_requests_dropped.inc();
            tracing::debug!("{} dropped: {MAX_PENDING} are already in progress", request.what());
            return;
        };
        let this = self.clone();
        self.background.spawn(async move {
            let _permit = permit;
            for attempt in 1..=BACKGROUND_ATTEMPTS {
                match this.queue_mail(&request).await {
                    Ok(()) => return this.notices.wake(),
                    Err(error) if attempt < BACKGROUND_ATTEMPTS => {
                        tracing::warn!(%error, attempt, "{} failed; trying again", request.what());
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    }
                    Err(error) => tracing::error!(%error, "{} failed; no mail was queued", request.what()),
                }
            }
        });
    }

    /// Looks the account up, then queues the mail in a transaction that only writes, so SQLite
    /// never has to turn a reading transaction into a writing one under contention.
    async fn queue_mail(&self, request: &MailRequest) -> Result<(), StoreError> {
        let verification;
        let login = match request {
            MailRequest::Verification(email) => {
                verification = LoginName::Email(email.clone());
                &verification
            }
            MailRequest::ResetLink(name) => name,
        };
        let Some(user) = users::find_by_login(&mut *self.store.conn().await?, login).await? else { return Ok(()) };
        let verified = user.email_verified_at.is_some();
        if user.status != UserStatus::Active || (verified && matches!(request, MailRequest::Verification(_))) {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        match request {
            MailRequest::Verification(_) => self.notices.verification(&mut tx, &user, Timestamp::now()).await?,
            MailRequest::ResetLink(_) => self.notices.reset_link(&mut tx, &user, Timestamp::now()).await?,
        }
        tx.commit().await.map_err(StoreError::from)
    }
}
