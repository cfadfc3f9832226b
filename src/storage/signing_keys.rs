//! The `signing_keys` table: token signing keys live in the database so that every node and
//! every restart signs and verifies with the same keys.

use sqlx::{AnyConnection, Row as _};

use super::error::StoreError;
use super::sql::{Backend, sql, text_column};
use crate::domain::time::Timestamp;

/// A key as stored: the secret part in base64url, which also yields the public part.
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: String,
    pub secret_key: String,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Every stored key, newest first.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<StoredKey>, StoreError> {
    let rows = sqlx::query(
        "SELECT kid, algorithm, secret_key, created_at, retired_at FROM signing_keys \
         ORDER BY created_at DESC, kid DESC",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredKey {
                kid: row.try_get("kid")?,
                algorithm: row.try_get("algorithm")?,
                secret_key: text_column(row, "secret_key")?,
                created_at: Timestamp::from_micros(row.try_get("created_at")?),
                retired_at: row.try_get::<Option<i64>, _>("retired_at")?.map(Timestamp::from_micros),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Holds, until `tx` ends, the lock every change of the current key takes: nodes starting
/// together on a fresh database then make one key between them, not one each (each would sign
/// with its own, which the others know only after a reload), and a rotation cannot miss a key
/// made meanwhile. The lock is that of a row every database has, migration 1's; on SQLite
/// `BEGIN IMMEDIATE` has taken the write lock already.
pub async fn lock_current(tx: &mut AnyConnection) -> Result<(), StoreError> {
    if Backend::of(tx) != Backend::Sqlite {
        sqlx::query("SELECT version FROM tessera_migrations WHERE version = 1 FOR UPDATE").execute(&mut *tx).await?;
    }
    Ok(())
}

pub async fn insert(conn: &mut AnyConnection, key: &StoredKey) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "INSERT INTO signing_keys (kid, algorithm, secret_key, created_at, retired_at) VALUES (?, ?, ?, ?, ?)",
    );
    sqlx::query(&text)
        .bind(key.kid.clone())
        .bind(key.algorithm.clone())
        .bind(key.secret_key.clone())
        .bind(key.created_at.as_micros())
        .bind(key.retired_at.map(Timestamp::as_micros))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks every unretired key except `current` as retired at `now`.
pub async fn retire_all_except(conn: &mut AnyConnection, current: &str, now: Timestamp) -> Result<u64, StoreError> {
    let text = sql(conn, "UPDATE signing_keys SET retired_at = ? WHERE kid <> ? AND retired_at IS NULL");
    let result = sqlx::query(&text).bind(now.as_micros()).bind(current.to_owned()).execute(&mut *conn).await?;
    Ok(result.rows_affected())
}

/// Deletes keys retired before `before`: no token they signed can still be alive.
pub async fn delete_retired_before(conn: &mut AnyConnection, before: Timestamp) -> Result<u64, StoreError> {
    let text = sql(conn, "DELETE FROM signing_keys WHERE retired_at < ?");
    let result = sqlx::query(&text).bind(before.as_micros()).execute(&mut *conn).await?;
    Ok(result.rows_affected())
}

/// Replaces the stored secret of key `kid`, only if it still holds `old`; answers whether it did.
pub async fn replace_secret(conn: &mut AnyConnection, kid: &str, old: &str, new: &str) -> Result<bool, StoreError> {
    let text = sql(conn, "UPDATE signing_keys SET secret_key = ? WHERE kid = ? AND secret_key = ?");
    let result =
        sqlx::query(&text).bind(new.to_owned()).bind(kid.to_owned()).bind(old.to_owned()).execute(&mut *conn).await?;
    Ok(result.rows_affected() == 1)
}
