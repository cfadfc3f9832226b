//! Sign-in lockout, applied (the rule is [`crate::domain::lockout`]): every password check,
//! sign-in or re-authentication, is charged to the account's counters first, in a transaction
//! of its own, and cleared when the password was right.
//!
//! A name no account has is counted exactly like an account, by the name, so that a lock
//! tells nothing about whether the account exists.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::limits::client_network;
use crate::domain::lockout::{Attempt, Policy, REMEMBER_DEVICE_FOR};
use crate::domain::secrets::sha256_hex;
use crate::domain::time::{Timestamp, retry_after_secs};
use crate::domain::user::User;
use crate::service::background::Background;
use crate::service::error::Error;
use crate::service::hashing::PasswordHasher;
use crate::storage::sign_in_attempts::{self, CounterKey};
use crate::storage::{Connection, Store, StoreError, audit};

/// Tries of a transaction that the database broke off to end a deadlock.
const ATTEMPTS: u32 = 3;
/// How long an attempt waits for a slot while every slot is being checked; then it is refused.
/// A slot handed back on this node wakes a waiter at once; between, they look again after
/// a wait that doubles from 10 ms to at most 500 ms, for slots other nodes hand back.
const BUSY_WAIT: Duration = Duration::from_secs(5);
const FIRST_LOOK: Duration = Duration::from_millis(10);
const LONGEST_LOOK: Duration = Duration::from_millis(500);

/// Whose counters an attempt charges: the account's (or the unknown name's) and this client
/// network's on it.
#[derive(Debug, Clone)]
pub struct Subject {
    account: CounterKey,
    client: CounterKey,
}

impl Subject {
    /// A password check on the account `user_id` from `client`.
    pub fn account(user_id: Uuid, client: &ClientInfo) -> Self {
        Self::new(format!("a:{user_id}"), Some(user_id), client)
    }

    /// A sign-in to a name no account has, by the name's key.
    pub fn unknown(name_key: &str, client: &ClientInfo) -> Self {
        Self::new(format!("n:{}", sha256_hex(name_key.as_bytes())), None, client)
    }

    fn new(account: String, user_id: Option<Uuid>, client: &ClientInfo) -> Self {
        let network = client.ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok()).map(client_network);
        let client = format!("{account}@{}", network.as_deref().unwrap_or("unknown"));
        Self { account: CounterKey { key: account, user_id }, client: CounterKey { key: client, user_id } }
    }

    fn user_id(&self) -> Option<Uuid> {
        self.account.user_id
    }
}

/// The slot an attempt took: to be settled by [`Lockout::failed`] or [`Lockout::succeeded`].
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Charge {
    /// Whether anything was charged (lockout on).
    taken: bool,
    /// Whether the account's counter was charged as well as the client's.
    account: bool,
}

/// Charges and settles sign-in attempts.
#[derive(Clone)]
pub struct Lockout {
    store: Store,
    policy: Policy,
    /// Rung whenever this node settles a slot: one waiter looks at once (it may be waiting on
    /// another account and find nothing, in which case the others find the slot on their next
    /// look).
    settled: Arc<Notify>,
    /// Where slots of dropped checks are handed back.
    background: Background,
}

impl Charge {
    /// No slot: for a sign-in no lockout applies to. A passkey cannot be guessed, and an
    /// attacker who locks an account with wrong passwords must not lock its owner's passkeys out.
    pub fn none() -> Self {
        Self { taken: false, account: false }
    }
}

impl Lockout {
    pub fn new(store: Store, policy: Policy) -> Self {
        Self { store, policy, settled: Arc::new(Notify::new()), background: Background::current() }
    }

    /// Takes a slot before a password is checked: `429 too_many_attempts` while locked, or
    /// when no slot came free in time.
    pub async fn charge(&self, subject: &Subject) -> Result<Charge, Error> {
        if !self.policy.enabled() {
            return Ok(Charge { taken: false, account: false });
        }
        let deadline = tokio::time::Instant::now() + BUSY_WAIT;
        let mut look = FIRST_LOOK;
        loop {
            let settled = self.settled.notified();
            if let Some(charge) = retrying(|| self.try_charge(subject)).await? {
                return Ok(charge);
            }
            let wait = look.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if wait.is_zero() {
                return Err(Error::TooManyAttempts { retry_after_secs: 1 });
            }
            let _ = tokio::time::timeout(wait, settled).await;
            look = (look * 2).min(LONGEST_LOOK);
        }
    }

