//! Refresh-token rotations written in fewer round trips than a transaction of their own (the
//! portable way, in `service::auth::refresh`, which MySQL/MariaDB take).
//!
//! **PostgreSQL**: [`rotate_in_one_statement`], data-modifying CTEs that lock the session,
//! mark the token rotated, extend the session and insert the successor in one autocommitted
//! statement: one round trip instead of five.
//!
//! **SQLite**: group commit, in [`RotationBatcher`].
//!
//! SQLite has one writer, and sqlx runs each statement on the connection's own thread: a
//! rotation written in a transaction of its own is five round trips to that thread (begin,
//! mark rotated, extend the session, insert the successor, commit) during which every other
//! writer waits. Here the rotations that arrive while a batch is being written wait together
//! and are written as the next batch, in one transaction of five statements whatever its
//! size: each statement covers the whole batch through `json_each`.
//!
//! A rotation is decided exactly as in its own transaction: the token is marked rotated only
//! if it was not already (the first of several in a batch wins), and the session is extended
//! only while it is live; a rotation whose session turned out not to be is undone in the same
//! transaction. A batch that fails answers [`Rotated::Retry`] to all of its rotations, which
//! then run alone, so one bad row cannot fail the others.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::json;
use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::group_commit::GroupCommit;
use super::{Store, StoreError};
use crate::domain::time::Timestamp;

/// Rotations written in one transaction at most.
const MAX_BATCH: usize = 256;
/// Rotations waiting for the batcher at most; more wait to be queued.
const QUEUE: usize = 4096;

/// One rotation: mark `presented` rotated, extend `session_id` and insert `successor`
/// (both token digests).
#[derive(Debug, Clone)]
pub struct Rotation {
    pub presented: String,
    pub successor: String,
    pub session_id: Uuid,
}

/// How a rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotated {
    /// Written at `rotated_at` (the batch's time, which a retry within the grace reproduces):
    /// the session now ends at `expires_at`.
    Done { rotated_at: Timestamp, expires_at: Timestamp },
    /// The token was rotated already (by an earlier request, or earlier in the batch).
    AlreadyRotated,
    /// The session is revoked, ended or gone: nothing was written.
    SessionEnded,
    /// Not written here (its batch failed, or the database has no quicker way): run the
    /// rotation in a transaction of its own.
    Retry,
}

/// The handle requests queue their rotations on.
#[derive(Clone, Debug)]
pub struct RotationBatcher {
    batches: GroupCommit<Rotation, Rotated>,
}

impl RotationBatcher {
    /// Starts the batcher on `store`; sessions are extended to `ttl` after the batch's time,
    /// up to their absolute end.
    pub fn start(store: Store, ttl: Duration) -> Self {
        // A request dropped while it waited must not rotate: its client never sees the
        // successor and would retry with the old token, later than the grace, and be taken for
        // a thief. `GroupCommit` drops such requests before their batch starts.
        let batches = GroupCommit::start(QUEUE, MAX_BATCH, move |batch: Vec<Rotation>| {
            let store = store.clone();
            async move {
                let rotations: Vec<&Rotation> = batch.iter().collect();
                match write(&store, &rotations, ttl).await {
                    Ok(outcomes) => outcomes,
                    Err(error) => {
                        tracing::warn!(%error, rotations = batch.len(), "a batch of refresh rotations failed; each runs alone");
                        vec![Rotated::Retry; batch.len()]
                    }
                }
            }
        });
        Self { batches }
    }

    /// Queues `rotation` and waits for its batch to be written.
    pub async fn rotate(&self, rotation: Rotation) -> Rotated {
        self.batches.submit(rotation).await.unwrap_or(Rotated::Retry)
    }
}

