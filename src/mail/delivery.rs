//! The outbox worker: claims due mails, hands them to the SMTP server, deletes what was
//! accepted and reschedules what was not, with exponential backoff and jitter.
//!
//! Every node runs one. Claims are leases ([`outbox::claim`]), so a mail goes out once
//! however many nodes poll, and a node that dies mid-send only delays its mails until the
//! lease runs out. A mail is deleted only after the server accepted it: a crash between the
//! two can send it twice, never zero times.
//!
//! Nothing stays forever: a mail whose link has expired is dropped unsent, and one that keeps
//! failing for longer than `give_up_after` is set aside as a dead letter for an operator to
//! list and requeue (`tessera mail failed`, `tessera mail retry`).

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use futures_util::{StreamExt as _, stream};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::domain::time::Timestamp;
use crate::storage::outbox::{self, AfterFailure, ClaimedMail, OutgoingMail};
use crate::storage::{Store, StoreError};

/// How long a claim lasts: longer than a whole batch may take, every exchange timing out.
const LEASE: Duration = Duration::from_secs(300);
/// Mails claimed at once.
const BATCH: i64 = 32;
/// Mails in flight at once, each on its own pooled SMTP connection: one exchange waits on
/// round trips, so several overlap.
const IN_FLIGHT: usize = 8;
/// How often an idle worker looks for mail queued by other nodes.
const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(3600);
/// Gives up an SMTP exchange after this long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// No SMTP server configured: each mail is written to the log, for development.
    Log,
}

impl Transport {
    /// The transport an SMTP URL names (checked when the configuration was read).
    pub fn from_url(url: Option<&str>) -> Result<Self, lettre::transport::smtp::Error> {
        match url {
            Some(url) => {
                Ok(Self::Smtp(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.timeout(Some(SMTP_TIMEOUT)).build()))
            }
            None => Ok(Self::Log),
        }
    }
}

/// The outbox's Prometheus figures, registered by the metrics module.
#[derive(Clone, Default)]
pub struct MailStats {
    pub queued: Gauge,
    pub sent: Counter,
    pub failed: Counter,
    pub retries: Counter,
    /// Mails dropped unsent because the link they carry had expired.
    pub expired: Counter,
    /// Mails set aside after failing for longer than allowed.
    pub dead_lettered: Counter,
    /// Dead letters waiting for an operator.
    pub dead_letters: Gauge,
}

/// One node's outbox worker.
pub struct Delivery {
    pub store: Store,
    pub transport: Transport,
    pub from: Mailbox,
    /// The wait before the first retry; doubled for each later one.
    pub retry_delay: Duration,
    /// How long a mail may keep failing, from when it was queued, before it is set aside.
    pub give_up_after: Duration,
    /// Poked when this node queues a mail, so it goes out at once.
    pub wake: Arc<Notify>,
    pub stats: MailStats,
}

