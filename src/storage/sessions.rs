//! The `sessions` and `refresh_tokens` tables.

use std::sync::LazyLock;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{delete_where_in, sql};
use super::users;

use crate::domain::session::{Session, SessionPosition, SessionState, SignInProof};
use crate::domain::time::Timestamp;

pub async fn insert(conn: &mut AnyConnection, session: &Session) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, max_expires_at, \
         revoked_at, user_agent, ip, amr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(session.proof.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The session and its whole user in one query, as an authenticated request needs them;
/// `None` when the session (or its user) no longer exists.
pub async fn state(conn: &mut AnyConnection, session_id: Uuid) -> Result<Option<SessionState>, StoreError> {
    static STATEMENT: LazyLock<String> = LazyLock::new(|| {
        let user_columns: Vec<String> = users::COLUMNS.split(", ").map(|c| format!("u.{c}")).collect();
        format!(
            "SELECT s.expires_at AS session_expires_at, s.revoked_at AS session_revoked_at, s.amr AS session_amr, {} \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?",
            user_columns.join(", ")
        )
    });
    let text = sql(conn, &STATEMENT);
    let Some(row) = sqlx::query(&text).bind(session_id.to_string()).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let amr: String = row.try_get("session_amr")?;
    Ok(Some(SessionState {
        user: users::user_from_row(&row)?,
        proof: SignInProof::parse(&amr).ok_or_else(|| StoreError::Corrupt(format!("session amr {amr}")))?,
        expires_at: Timestamp::from_micros(row.try_get("session_expires_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("session_revoked_at")?.map(Timestamp::from_micros),
    }))
}

/// Revokes every live session of `user_id` except `keep`; answers how many it revoked.
pub async fn revoke_all_except(
    conn: &mut AnyConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let text = sql(conn, "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND id <> ? AND revoked_at IS NULL");
    let result = sqlx::query(&text)
        .bind(now.as_micros())
        .bind(user_id.to_string())
        .bind(keep.map(|id| id.to_string()).unwrap_or_default())
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected())
}

pub(super) const COLUMNS: &str =
    "id, user_id, created_at, last_used_at, expires_at, max_expires_at, revoked_at, user_agent, ip, amr";

/// Up to `limit` sessions of `user_id` that are neither revoked nor expired at `now`, newest
/// first, after `after` when given.
pub async fn list_live(
    conn: &mut AnyConnection,
    user_id: Uuid,
    now: Timestamp,
    after: Option<&SessionPosition>,
    limit: i64,
) -> Result<Vec<Session>, StoreError> {
    let page = if after.is_some() { "AND (created_at < ? OR (created_at = ? AND id < ?))" } else { "" };
    let statement = format!(
        "SELECT {COLUMNS} FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? {page} \
         ORDER BY created_at DESC, id DESC LIMIT ?"
    );
    let text = sql(conn, &statement);
    let mut query = sqlx::query(&text).bind(user_id.to_string()).bind(now.as_micros());
    if let Some(after) = after {
        query = query.bind(after.created_at).bind(after.created_at).bind(after.id.clone());
    }
    let rows = query.bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(session_from_row).collect()
}

/// Most sessions ended in one go when an account is over its limit (only concurrent sign-ins
/// can put it more than one over, and they queue on the account's row).
const OVER_LIMIT_BATCH: i64 = 1_000;

/// Revokes the live sessions of `user_id` beyond `keep`: the session `new` always stays (a
/// sign-in that waited for the account's lock may carry an older time than one that did not),
/// with the newest others. Answers how many ended.
pub async fn revoke_beyond(
    conn: &mut AnyConnection,
    user_id: Uuid,
    new: Uuid,
    keep: u32,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let text = sql(
        conn,
        "SELECT id FROM sessions WHERE user_id = ? AND id <> ? AND revoked_at IS NULL AND expires_at > ? \
         ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
    );
    let rows = sqlx::query(&text)
        .bind(user_id.to_string())
        .bind(new.to_string())
        .bind(now.as_micros())
        .bind(OVER_LIMIT_BATCH)
        .bind(i64::from(keep.saturating_sub(1)))
        .fetch_all(&mut *conn)
        .await?;
    let ids = rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    let statement = format!("UPDATE sessions SET revoked_at = ? WHERE id IN ({})", vec!["?"; ids.len()].join(", "));
    let text = sql(conn, &statement);
    let mut query = sqlx::query(&text).bind(now.as_micros());
    for id in ids {
        query = query.bind(id);
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}

/// Records a refresh of a live session: it was used at `now` and now ends at `expires_at`.
/// `false` when the session is revoked, ended or gone, or its account not active, and was
/// left alone.
pub async fn extend(
    conn: &mut AnyConnection,
    id: Uuid,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<bool, StoreError> {
    let text = sql(
        conn,
        "UPDATE sessions SET last_used_at = ?, expires_at = ? WHERE id = ? AND revoked_at IS NULL AND expires_at > ? \
         AND user_id IN (SELECT id FROM users WHERE status = 'active')",
    );
    let result = sqlx::query(&text)
        .bind(now.as_micros())
        .bind(expires_at.as_micros())
        .bind(id.to_string())
        .bind(now.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Revokes one live session of `user_id`; `false` when there is no such live session.
pub async fn revoke(conn: &mut AnyConnection, id: Uuid, user_id: Uuid, now: Timestamp) -> Result<bool, StoreError> {
    let text = sql(
        conn,
        "UPDATE sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?",
    );
    let result = sqlx::query(&text)
        .bind(now.as_micros())
        .bind(id.to_string())
        .bind(user_id.to_string())
        .bind(now.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Deletes up to `limit` sessions that expired before `expired_before` or were revoked
/// before `revoked_before`, with their refresh tokens; answers how many.
pub async fn delete_ended(
    conn: &mut AnyConnection,
    expired_before: Timestamp,
    revoked_before: Timestamp,
    limit: i64,
) -> Result<u64, StoreError> {
    let text = sql(conn, "SELECT id FROM sessions WHERE expires_at < ? OR revoked_at < ? LIMIT ?");
    let rows = sqlx::query(&text)
        .bind(expired_before.as_micros())
        .bind(revoked_before.as_micros())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let ids = rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?;
    delete_where_in(conn, "refresh_tokens", "session_id", &ids).await?;
    Ok(delete_where_in(conn, "sessions", "id", &ids).await?)
}

fn session_from_row(row: &AnyRow) -> Result<Session, StoreError> {
    session_from_prefixed_row(row, "")
}

/// The session in `row`, whose columns are named `{prefix}{column}` (so that a join with
/// another table's `id` and `created_at` can tell them apart).
pub(super) fn session_from_prefixed_row(row: &AnyRow, prefix: &str) -> Result<Session, StoreError> {
    let column = |name: &str| format!("{prefix}{name}");
    let id: String = row.try_get(column("id").as_str())?;
    let user_id: String = row.try_get(column("user_id").as_str())?;
    let parse = |text: &str| Uuid::try_parse(text).map_err(|_| StoreError::Corrupt(format!("session row id {text}")));
    let instant = |name: &str| row.try_get::<i64, _>(column(name).as_str()).map(Timestamp::from_micros);
    let amr: String = row.try_get(column("amr").as_str())?;
    Ok(Session {
        id: parse(&id)?,
        user_id: parse(&user_id)?,
        created_at: instant("created_at")?,
        last_used_at: instant("last_used_at")?,
        expires_at: instant("expires_at")?,
        max_expires_at: instant("max_expires_at")?,
        revoked_at: row.try_get::<Option<i64>, _>(column("revoked_at").as_str())?.map(Timestamp::from_micros),
        user_agent: row.try_get(column("user_agent").as_str())?,
        ip: row.try_get(column("ip").as_str())?,
        proof: SignInProof::parse(&amr).ok_or_else(|| StoreError::Corrupt(format!("session amr {amr}")))?,
    })
}
