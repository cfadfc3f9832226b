//! The `totp_factors`, `recovery_codes` and `mfa_tokens` tables (passkeys are in `passkeys`). Every use of a code is one
//! conditional update, so two requests racing with one code cannot both succeed.

use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{delete_older_than, sql, uuid_column};
use crate::domain::second_factor::Factors;
use crate::domain::time::Timestamp;

/// An account's authenticator app, as stored.
#[derive(Debug, Clone)]
pub struct StoredTotp {
    /// Base32, sealed when a master key is configured.
    pub secret: String,
    pub confirmed: bool,
    pub created_at: Timestamp,
}

pub async fn find_totp(conn: &mut AnyConnection, user_id: Uuid) -> Result<Option<StoredTotp>, StoreError> {
    let text = sql(conn, "SELECT secret, confirmed_at, created_at FROM totp_factors WHERE user_id = ?");
    let row = sqlx::query(&text).bind(user_id.to_string()).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(StoredTotp {
        secret: row.try_get("secret")?,
        confirmed: row.try_get::<Option<i64>, _>("confirmed_at")?.is_some(),
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
    }))
}

/// The account's factors, in one statement.
pub async fn factors(conn: &mut AnyConnection, user_id: Uuid) -> Result<Factors, StoreError> {
    let text = sql(
        conn,
        "SELECT (SELECT COUNT(*) FROM totp_factors WHERE user_id = ? AND confirmed_at IS NOT NULL) AS totp, \
         (SELECT COUNT(*) FROM passkeys WHERE user_id = ?) AS passkeys, \
         (SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL) AS codes",
    );
    let id = user_id.to_string();
    let row = sqlx::query(&text).bind(id.clone()).bind(id.clone()).bind(id).fetch_one(&mut *conn).await?;
    Ok(Factors {
        totp: row.try_get::<i64, _>("totp")? > 0,
        passkeys: row.try_get("passkeys")?,
        recovery_codes_left: row.try_get("codes")?,
    })
}

/// Starts (or starts again) an enrolment: a new, unconfirmed secret, unless a confirmed one
/// exists (`false` then: it must be removed first). Call it with the account's row locked, so
/// that two starts queue; after `false` the transaction must be dropped (PostgreSQL has ended
/// it at the conflict).
pub async fn begin_totp(
    conn: &mut AnyConnection,
    user_id: Uuid,
    sealed_secret: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let text = sql(conn, "DELETE FROM totp_factors WHERE user_id = ? AND confirmed_at IS NULL");
    sqlx::query(&text).bind(user_id.to_string()).execute(&mut *conn).await?;
    let text = sql(conn, "INSERT INTO totp_factors (user_id, secret, created_at) VALUES (?, ?, ?)");
    let inserted = sqlx::query(&text)
        .bind(user_id.to_string())
        .bind(sealed_secret.to_owned())
        .bind(now.as_micros())
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from);
    match inserted {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(other) => Err(other),
    }
}

/// Accepts the code of `step` once: records it as the last used (and confirms the factor when
/// `confirming`), only if no code of this step or a later one was accepted before; `false`
/// otherwise (a replay), or when there is no such factor.
pub async fn use_step(
    conn: &mut AnyConnection,
    user_id: Uuid,
    step: u64,
    confirming: bool,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let step = i64::try_from(step).map_err(|_| StoreError::Corrupt(format!("TOTP step {step}")))?;
    let state = if confirming { "confirmed_at IS NULL" } else { "confirmed_at IS NOT NULL" };
    let statement = format!(
        "UPDATE totp_factors SET last_step = ?, confirmed_at = COALESCE(confirmed_at, ?) \
         WHERE user_id = ? AND {state} AND (last_step IS NULL OR last_step < ?)"
    );
    let text = sql(conn, &statement);
    let used = sqlx::query(&text)
        .bind(step)
        .bind(now.as_micros())
        .bind(user_id.to_string())
        .bind(step)
        .execute(&mut *conn)
        .await?;
    Ok(used.rows_affected() == 1)
}

/// Every TOTP secret as stored, by account, for sealing the ones stored in clear.
pub async fn totp_secrets(conn: &mut AnyConnection) -> Result<Vec<(Uuid, String)>, StoreError> {
    let rows = sqlx::query("SELECT user_id, secret FROM totp_factors").fetch_all(&mut *conn).await?;
    rows.iter().map(|row| Ok((uuid_column(row, "user_id")?, row.try_get("secret")?))).collect()
}

