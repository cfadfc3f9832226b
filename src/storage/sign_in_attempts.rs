//! Sign-in failure counters (see [`crate::domain::lockout`]): per account, per name no account
//! has, and per (account, client network).

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{Backend, delete_older_than, keep_existing, sql};
use crate::domain::lockout::Tally;
use crate::domain::time::Timestamp;

/// A counter's key and, for an account's counters, the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey {
    pub key: String,
    pub user_id: Option<Uuid>,
}

/// The counters at `keys`, created fresh where missing and locked until the transaction ends,
/// in key order (so two attempts locking the same pair cannot deadlock). Answered in the order
/// of `keys`.
pub async fn lock(tx: &mut AnyConnection, keys: &[&CounterKey], now: Timestamp) -> Result<Vec<Tally>, StoreError> {
    let mut sorted: Vec<&CounterKey> = keys.to_vec();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    sorted.dedup_by(|a, b| a.key == b.key);
    let conflict = keep_existing(tx, "attempt_key");
    let rows = vec!["(?, ?, 0, 0, 0, 0, NULL, ?, ?)"; sorted.len()].join(", ");
    let text = format!(
        "INSERT INTO sign_in_attempts (attempt_key, user_id, failures, pending, pending_since, locked_until, known_at, \
         updated_at, forget_at) VALUES {rows} {conflict}"
    );
    let text = sql(tx, &text);
    let mut insert = sqlx::query(&text);
    for counter in &sorted {
        let fresh = Tally::fresh(now);
        insert = insert
            .bind(counter.key.clone())
            .bind(counter.user_id.map(|id| id.to_string()))
            .bind(fresh.updated_at.as_micros())
            .bind(fresh.forget_at.as_micros());
    }
    insert.execute(&mut *tx).await?;
    let places = vec!["?"; sorted.len()].join(", ");
    let lock = if Backend::of(tx) == Backend::Sqlite { "" } else { " FOR UPDATE" };
    let text = format!(
        "SELECT attempt_key, failures, pending, pending_since, locked_until, known_at, updated_at, forget_at \
         FROM sign_in_attempts \
         WHERE attempt_key IN ({places}) ORDER BY attempt_key{lock}"
    );
    let text = sql(tx, &text);
    let mut select = sqlx::query(&text);
    for counter in &sorted {
        select = select.bind(counter.key.clone());
    }
    let found = select.fetch_all(&mut *tx).await?;
    keys.iter()
        .map(|wanted| {
            let row = found.iter().find(|row| row.try_get::<String, _>(0).is_ok_and(|k| k == wanted.key));
            row.map_or(Ok(Tally::fresh(now)), tally)
        })
        .collect()
}

fn tally(row: &AnyRow) -> Result<Tally, StoreError> {
    let count = |column: &str| row.try_get::<i64, _>(column).map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    Ok(Tally {
        failures: count("failures")?,
        pending: count("pending")?,
        pending_since: Timestamp::from_micros(row.try_get("pending_since")?),
        locked_until: Timestamp::from_micros(row.try_get("locked_until")?),
        known_at: row.try_get::<Option<i64>, _>("known_at")?.map(Timestamp::from_micros),
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
        forget_at: Timestamp::from_micros(row.try_get("forget_at")?),
    })
}

