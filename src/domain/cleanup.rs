//! The sweeper: deletes ended sessions, expired refresh tokens, signing keys no live token can
//! need and audit events past their retention, in small batches so that no statement holds
//! locks for long.

use std::time::Duration;

use super::error::Error;
use super::keys;
use super::time::Timestamp;
use crate::storage::{Store, audit, refresh_tokens, sessions};

/// Rows deleted per statement.
const BATCH: i64 = 500;
/// How long a revoked session stays visible (for support and audits) before it is deleted.
const KEEP_REVOKED: Duration = Duration::from_secs(24 * 3600);

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub signing_keys: u64,
    pub audit_events: u64,
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
    let revoked_before = Timestamp::from_micros(now.as_micros() - micros(KEEP_REVOKED));
    let mut swept = Swept::default();
    loop {
        let mut conn = store.conn().await?;
        let n = sessions::delete_ended(&mut conn, now, revoked_before, BATCH).await?;
        swept.sessions += n;
        if n < BATCH.unsigned_abs() {
            break;
        }
        tokio::task::yield_now().await;
    }
    loop {
        let mut conn = store.conn().await?;
        let n = refresh_tokens::delete_expired(&mut conn, now, BATCH).await?;
        swept.refresh_tokens += n;
        if n < BATCH.unsigned_abs() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let audit_before = Timestamp::from_micros(now.as_micros() - micros(retention.audit_events));
    loop {
        let mut conn = store.conn().await?;
        let n = audit::delete_before(&mut conn, audit_before, BATCH).await?;
        swept.audit_events += n;
        if n < BATCH.unsigned_abs() {
            break;
        }
        tokio::task::yield_now().await;
    }
    swept.signing_keys = keys::prune(store, retention.signing_keys).await?;
    Ok(swept)
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}
