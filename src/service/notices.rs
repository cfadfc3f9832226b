//! The mails a change causes, queued in the change's own transaction: if the change commits,
//! its mail will go out; if it rolls back, no mail speaks of it.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use tokio::sync::Notify;

use crate::domain::fields::email_key;
use crate::domain::ids::new_id;
use crate::domain::secrets::{digest, new_token};
use crate::domain::time::Timestamp;
use crate::domain::user::User;
use crate::mail::templates::{Branding, Rendered};
use crate::storage::email_tokens::{self, NewToken, Purpose};
use crate::storage::outbox::{self, OutgoingMail};
use crate::storage::{Connection, StoreError, users};

/// Queues mails and the tokens their links carry.
#[derive(Clone)]
pub struct Notices {
    branding: Branding,
    verify_ttl: Duration,
    reset_ttl: Duration,
    wake: Arc<Notify>,
}

impl Notices {
    /// Mails are signed with `branding`; their links live `verify_ttl` and `reset_ttl`. `wake`
    /// is the outbox worker's bell.
    pub fn new(branding: Branding, verify_ttl: Duration, reset_ttl: Duration, wake: Arc<Notify>) -> Self {
        Self { branding, verify_ttl, reset_ttl, wake }
    }

    /// The product name, for pages.
    pub fn product(&self) -> &str {
        &self.branding.product
    }

    /// Tells this node's outbox worker that mail is waiting; call after the commit.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A link to confirm the account's current address (none without one).
    pub async fn verification(&self, conn: &mut Connection, user: &User, now: Timestamp) -> Result<(), StoreError> {
        let Some(email) = user.profile.email.as_deref() else { return Ok(()) };
        let token = self.token(conn, user, Purpose::VerifyEmail, email, now, self.verify_ttl).await?;
        let link = self.branding.link("verify-email", &token);
        let mail = self.branding.verify_email(&greeting(user), &link, self.verify_ttl);
        enqueue_until(conn, email, mail, now, Some(now.plus(self.verify_ttl))).await
    }

    /// A link to choose a new password; older reset links stop working.
    pub async fn reset_link(&self, conn: &mut Connection, user: &User, now: Timestamp) -> Result<(), StoreError> {
        // Read again under the lock: the link goes to the address the account has now.
        let Some(user) = users::lock_and_find(conn, user.id).await? else { return Ok(()) };
        let user = &user;
        let Some(email) = user.profile.email.as_deref() else { return Ok(()) };
        email_tokens::invalidate(conn, user.id, Purpose::ResetPassword, now).await?;
        let token = self.token(conn, user, Purpose::ResetPassword, email, now, self.reset_ttl).await?;
        let link = self.branding.link("reset-password", &token);
        let mail = self.branding.reset_password(&greeting(user), &link, self.reset_ttl);
        enqueue_until(conn, email, mail, now, Some(now.plus(self.reset_ttl))).await
    }

    /// Tells the account's owner that its password changed.
    pub async fn password_changed(&self, conn: &mut Connection, user: &User, now: Timestamp) -> Result<(), StoreError> {
        let Some(email) = user.profile.email.as_deref() else { return Ok(()) };
        enqueue(conn, email, self.branding.password_changed(&greeting(user)), now).await
    }

    /// After the account's address changed (an administrator's change, a removal, or a
    /// confirmed new one): a verification link to the new address unless it is verified, and a
    /// notice to the old one.
    pub async fn address_changed(
        &self,
        conn: &mut Connection,
        user: &User,
        old_email: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let new = user.profile.email.as_deref();
        if old_email.map(email_key) == new.map(email_key) {
            return Ok(());
        }
        if user.email_verified_at.is_none() {
            self.verification(conn, user, now).await?;
        }
        let Some(old) = old_email else { return Ok(()) };
        enqueue(conn, old, self.branding.email_changed(&greeting(user), new), now).await
    }

    /// After the user asked for `new` to become the account's address: the confirmation link to
    /// `new`, and at once a notice to the current address, which stays the account's until then.
    pub async fn address_change_requested(
        &self,
        conn: &mut Connection,
        user: &User,
        new: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let token = self.token(conn, user, Purpose::VerifyEmail, new, now, self.verify_ttl).await?;
        let link = self.branding.link("verify-email", &token);
        let mail = self.branding.confirm_new_email(&greeting(user), &link, self.verify_ttl);
        enqueue_until(conn, new, mail, now, Some(now.plus(self.verify_ttl))).await?;
        let Some(current) = user.profile.email.as_deref() else { return Ok(()) };
        enqueue(conn, current, self.branding.email_change_requested(&greeting(user), new), now).await
    }

    async fn token(
        &self,
        conn: &mut Connection,
        user: &User,
        purpose: Purpose,
        email: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let token = new_token();
        let digest = digest(&token);
        let row =
            NewToken { digest: &digest, user_id: user.id, purpose, email, created_at: now, expires_at: now.plus(ttl) };
        email_tokens::insert(conn, &row).await?;
        Ok(token.expose_secret().to_owned())
    }
}

/// How a mail addresses the account: the name it chose to show, else its username or address.
fn greeting(user: &User) -> String {
    let p = &user.profile;
    p.display_name
        .as_ref()
        .or(p.first_name.as_ref())
        .or(p.username.as_ref())
        .or(p.email.as_ref())
        .cloned()
        .unwrap_or_default()
}

/// Queues a notice: a mail without a link, good for as long as it takes to deliver.
async fn enqueue(conn: &mut Connection, to: &str, mail: Rendered, now: Timestamp) -> Result<(), StoreError> {
    enqueue_until(conn, to, mail, now, None).await
}

/// Queues a mail; one carrying a link is dropped unsent once the link has expired.
async fn enqueue_until(
    conn: &mut Connection,
    to: &str,
    mail: Rendered,
    now: Timestamp,
    expires_at: Option<Timestamp>,
) -> Result<(), StoreError> {
    let outgoing = OutgoingMail {
        id: new_id(),
        recipient: to.to_owned(),
        subject: mail.subject,
        text_body: mail.text,
        html_body: mail.html,
        expires_at,
    };
    outbox::enqueue(conn, &outgoing, now).await
}
