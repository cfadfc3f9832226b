//! The `refresh_tokens` table: digests only. A rotated token keeps its row (with `rotated_at`)
//! until it would have expired, so a later reuse is recognised as such.

use std::sync::LazyLock;

use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{delete_older_than, sql};
use super::{sessions, users};
use crate::domain::session::Session;
use crate::domain::time::Timestamp;
use crate::domain::user::User;

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

/// The token with `digest`, its session and the session's user, in one query; `None` when
/// any of the three is gone.
pub async fn find_with_session(
    conn: &mut AnyConnection,
    digest: &str,
) -> Result<Option<(RefreshRecord, Session, User)>, StoreError> {
    static STATEMENT: LazyLock<String> = LazyLock::new(|| {
        let sessions = sessions::COLUMNS.split(", ").map(|c| format!("s.{c} AS s_{c}"));
        let users = users::COLUMNS.split(", ").map(|c| format!("u.{c}"));
        format!(
            "SELECT t.expires_at AS t_expires_at, t.rotated_at AS t_rotated_at, {} \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
             WHERE t.token_hash = ?",
            sessions.chain(users).collect::<Vec<_>>().join(", ")
        )
    });
    let text = sql(conn, &STATEMENT);
    let Some(row) = sqlx::query(&text).bind(digest.to_owned()).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let session = sessions::session_from_prefixed_row(&row, "s_")?;
    let record = RefreshRecord {
        session_id: session.id,
        expires_at: Timestamp::from_micros(row.try_get("t_expires_at")?),
        rotated_at: row.try_get::<Option<i64>, _>("t_rotated_at")?.map(Timestamp::from_micros),
    };
    Ok(Some((record, session, users::user_from_row(&row)?)))
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