    /// `None` when every slot is out.
    async fn try_charge(&self, subject: &Subject) -> Result<Option<Charge>, Error> {
        let now = Timestamp::now();
        let mut tx = self.store.begin().await?;
        let tallies = sign_in_attempts::lock(&mut tx, &[&subject.account, &subject.client], now).await?;
        match self.policy.attempt(now, tallies[0], tallies[1]) {
            Attempt::Refused { retry_after } => {
                Err(Error::TooManyAttempts { retry_after_secs: retry_after_secs(retry_after) })
            }
            Attempt::Busy => Ok(None),
            Attempt::Allowed { account, client } => {
                sign_in_attempts::save(&mut tx, &subject.client, &client).await?;
                if let Some(account) = &account {
                    sign_in_attempts::save(&mut tx, &subject.account, account).await?;
                }
                tx.commit().await.map_err(StoreError::from)?;
                Ok(Some(Charge { taken: true, account: account.is_some() }))
            }
        }
    }

    /// After a wrong password: the slot becomes a failure, and a lock it earns goes into the
    /// audit trail. When this cannot be written the caller answers the error, not the verdict
    /// (an attacker must not learn a guess was wrong without it being counted); the slot then
    /// counts as a failure once [`SLOT_TIMEOUT`] passes.
    ///
    /// [`SLOT_TIMEOUT`]: crate::domain::lockout::SLOT_TIMEOUT
    pub async fn failed(&self, subject: &Subject, charge: Charge, client: &ClientInfo) -> Result<(), Error> {
        if !charge.taken {
            return Ok(());
        }
        let settled = retrying(|| self.settle_failure(subject, charge, client)).await;
        self.settled.notify_one();
        settled
    }

    async fn settle_failure(&self, subject: &Subject, charge: Charge, client: &ClientInfo) -> Result<(), Error> {
        let now = Timestamp::now();
        let mut tx = self.store.begin().await?;
        let tallies = sign_in_attempts::lock(&mut tx, &[&subject.account, &subject.client], now).await?;
        let mut charged = vec![(&subject.client, tallies[1])];
        if charge.account {
            charged.push((&subject.account, tallies[0]));
        }
        let mut locked_for = None;
        for (key, tally) in charged {
            let (tally, lock) = self.policy.failed(now, tally);
            sign_in_attempts::save(&mut tx, key, &tally).await?;
            locked_for = locked_for.max(lock);
        }
        if let Some(locked_for) = locked_for {
            let detail = json!({ "locked_seconds": locked_for.as_secs() });
            audit::insert(&mut tx, &AuditEvent::new(EventType::SignInLocked, None, subject.user_id(), client, detail))
                .await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// After a right password, in the transaction that acts on it: the slot is handed back and
    /// the counters start again; with `signed_in` this client network becomes a known device.
    pub async fn succeeded_in(
        &self,
        conn: &mut Connection,
        subject: &Subject,
        charge: Charge,
        signed_in: bool,
    ) -> Result<(), Error> {
        if !charge.taken {
            return Ok(());
        }
        let now = Timestamp::now();
        let known = signed_in.then_some(now);
        let remember_until = now.plus(REMEMBER_DEVICE_FOR);
        // Locked first in the order every charge locks them: the update alone locks the two
        // rows in whatever order PostgreSQL scans them, which deadlocked against a concurrent
        // charge of the same account (seen: 1 in about 20 runs of 32 sign-ins at once).
        sign_in_attempts::lock(conn, &[&subject.account, &subject.client], now).await?;
        sign_in_attempts::clear_after_success(
            conn,
            &subject.account,
            &subject.client,
            charge.account,
            known,
            remember_until,
        )
        .await?;
        // Rung before the caller's commit: a waiter that tries too early waits again, briefly.
        self.settled.notify_one();
        Ok(())
    }

    /// Checks `password` with `check` under a slot: a check that fails to run (the hashing
    /// pool full, say) hands its slot back before its error is answered, and so does one whose
    /// request is dropped while it waits (the client went away, or the request timed out):
    /// nobody learns that check's answer, so it must not count as a failure when the slot
    /// times out.
    pub async fn checked<F>(&self, subject: &Subject, charge: Charge, check: F) -> Result<bool, Error>
    where
        F: std::future::Future<Output = Result<bool, Error>>,
    {
        let mut abandoned = HandBackIfDropped { lockout: self, subject, charge: Some(charge).filter(|c| c.taken) };
        let outcome = check.await;
        abandoned.charge = None;
        if outcome.is_err() && charge.taken {
            self.release(subject, charge).await;
        }
        outcome
    }

    /// `403 wrong_password` unless `password` is `user`'s; wrong ones count toward the sign-in
    /// lockout, and while it is locked no password is checked (`429 too_many_attempts`), so a
    /// stolen access token cannot be used to guess the password either. A right one clears no
    /// failures (only a completed sign-in does): wrong second-factor codes count on the same
    /// tally, and a thief holding the password and a token must not reset it between guesses.
    pub async fn confirm_password(
        &self,
        hasher: &PasswordHasher,
        user: &User,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let subject = Subject::account(user.id, client);
        let charge = self.charge(&subject).await?;
        let check = hasher.verify(password, Some(user.password_hash.clone()));
        if self.checked(&subject, charge, check).await? {
            self.deferred(&subject, charge).await;
            Ok(())
        } else {
            self.failed(&subject, charge, client).await?;
            Err(Error::WrongPassword)
        }
    }

    /// After a right password whose sign-in waits for a second factor: the slot is handed back
    /// but the failures stay, so that a password known to an attacker does not reset the count
    /// of wrong codes.
    pub async fn deferred(&self, subject: &Subject, charge: Charge) {
        if !charge.taken {
            return;
        }
        self.release(subject, charge).await;
    }

    async fn release(&self, subject: &Subject, charge: Charge) {
        let mut keys = vec![&subject.client];
        if charge.account {
            keys.push(&subject.account);
        }
        let released = self.store.write(async |conn| sign_in_attempts::release(conn, &keys).await);
        if let Err(error) = released.await {
            tracing::warn!(%error, "could not hand back a sign-in slot");
        }
        self.settled.notify_one();
    }

    /// [`Self::succeeded_in`] on a connection of its own, for a right password that opens no
    /// session; a failure leaves the slot lost until it times out.
    pub async fn succeeded(&self, subject: &Subject, charge: Charge) {
        let outcome = self.store.write(async |conn| self.succeeded_in(conn, subject, charge, false).await);
        if let Err(error) = outcome.await {
            tracing::warn!(%error, "could not clear sign-in failures");
        }
    }
}

/// Hands a slot back, in a task of its own, when the check it was taken for is dropped before
/// it ends ([`Lockout::checked`] empties it once the check has ended).
struct HandBackIfDropped<'a> {
    lockout: &'a Lockout,
    subject: &'a Subject,
    charge: Option<Charge>,
}

impl Drop for HandBackIfDropped<'_> {
    fn drop(&mut self) {
        let Some(charge) = self.charge else { return };
        let (lockout, subject) = (self.lockout.clone(), self.subject.clone());
        self.lockout.background.spawn(async move { lockout.release(&subject, charge).await });
    }
}