/// Writes one batch in one transaction; answers each rotation's outcome, in order.
async fn write(store: &Store, rotations: &[&Rotation], ttl: Duration) -> Result<Vec<Rotated>, StoreError> {
    let mut tx = store.begin().await?;
    let now = Timestamp::now();
    let until = now.plus(ttl);
    let presented: Vec<&str> = rotations.iter().map(|r| r.presented.as_str()).collect();
    let marked: HashSet<String> = sqlx::query(
        "UPDATE refresh_tokens SET rotated_at = ? \
         WHERE rotated_at IS NULL AND token_hash IN (SELECT value FROM json_each(?)) RETURNING token_hash",
    )
    .bind(now.as_micros())
    .bind(json!(presented).to_string())
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| row.try_get("token_hash"))
    .collect::<Result<_, _>>()?;
    // The first rotation of a token in the batch is the one that marked it.
    let mut seen = HashSet::new();
    let won: Vec<bool> = rotations.iter().map(|r| marked.contains(&r.presented) && seen.insert(&r.presented)).collect();
    let sessions: Vec<String> =
        rotations.iter().zip(&won).filter(|(_, won)| **won).map(|(r, _)| r.session_id.to_string()).collect();
    let live: HashMap<String, i64> = sqlx::query(
        "UPDATE sessions SET last_used_at = ?, expires_at = MIN(?, max_expires_at) \
         WHERE revoked_at IS NULL AND expires_at > ? AND id IN (SELECT value FROM json_each(?)) \
         AND user_id IN (SELECT id FROM users WHERE status = 'active') \
         RETURNING id, expires_at",
    )
    .bind(now.as_micros())
    .bind(until.as_micros())
    .bind(now.as_micros())
    .bind(json!(sessions).to_string())
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| Ok((row.try_get("id")?, row.try_get("expires_at")?)))
    .collect::<Result<_, sqlx::Error>>()?;
    let outcomes: Vec<Rotated> = rotations
        .iter()
        .zip(&won)
        .map(|(r, won)| match (won, live.get(&r.session_id.to_string())) {
            (false, _) => Rotated::AlreadyRotated,
            (true, Some(end)) => Rotated::Done { rotated_at: now, expires_at: Timestamp::from_micros(*end) },
            (true, None) => Rotated::SessionEnded,
        })
        .collect();
    let (ended, done): (Vec<_>, Vec<_>) = rotations
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| matches!(outcome, Rotated::Done { .. } | Rotated::SessionEnded))
        .partition(|(_, outcome)| **outcome == Rotated::SessionEnded);
    if !ended.is_empty() {
        let undone: Vec<&str> = ended.iter().map(|(r, _)| r.presented.as_str()).collect();
        sqlx::query("UPDATE refresh_tokens SET rotated_at = NULL WHERE token_hash IN (SELECT value FROM json_each(?))")
            .bind(json!(undone).to_string())
            .execute(&mut *tx)
            .await?;
    }
    if !done.is_empty() {
        let successors: Vec<[String; 2]> =
            done.iter().map(|(r, _)| [r.successor.clone(), r.session_id.to_string()]).collect();
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
             SELECT json_extract(j.value, '$[0]'), s.id, ?, s.expires_at \
             FROM json_each(?) AS j JOIN sessions AS s ON s.id = json_extract(j.value, '$[1]')",
        )
        .bind(now.as_micros())
        .bind(json!(successors).to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// PostgreSQL: `rotation` in one autocommitted statement. The session is locked first (and
/// must be live, its account active), then the token is marked rotated unless it already was,
/// the session extended to `until` (or its absolute end) and the successor inserted; if any
/// condition fails nothing is written.
pub async fn rotate_in_one_statement(
    conn: &mut AnyConnection,
    rotation: &Rotation,
    until: Timestamp,
) -> Result<Rotated, StoreError> {
    let now = Timestamp::now();
    let row = sqlx::query(
        "WITH live AS (SELECT id FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             AND user_id IN (SELECT id FROM users WHERE status = 'active') FOR UPDATE), \
         rotated AS (UPDATE refresh_tokens SET rotated_at = $2 \
             WHERE token_hash = $3 AND rotated_at IS NULL AND session_id IN (SELECT id FROM live) RETURNING session_id), \
         extended AS (UPDATE sessions SET last_used_at = $2, expires_at = LEAST($4, max_expires_at) \
             WHERE id IN (SELECT session_id FROM rotated) RETURNING id, expires_at), \
         inserted AS (INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
             SELECT $5, id, $2, expires_at FROM extended RETURNING session_id) \
         SELECT (SELECT COUNT(*) FROM live) AS live, (SELECT COUNT(*) FROM inserted) AS done, \
             (SELECT expires_at FROM extended) AS expires_at",
    )
    .bind(rotation.session_id.to_string())
    .bind(now.as_micros())
    .bind(rotation.presented.clone())
    .bind(until.as_micros())
    .bind(rotation.successor.clone())
    .fetch_one(&mut *conn)
    .await?;
    let (live, done): (i64, i64) = (row.try_get("live")?, row.try_get("done")?);
    let expires_at: Option<i64> = row.try_get("expires_at")?;
    Ok(match (live, done, expires_at) {
        (0, _, _) => Rotated::SessionEnded,
        (_, 1, Some(end)) => Rotated::Done { rotated_at: now, expires_at: Timestamp::from_micros(end) },
        _ => Rotated::AlreadyRotated,
    })
}