/// Replaces an account's TOTP secret with `new` only while it is still `old`.
pub async fn replace_totp_secret(
    conn: &mut AnyConnection,
    user_id: Uuid,
    old: &str,
    new: &str,
) -> Result<bool, StoreError> {
    let text = sql(conn, "UPDATE totp_factors SET secret = ? WHERE user_id = ? AND secret = ?");
    let replaced = sqlx::query(&text)
        .bind(new.to_owned())
        .bind(user_id.to_string())
        .bind(old.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(replaced.rows_affected() == 1)
}

pub async fn delete_totp(conn: &mut AnyConnection, user_id: Uuid) -> Result<bool, StoreError> {
    let text = sql(conn, "DELETE FROM totp_factors WHERE user_id = ?");
    Ok(sqlx::query(&text).bind(user_id.to_string()).execute(&mut *conn).await?.rows_affected() > 0)
}

/// Replaces the account's recovery codes with `digests`.
pub async fn replace_recovery_codes(
    conn: &mut AnyConnection,
    user_id: Uuid,
    digests: &[String],
    now: Timestamp,
) -> Result<(), StoreError> {
    delete_recovery_codes(conn, user_id).await?;
    let rows = vec!["(?, ?, ?)"; digests.len()].join(", ");
    let statement = format!("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES {rows}");
    let text = sql(conn, &statement);
    let mut query = sqlx::query(&text);
    for digest in digests {
        query = query.bind(user_id.to_string()).bind(digest.clone()).bind(now.as_micros());
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

pub async fn delete_recovery_codes(conn: &mut AnyConnection, user_id: Uuid) -> Result<(), StoreError> {
    let text = sql(conn, "DELETE FROM recovery_codes WHERE user_id = ?");
    sqlx::query(&text).bind(user_id.to_string()).execute(&mut *conn).await?;
    Ok(())
}

/// Marks the unused code with `digest` used; `false` when the account has no such unused code.
pub async fn use_recovery_code(
    conn: &mut AnyConnection,
    user_id: Uuid,
    digest: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let text =
        sql(conn, "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL");
    let used = sqlx::query(&text)
        .bind(now.as_micros())
        .bind(user_id.to_string())
        .bind(digest.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(used.rows_affected() == 1)
}

pub async fn insert_mfa_token(
    conn: &mut AnyConnection,
    digest: &str,
    user_id: Uuid,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    let text = sql(conn, "INSERT INTO mfa_tokens (token_hash, user_id, expires_at, created_at) VALUES (?, ?, ?, ?)");
    sqlx::query(&text)
        .bind(digest.to_owned())
        .bind(user_id.to_string())
        .bind(expires_at.as_micros())
        .bind(now.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The account a live MFA token stands for.
pub async fn mfa_token_user(
    conn: &mut AnyConnection,
    digest: &str,
    now: Timestamp,
) -> Result<Option<Uuid>, StoreError> {
    let text = sql(conn, "SELECT user_id FROM mfa_tokens WHERE token_hash = ? AND expires_at > ?");
    let row = sqlx::query(&text).bind(digest.to_owned()).bind(now.as_micros()).fetch_optional(&mut *conn).await?;
    row.map(|row| uuid_column(&row, "user_id")).transpose()
}

/// Uses up a live MFA token; `false` when it was used (or expired) meanwhile.
pub async fn take_mfa_token(conn: &mut AnyConnection, digest: &str, now: Timestamp) -> Result<bool, StoreError> {
    let text = sql(conn, "DELETE FROM mfa_tokens WHERE token_hash = ? AND expires_at > ?");
    let taken = sqlx::query(&text).bind(digest.to_owned()).bind(now.as_micros()).execute(&mut *conn).await?;
    Ok(taken.rows_affected() == 1)
}

/// Ends every second step the account's password has opened (its factors changed).
pub async fn delete_mfa_tokens_of(conn: &mut AnyConnection, user_id: Uuid) -> Result<(), StoreError> {
    let text = sql(conn, "DELETE FROM mfa_tokens WHERE user_id = ?");
    sqlx::query(&text).bind(user_id.to_string()).execute(&mut *conn).await?;
    Ok(())
}

/// Deletes up to `limit` MFA tokens that expired before `before`; answers how many.
pub async fn delete_mfa_tokens_before(
    conn: &mut AnyConnection,
    before: Timestamp,
    limit: i64,
) -> Result<u64, StoreError> {
    Ok(delete_older_than(conn, "mfa_tokens", "token_hash", "expires_at", before.as_micros(), limit).await?)
}
