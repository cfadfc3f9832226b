//! The sweeper: deletes ended sessions, expired refresh, verification and reset tokens, signing keys no live token can
//! need, idempotency keys older than a day and audit events past their retention, in small batches so that no statement holds
//! locks for long.

use std::time::Duration;

use super::auth::keys;
use super::error::Error;
use super::holds;
use crate::domain::time::Timestamp;

use crate::storage::{
    Connection, Store, StoreError, audit, email_tokens, ledger, passkeys, rate_limits, refresh_tokens, second_factors,
    sessions, sign_in_attempts,
};

/// Rows deleted per statement.
const BATCH: i64 = 500;
/// How long a revoked session stays visible (for support and audits) before it is deleted.
const KEEP_REVOKED: Duration = Duration::from_secs(24 * 3600);
/// How long an idempotency key replays its request.
const KEEP_IDEMPOTENCY_KEYS: Duration = Duration::from_secs(24 * 3600);
/// How long a full rate-limit bucket is kept anyway: more than any clock skew between this node
/// and the database, whose clock the buckets run on.
const KEEP_FULL_BUCKETS: Duration = Duration::from_secs(600);

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub email_tokens: u64,
    pub mfa_tokens: u64,
    pub passkey_challenges: u64,
    pub signing_keys: u64,
    pub audit_events: u64,
    pub idempotency_keys: u64,
    pub expired_holds: u64,
    pub rate_limit_buckets: u64,
    pub sign_in_counters: u64,
}

/// How long things are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// How long a retired signing key must keep verifying.
    pub signing_keys: Duration,
    pub audit_events: Duration,
}

/// One sweep at `now`.
pub async fn sweep(store: &Store, now: Timestamp, retention: Retention) -> Result<Swept, Error> {
    Ok(Swept {
        sessions: drain(store, Batch::EndedSessions { expired_before: now, revoked_before: now.minus(KEEP_REVOKED) })
            .await?,
        refresh_tokens: drain(store, Batch::ExpiredRefreshTokens { before: now }).await?,
        email_tokens: drain(store, Batch::ExpiredEmailTokens { before: now }).await?,
        mfa_tokens: drain(store, Batch::ExpiredMfaTokens { before: now }).await?,
        passkey_challenges: drain(store, Batch::ExpiredPasskeyChallenges { before: now }).await?,
        audit_events: drain(store, Batch::OldAuditEvents { before: now.minus(retention.audit_events) }).await?,
        signing_keys: keys::prune(store, retention.signing_keys).await?,
        idempotency_keys: drain(store, Batch::OldIdempotencyKeys { before: now.minus(KEEP_IDEMPOTENCY_KEYS) }).await?,
        expired_holds: holds::expire_due(store, now).await?,
        rate_limit_buckets: drain(store, Batch::FullRateBuckets { before: now.minus(KEEP_FULL_BUCKETS) }).await?,
        sign_in_counters: drain(store, Batch::ForgottenSignInCounters { before: now }).await?,
    })
}

/// What one batch deletes.
#[derive(Clone, Copy)]
enum Batch {
    EndedSessions { expired_before: Timestamp, revoked_before: Timestamp },
    ExpiredRefreshTokens { before: Timestamp },
    ExpiredEmailTokens { before: Timestamp },
    ExpiredMfaTokens { before: Timestamp },
    ExpiredPasskeyChallenges { before: Timestamp },
    OldAuditEvents { before: Timestamp },
    OldIdempotencyKeys { before: Timestamp },
    FullRateBuckets { before: Timestamp },
    ForgottenSignInCounters { before: Timestamp },
}

impl Batch {
    async fn delete(self, conn: &mut Connection) -> Result<u64, StoreError> {
        match self {
            Self::EndedSessions { expired_before, revoked_before } => {
                sessions::delete_ended(conn, expired_before, revoked_before, BATCH).await
            }
            Self::ExpiredRefreshTokens { before } => refresh_tokens::delete_expired(conn, before, BATCH).await,
            Self::ExpiredEmailTokens { before } => email_tokens::delete_expired(conn, before, BATCH).await,
            Self::ExpiredMfaTokens { before } => second_factors::delete_mfa_tokens_before(conn, before, BATCH).await,
            Self::ExpiredPasskeyChallenges { before } => passkeys::delete_challenges_before(conn, before, BATCH).await,
            Self::OldAuditEvents { before } => audit::delete_before(conn, before, BATCH).await,
            Self::OldIdempotencyKeys { before } => ledger::delete_keys_before(conn, before, BATCH).await,
            Self::FullRateBuckets { before } => rate_limits::delete_full(conn, before.as_micros() / 1000, BATCH).await,
            Self::ForgottenSignInCounters { before } => sign_in_attempts::delete_forgotten(conn, before, BATCH).await,
        }
    }
}

/// Deletes batch after batch until one comes back short, each on a fresh connection with a
/// yield in between, so other work gets the database and the runtime between batches.
async fn drain(store: &Store, batch: Batch) -> Result<u64, Error> {
    let mut total = 0;
    loop {
        let n = store.write(async |conn| batch.delete(conn).await).await?;
        total += n;
        if n < BATCH.unsigned_abs() {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
