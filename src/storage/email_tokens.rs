//! The `email_tokens` table: verification and reset tokens, by digest, single use.

use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::sql;
use crate::domain::time::Timestamp;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify",
            Purpose::ResetPassword => "reset",
        }
    }
}

/// A new token's row.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub digest: &'a str,
    pub user_id: Uuid,
    pub purpose: Purpose,
    /// The address the token was mailed to; a verification holds only while it is current.
    pub email: &'a str,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

pub async fn insert(conn: &mut AnyConnection, token: &NewToken<'_>) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    );
    sqlx::query(&text)
        .bind(token.digest.to_owned())
        .bind(token.user_id.to_string())
        .bind(token.purpose.as_str())
        .bind(token.email.to_owned())
        .bind(token.created_at.as_micros())
        .bind(token.expires_at.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks the live token with `digest` used and answers its account and address; `None` when it
/// is unknown, expired, already used, or for another purpose. The conditional update makes a
/// token good for exactly one of any number of concurrent uses.
pub async fn consume(
    conn: &mut AnyConnection,
    digest: &str,
    purpose: Purpose,
    now: Timestamp,
) -> Result<Option<(Uuid, String)>, StoreError> {
    let text = sql(
        conn,
        "UPDATE email_tokens SET used_at = ? WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
    );
    let used = sqlx::query(&text)
        .bind(now.as_micros())
        .bind(digest.to_owned())
        .bind(purpose.as_str())
        .bind(now.as_micros())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if used != 1 {
        return Ok(None);
    }
    let text = sql(conn, "SELECT user_id, email FROM email_tokens WHERE token_hash = ?");
    let row = sqlx::query(&text).bind(digest.to_owned()).fetch_one(&mut *conn).await?;
    let user_id: String = row.try_get("user_id")?;
    let user_id = Uuid::try_parse(&user_id).map_err(|_| StoreError::Corrupt(format!("token user {user_id}")))?;
    Ok(Some((user_id, row.try_get("email")?)))
}

/// The account a live token with `digest` belongs to, without using it up.
pub async fn find_live(
    conn: &mut AnyConnection,
    digest: &str,
    purpose: Purpose,
    now: Timestamp,
) -> Result<Option<Uuid>, StoreError> {
    let text = sql(
        conn,
        "SELECT user_id FROM email_tokens WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
    );
    let row = sqlx::query(&text)
        .bind(digest.to_owned())
        .bind(purpose.as_str())
        .bind(now.as_micros())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let user_id: String = row.try_get("user_id")?;
    Ok(Some(Uuid::try_parse(&user_id).map_err(|_| StoreError::Corrupt(format!("token user {user_id}")))?))
}

/// Ends every live token of the account for `purpose`: a new reset link voids the older ones.
pub async fn invalidate(
    conn: &mut AnyConnection,
    user_id: Uuid,
    purpose: Purpose,
    now: Timestamp,
) -> Result<(), StoreError> {
    let text = sql(conn, "UPDATE email_tokens SET used_at = ? WHERE user_id = ? AND purpose = ? AND used_at IS NULL");
    sqlx::query(&text)
        .bind(now.as_micros())
        .bind(user_id.to_string())
        .bind(purpose.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes up to `limit` tokens that expired before `before`; answers how many.
pub async fn delete_expired(conn: &mut AnyConnection, before: Timestamp, limit: i64) -> Result<u64, StoreError> {
    Ok(super::sql::delete_older_than(conn, "email_tokens", "token_hash", "expires_at", before.as_micros(), limit)
        .await?)
}