/// Writes a counter back.
pub async fn save(tx: &mut AnyConnection, key: &CounterKey, tally: &Tally) -> Result<(), StoreError> {
    let text = sql(
        tx,
        "UPDATE sign_in_attempts SET failures = ?, pending = ?, pending_since = ?, locked_until = ?, known_at = ?, \
         updated_at = ?, forget_at = ? WHERE attempt_key = ?",
    );
    sqlx::query(&text)
        .bind(i64::from(tally.failures))
        .bind(i64::from(tally.pending))
        .bind(tally.pending_since.as_micros())
        .bind(tally.locked_until.as_micros())
        .bind(tally.known_at.map(Timestamp::as_micros))
        .bind(tally.updated_at.as_micros())
        .bind(tally.forget_at.as_micros())
        .bind(key.key.clone())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// After a right password: the counters the attempt charged (the account's only when
/// `account_charged`: a known device's sign-in leaves the account-wide count alone, or each
/// visit home would hand an attacker elsewhere a fresh set of guesses) start again and hand
/// back their slots, and `known` (the client's, when the
/// sign-in completed) is remembered as a device of the account's until `remember_until`.
pub async fn clear_after_success(
    conn: &mut AnyConnection,
    account: &CounterKey,
    client: &CounterKey,
    account_charged: bool,
    known: Option<Timestamp>,
    remember_until: Timestamp,
) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "UPDATE sign_in_attempts SET \
         failures = CASE WHEN attempt_key = ? OR ? = 1 THEN 0 ELSE failures END, \
         locked_until = CASE WHEN attempt_key = ? OR ? = 1 THEN 0 ELSE locked_until END, \
         pending = CASE WHEN pending > 0 AND (attempt_key = ? OR ? = 1) THEN pending - 1 ELSE pending END, \
         known_at = CASE WHEN attempt_key = ? AND ? = 1 THEN ? ELSE known_at END, \
         forget_at = CASE WHEN attempt_key = ? AND ? = 1 AND forget_at < ? THEN ? ELSE forget_at END \
         WHERE attempt_key IN (?, ?)",
    );
    let remembered = i64::from(known.is_some());
    let at = known.map_or(0, Timestamp::as_micros);
    let charged = i64::from(account_charged);
    sqlx::query(&text)
        .bind(client.key.clone())
        .bind(charged)
        .bind(client.key.clone())
        .bind(charged)
        .bind(client.key.clone())
        .bind(charged)
        .bind(client.key.clone())
        .bind(remembered)
        .bind(at)
        .bind(client.key.clone())
        .bind(remembered)
        .bind(remember_until.as_micros())
        .bind(remember_until.as_micros())
        .bind(account.key.clone())
        .bind(client.key.clone())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Hands back a slot taken at `keys` whose password was never checked, or whose answer nobody
/// will see (the hashing pool was full, the database failed, the request was dropped).
pub async fn release(conn: &mut AnyConnection, keys: &[&CounterKey]) -> Result<(), StoreError> {
    let places = vec!["?"; keys.len()].join(", ");
    let text =
        format!("UPDATE sign_in_attempts SET pending = pending - 1 WHERE pending > 0 AND attempt_key IN ({places})");
    let text = sql(conn, &text);
    let mut update = sqlx::query(&text);
    for key in keys {
        update = update.bind(key.key.clone());
    }
    update.execute(&mut *conn).await?;
    Ok(())
}

/// Clears every counter of `user_id`'s (an administrator's unlock, a password reset); answers
/// how many were locked at `now`. Known devices stay known.
pub async fn clear_user(conn: &mut AnyConnection, user_id: Uuid, now: Timestamp) -> Result<u64, StoreError> {
    let count = sql(conn, "SELECT COUNT(*) FROM sign_in_attempts WHERE user_id = ? AND locked_until > ?");
    let locked: i64 =
        sqlx::query(&count).bind(user_id.to_string()).bind(now.as_micros()).fetch_one(&mut *conn).await?.try_get(0)?;
    let text = sql(
        conn,
        "UPDATE sign_in_attempts SET failures = 0, locked_until = 0 WHERE user_id = ? AND (failures > 0 OR locked_until > 0)",
    );
    sqlx::query(&text).bind(user_id.to_string()).execute(&mut *conn).await?;
    Ok(locked.unsigned_abs())
}

/// Deletes up to `limit` counters whose time to be forgotten came before `before`.
pub async fn delete_forgotten(conn: &mut AnyConnection, before: Timestamp, limit: i64) -> Result<u64, StoreError> {
    Ok(delete_older_than(conn, "sign_in_attempts", "attempt_key", "forget_at", before.as_micros(), limit).await?)
}