/// Runs `step` again when the database broke it off to end a deadlock, a few times.
async fn retrying<T, F, Fut>(step: F) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    for _ in 1..ATTEMPTS {
        match step().await {
            Err(Error::Retry(_)) => continue,
            other => return other,
        }
    }
    step().await
}

/// Clears every lock on `user_id`'s account in `tx`, auditing it as `actor`'s unlock when one
/// was in force, or always when `always` (an administrator asked).
pub async fn unlock(
    tx: &mut Connection,
    user_id: Uuid,
    actor: Option<Uuid>,
    client: &ClientInfo,
    always: bool,
) -> Result<(), Error> {
    let locked = sign_in_attempts::clear_user(tx, user_id, Timestamp::now()).await?;
    if locked > 0 || always {
        let event =
            AuditEvent::new(EventType::SignInUnlocked, actor, Some(user_id), client, json!({ "locked": locked > 0 }));
        audit::insert(tx, &event).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tessera_scratch::ScratchDb;

    use super::*;

    async fn pending(store: &Store, subject: &Subject) -> u32 {
        let mut tx = store.begin().await.unwrap();
        let tallies = sign_in_attempts::lock(&mut tx, &[&subject.account], Timestamp::now()).await.unwrap();
        tallies[0].pending
    }

    #[tokio::test]
    async fn a_check_dropped_before_it_ends_hands_its_slot_back_and_one_that_ended_does_not() {
        let scratch = ScratchDb::create(None, "lockout").await.unwrap();
        let store = Store::connect(&scratch.url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let lockout = Lockout::new(store.clone(), Policy { threshold: 5 });
        let subject = Subject::unknown("someone", &ClientInfo { ip: Some("203.0.113.9".into()), user_agent: None });

        let charge = lockout.charge(&subject).await.unwrap();
        assert_eq!(pending(&store, &subject).await, 1);
        let never = lockout.checked(&subject, charge, std::future::pending());
        assert!(tokio::time::timeout(Duration::from_millis(20), never).await.is_err());
        let mut left = pending(&store, &subject).await;
        for _ in 0..200 {
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            left = pending(&store, &subject).await;
        }
        assert_eq!(left, 0, "the dropped check's slot was handed back");

        // A check that ended is its caller's to settle: the guard hands nothing back.
        let charge = lockout.charge(&subject).await.unwrap();
        assert!(!lockout.checked(&subject, charge, async { Ok(false) }).await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pending(&store, &subject).await, 1);
        store.close().await;
        scratch.remove().await.unwrap();
    }
}
