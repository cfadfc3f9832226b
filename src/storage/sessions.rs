//! The `sessions` and `refresh_tokens` tables.

use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::sql;
use crate::domain::session::{Session, SessionState};
use crate::domain::time::Timestamp;
use crate::domain::user::{Role, UserStatus};

pub async fn insert(conn: &mut AnyConnection, session: &Session) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, max_expires_at, \
         revoked_at, user_agent, ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    sqlx::query(&text)
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(session.created_at.as_micros())
        .bind(session.last_used_at.as_micros())
        .bind(session.expires_at.as_micros())
        .bind(session.max_expires_at.as_micros())
        .bind(session.revoked_at.map(Timestamp::as_micros))
        .bind(session.user_agent.clone())
        .bind(session.ip.clone())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores a refresh token's digest for `session_id`.
pub async fn insert_refresh_token(
    conn: &mut AnyConnection,
    digest: &str,
    session_id: Uuid,
    created_at: Timestamp,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
    );
    sqlx::query(&text)
        .bind(digest.to_owned())
        .bind(session_id.to_string())
        .bind(created_at.as_micros())
        .bind(expires_at.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The session and its user, as an authenticated request needs them; `None` when the session
/// (or its user) no longer exists.
pub async fn state(
    conn: &mut AnyConnection,
    session_id: Uuid,
) -> Result<Option<SessionState>, StoreError> {
    let text = sql(
        conn,
        "SELECT s.user_id, s.expires_at, s.revoked_at, u.role, u.status \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?",
    );
    let Some(row) = sqlx::query(&text)
        .bind(session_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let user_id: String = row.try_get("user_id")?;
    let role: String = row.try_get("role")?;
    let status: String = row.try_get("status")?;
    Ok(Some(SessionState {
        user_id: Uuid::try_parse(&user_id)
            .map_err(|_| StoreError::Corrupt(format!("user id {user_id}")))?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role}")))?,
        user_status: UserStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
        expires_at: Timestamp::from_micros(row.try_get("expires_at")?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(Timestamp::from_micros),
    }))
}

/// Revokes every live session of `user_id` except `keep`; answers how many it revoked.
pub async fn revoke_all_except(
    conn: &mut AnyConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let text = sql(
        conn,
        "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND id <> ? AND revoked_at IS NULL",
    );
    let result = sqlx::query(&text)
        .bind(now.as_micros())
        .bind(user_id.to_string())
        .bind(keep.map(|id| id.to_string()).unwrap_or_default())
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected())
}
