//! The mails a change causes, queued in the change's own transaction: if the change commits,
//! its mail will go out; if it rolls back, no mail speaks of it.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use tokio::sync::Notify;

use super::abuse::AbuseStats;
use crate::domain::fields::email_key;
use crate::domain::ids::new_id;
use crate::domain::secrets::{digest, new_token, sha256_hex};
use crate::domain::time::Timestamp;
use crate::domain::user::User;
use crate::mail::templates::{Branding, Rendered};
use crate::storage::email_tokens::{self, NewToken, Purpose};
use crate::storage::outbox::{self, OutgoingMail};
use crate::storage::rate_limits::{self, Rate, Verdict};
use crate::storage::{Connection, StoreError, users};

/// The window of [`MailSettings::per_address_per_hour`].
const HOUR: Duration = Duration::from_secs(3600);

/// How mails are made.
#[derive(Clone)]
pub struct MailSettings {
    /// What mails are signed with and link to.
    pub branding: Branding,
    /// How long verification links work.
    pub verify_ttl: Duration,
    /// How long reset links work.
    pub reset_ttl: Duration,
    /// Mails with a link (verification, reset) one address may get in an hour: that many at
    /// once, then one every `60 / n` minutes. Beyond, they are dropped unsent; 0 is no limit.
    pub per_address_per_hour: u32,
}

/// Queues mails and the tokens their links carry.
#[derive(Clone)]
pub struct Notices {
    settings: Arc<MailSettings>,
    wake: Arc<Notify>,
    stats: AbuseStats,
}

impl Notices {
    /// `wake` is the outbox worker's bell; `stats` counts the mails the address limit dropped.
    pub fn new(settings: MailSettings, wake: Arc<Notify>, stats: AbuseStats) -> Self {
        Self { settings: Arc::new(settings), wake, stats }
    }

    /// The product name, for pages.
    pub fn product(&self) -> &str {
        &self.settings.branding.product
    }

    /// Tells this node's outbox worker that mail is waiting; call after the commit.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A link to confirm the account's current address (none without one, or when the address
    /// has had its hour's worth).
    pub async fn verification(&self, conn: &mut Connection, user: &User, now: Timestamp) -> Result<(), StoreError> {
        let Some(email) = user.profile.email.as_deref() else { return Ok(()) };
        if !self.within_address_limit(conn, email).await? {
            return Ok(());
        }
        let s = &self.settings;
        let token = self.token(conn, user, Purpose::VerifyEmail, email, now, s.verify_ttl).await?;
        let link = s.branding.link("verify-email", &token);
        let mail = s.branding.verify_email(&greeting(user, email), &link, s.verify_ttl);
        enqueue_until(conn, email, mail, now, Some(now.plus(s.verify_ttl))).await
    }

    /// A link to choose a new password; older reset links stop working.
    pub async fn reset_link(&self, conn: &mut Connection, user: &User, now: Timestamp) -> Result<(), StoreError> {
        // Read again under the lock: the link goes to the address the account has now.
        let Some(user) = users::lock_and_find(conn, user.id).await? else { return Ok(()) };
        let user = &user;
        let Some(email) = user.profile.email.as_deref() else { return Ok(()) };
        if !self.within_address_limit(conn, email).await? {
            return Ok(());
        }
        let s = &self.settings;
        email_tokens::invalidate(conn, user.id, Purpose::ResetPassword, now).await?;
        let token = self.token(conn, user, Purpose::ResetPassword, email, now, s.reset_ttl).await?;
        let link = s.branding.link("reset-password", &token);
        let mail = s.branding.reset_password(&greeting(user, email), &link, s.reset_ttl);
        enqueue_until(conn, email, mail, now, Some(now.plus(s.reset_ttl))).await
    }

    /// Tells the account's owner that its password changed.
    pub async fn password_changed(&self, conn: &mut Connection, user: &User, now: Timestamp) -> Result<(), StoreError> {
        let Some(email) = user.profile.email.as_deref() else { return Ok(()) };
        enqueue(conn, email, self.settings.branding.password_changed(&greeting(user, email)), now).await
    }

    /// Tells the account's owner that its second factors changed (`what`, in a sentence).
    pub async fn second_factor_changed(
        &self,
        conn: &mut Connection,
        user: &User,
        what: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(email) = user.profile.email.as_deref() else { return Ok(()) };
        enqueue(conn, email, self.settings.branding.second_factor_changed(&greeting(user, email), what), now).await
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
        enqueue(conn, old, self.settings.branding.email_changed(&greeting(user, old), new), now).await
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
        let s = &self.settings;
        if self.within_address_limit(conn, new).await? {
            let token = self.token(conn, user, Purpose::VerifyEmail, new, now, s.verify_ttl).await?;
            let link = s.branding.link("verify-email", &token);
            let mail = s.branding.confirm_new_email(&greeting(user, new), &link, s.verify_ttl);
            enqueue_until(conn, new, mail, now, Some(now.plus(s.verify_ttl))).await?;
        }
        let Some(current) = user.profile.email.as_deref() else { return Ok(()) };
        enqueue(conn, current, s.branding.email_change_requested(&greeting(user, current), new), now).await
    }

    /// Whether `address` may get one more mail with a link this hour; counted in the mail's own
    /// transaction, so a mail that is not queued after all is not counted either. A refusal is
    /// counted in the metrics and otherwise silent: the request that caused it answers the same.
    async fn within_address_limit(&self, conn: &mut Connection, address: &str) -> Result<bool, StoreError> {
        let per_hour = self.settings.per_address_per_hour;
        if per_hour == 0 {
            return Ok(true);
        }
        let bucket = format!("mail:{}", sha256_hex(email_key(address).as_bytes()));
        match rate_limits::take(conn, &bucket, Rate::per(per_hour, HOUR)).await? {
            Verdict::Admitted => Ok(true),
            Verdict::Refused(_) => {
                self.stats.mails_over_address_limit.inc();
                tracing::info!("a mail with a link was dropped: its address had its hour's worth");
                Ok(false)
            }
        }
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

/// How a mail to `to` addresses the account: the name it chose to show, else its username,
/// but only when `to` is the account's verified address. Anyone may register any address, so
/// elsewhere the names are text a stranger wrote, and a mail from us must not carry it.
fn greeting(user: &User, to: &str) -> String {
    let p = &user.profile;
    let verified_recipient =
        user.email_verified_at.is_some() && p.email.as_deref().is_some_and(|own| email_key(own) == email_key(to));
    if !verified_recipient {
        return String::new();
    }
    p.display_name.as_ref().or(p.first_name.as_ref()).or(p.username.as_ref()).cloned().unwrap_or_default()
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