impl Delivery {
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let owner = Uuid::now_v7();
            loop {
                let delivered = match self.round(owner).await {
                    Ok(n) => n,
                    Err(error) => {
                        tracing::warn!(%error, "outbox round failed");
                        0
                    }
                };
                if delivered == 0 {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
            }
        })
    }

    /// Claims and tries one batch; answers how many mails it tried.
    async fn round(&self, owner: Uuid) -> Result<usize, StoreError> {
        let now = Timestamp::now();
        let claimed =
            self.store.write(async |conn| outbox::claim(conn, owner, now, now.plus(LEASE), BATCH).await).await?;
        let (waiting, dead) = outbox::depth(&mut *self.store.conn().await?).await?;
        self.stats.queued.set(waiting);
        self.stats.dead_letters.set(dead);
        let tried = claimed.len();
        let outcomes: Vec<Result<(), StoreError>> =
            stream::iter(claimed).map(|mail| self.attempt(owner, mail)).buffer_unordered(IN_FLIGHT).collect().await;
        outcomes.into_iter().collect::<Result<(), _>>()?;
        Ok(tried)
    }

    async fn attempt(&self, owner: Uuid, claimed: ClaimedMail) -> Result<(), StoreError> {
        let ClaimedMail { mail, attempts, queued_at } = claimed;
        let now = Timestamp::now();
        if mail.expires_at.is_some_and(|expiry| expiry <= now) {
            // Its link no longer works: sending it would only put a dead token in an inbox.
            self.stats.expired.inc();
            tracing::info!(mail = %mail.id, "the link in a mail expired before it could be sent; it is dropped");
            return self.store.write(async |conn| outbox::delete_sent(conn, mail.id, owner).await).await;
        }
        if attempts > 0 {
            self.stats.retries.inc();
        }
        let outcome = self.send(&mail).await;
        self.store.write(async |conn| match outcome {
            Ok(()) => {
                self.stats.sent.inc();
                outbox::delete_sent(conn, mail.id, owner).await
            }
            Err(SendError::Permanent(reason)) => {
                self.stats.failed.inc();
                tracing::error!(mail = %mail.id, %reason, "the mail server refused a mail for good; it is dropped");
                outbox::delete_sent(conn, mail.id, owner).await
            }
            Err(SendError::Transient(reason)) if now >= queued_at.plus(self.give_up_after) => {
                self.stats.failed.inc();
                self.stats.dead_lettered.inc();
                tracing::error!(mail = %mail.id, attempts = attempts + 1, %reason, "mail failed for too long; set aside (tessera mail failed)");
                outbox::record_failure(conn, mail.id, owner, AfterFailure::SetAside(now), &reason).await
            }
            Err(SendError::Transient(reason)) => {
                self.stats.failed.inc();
                let wait = backoff(self.retry_delay, attempts);
                tracing::warn!(mail = %mail.id, attempts = attempts + 1, retry_in = ?wait, %reason, "mail not sent; will retry");
                let retry_at = AfterFailure::RetryAt(Timestamp::now().plus(wait));
                outbox::record_failure(conn, mail.id, owner, retry_at, &reason).await
            }
        })
        .await
    }

    async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError> {
        let transport = match &self.transport {
            Transport::Log => {
                tracing::info!(to = %mail.recipient, subject = %mail.subject, body = %mail.text_body, "mail (not sent: no TESSERA_SMTP_URL)");
                return Ok(());
            }
            Transport::Smtp(transport) => transport,
        };
        let to: Mailbox = mail.recipient.parse().map_err(|e| SendError::Permanent(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{}@tessera>", mail.id)))
            .multipart(MultiPart::alternative_plain_html(mail.text_body.clone(), mail.html_body.clone()))
            .map_err(|e| SendError::Permanent(format!("building the message: {e}")))?;
        match transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(SendError::Permanent(error.to_string())),
            Err(error) => Err(SendError::Transient(error.to_string())),
        }
    }
}

enum SendError {
    /// The server said no for good (a 5xx answer, a malformed address): retrying cannot help.
    Permanent(String),
    /// Anything else: the server is down, busy or slow.
    Transient(String),
}

/// The wait before attempt `attempts + 1`: `first × 2^attempts`, at most an hour, less up to a
/// fifth at random so that mails failed together do not retry together.
fn backoff(first: Duration, attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let wait = first.saturating_mul(2_u32.saturating_pow(doublings)).min(MAX_DELAY);
    let jitter = wait.mul_f64(f64::from(OsRng.next_u32() % 1000) / 5000.0);
    wait - jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_outlasts_a_batch_of_timeouts() {
        let rounds = u32::try_from(BATCH).unwrap().div_ceil(u32::try_from(IN_FLIGHT).unwrap());
        assert!(LEASE > SMTP_TIMEOUT * rounds);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let first = Duration::from_secs(10);
        for attempts in 0..4 {
            let full = first * 2_u32.pow(attempts as u32);
            let wait = backoff(first, attempts);
            assert!(wait <= full && wait >= full.mul_f64(0.8), "{attempts}: {wait:?}");
        }
        assert!(backoff(first, 50) <= MAX_DELAY);
        assert!(backoff(first, 50) >= MAX_DELAY.mul_f64(0.8));
    }
}
