//! The `refresh_tokens` table: digests only. A rotated token keeps its row (with `rotated_at`)
//! until it would have expired, so a later reuse is recognised as such.

use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{delete_older_than, sql};
use crate::domain::time::Timestamp;

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub session_id: Uuid,
    pub expires_at: Timestamp,
    pub rotated_at: Option<Timestamp>,
}

pub async fn insert(
    conn: &mut AnyConnection,
    digest: &str,
    session_id: Uuid,
    created_at: Timestamp,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    let text =
        sql(conn, "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)");
    sqlx::query(&text)
        .bind(digest.to_owned())
        .bind(session_id.to_string())
        .bind(created_at.as_micros())
        .bind(expires_at.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn find(conn: &mut AnyConnection, digest: &str) -> Result<Option<RefreshRecord>, StoreError> {
    let text = sql(conn, "SELECT session_id, expires_at, rotated_at FROM refresh_tokens WHERE token_hash = ?");
    let Some(row) = sqlx::query(&text).bind(digest.to_owned()).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let session_id: String = row.try_get("session_id")?;
    Ok(Some(RefreshRecord {
        session_id: Uuid::try_parse(&session_id)
            .map_err(|_| StoreError::Corrupt(format!("session id {session_id}")))?,
        expires_at: Timestamp::from_micros(row.try_get("expires_at")?),
        rotated_at: row.try_get::<Option<i64>, _>("rotated_at")?.map(Timestamp::from_micros),
    }))
}

/// Marks the token rotated at `now` unless it already was; `true` when this call did it.
/// The condition makes concurrent refreshes of one token agree on a single winner.
pub async fn mark_rotated(conn: &mut AnyConnection, digest: &str, now: Timestamp) -> Result<bool, StoreError> {
    let text = sql(conn, "UPDATE refresh_tokens SET rotated_at = ? WHERE token_hash = ? AND rotated_at IS NULL");
    let result = sqlx::query(&text).bind(now.as_micros()).bind(digest.to_owned()).execute(&mut *conn).await?;
    Ok(result.rows_affected() == 1)
}

/// Deletes up to `limit` tokens that expired before `before`; answers how many.
pub async fn delete_expired(conn: &mut AnyConnection, before: Timestamp, limit: i64) -> Result<u64, StoreError> {
    Ok(delete_older_than(conn, "refresh_tokens", "token_hash", "expires_at", before.as_micros(), limit).await?)
}
