//! The `passkeys` and `webauthn_challenges` tables. A challenge is taken by one `DELETE`, so of
//! two requests racing with one, only one gets it.

use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{delete_older_than, optional_uuid_column, sql, text_column, uuid_column};
use crate::domain::passkey::CeremonyPurpose;
use crate::domain::time::Timestamp;

/// A registered passkey, as stored.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The digest of the credential id (`domain::passkey::credential_key`).
    pub credential_key: String,
    pub name: String,
    /// webauthn-rs's `Passkey`, JSON.
    pub credential: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, user_id, credential_key, name, credential, created_at, last_used_at";

fn passkey(row: &sqlx::any::AnyRow) -> Result<StoredPasskey, StoreError> {
    Ok(StoredPasskey {
        id: uuid_column(row, "id")?,
        user_id: uuid_column(row, "user_id")?,
        credential_key: row.try_get("credential_key")?,
        name: row.try_get("name")?,
        credential: text_column(row, "credential")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(Timestamp::from_micros),
    })
}

pub async fn insert(conn: &mut AnyConnection, passkey: &StoredPasskey) -> Result<(), StoreError> {
    let statement = format!("INSERT INTO passkeys ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)");
    let text = sql(conn, &statement);
    sqlx::query(&text)
        .bind(passkey.id.to_string())
        .bind(passkey.user_id.to_string())
        .bind(passkey.credential_key.clone())
        .bind(passkey.name.clone())
        .bind(passkey.credential.clone())
        .bind(passkey.created_at.as_micros())
        .bind(passkey.last_used_at.map(Timestamp::as_micros))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The account's passkeys, oldest first.
pub async fn of_user(conn: &mut AnyConnection, user_id: Uuid) -> Result<Vec<StoredPasskey>, StoreError> {
    let statement = format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = ? ORDER BY created_at, id");
    let text = sql(conn, &statement);
    let rows = sqlx::query(&text).bind(user_id.to_string()).fetch_all(&mut *conn).await?;
    rows.iter().map(passkey).collect()
}

/// The passkey whose credential id has the digest `credential_key`, whichever account has it.
pub async fn by_credential(
    conn: &mut AnyConnection,
    credential_key: &str,
) -> Result<Option<StoredPasskey>, StoreError> {
    let statement = format!("SELECT {COLUMNS} FROM passkeys WHERE credential_key = ?");
    let text = sql(conn, &statement);
    let row = sqlx::query(&text).bind(credential_key.to_owned()).fetch_optional(&mut *conn).await?;
    row.as_ref().map(passkey).transpose()
}

/// Records a use: the credential's new state (its signature counter) and the time; `false` when
/// the passkey was removed meanwhile.
pub async fn record_use(
    conn: &mut AnyConnection,
    user_id: Uuid,
    credential_key: &str,
    credential: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let text =
        sql(conn, "UPDATE passkeys SET credential = ?, last_used_at = ? WHERE user_id = ? AND credential_key = ?");
    let used = sqlx::query(&text)
        .bind(credential.to_owned())
        .bind(now.as_micros())
        .bind(user_id.to_string())
        .bind(credential_key.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(used.rows_affected() == 1)
}

/// Removes one of the account's passkeys; `false` when it has none with that id.
pub async fn delete(conn: &mut AnyConnection, user_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
    let text = sql(conn, "DELETE FROM passkeys WHERE user_id = ? AND id = ?");
    let deleted = sqlx::query(&text).bind(user_id.to_string()).bind(id.to_string()).execute(&mut *conn).await?;
    Ok(deleted.rows_affected() == 1)
}

/// Removes every passkey of the account; answers how many.
pub async fn delete_all(conn: &mut AnyConnection, user_id: Uuid) -> Result<u64, StoreError> {
    let text = sql(conn, "DELETE FROM passkeys WHERE user_id = ?");
    Ok(sqlx::query(&text).bind(user_id.to_string()).execute(&mut *conn).await?.rows_affected())
}

/// A ceremony begun: what finishing it needs.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub purpose: CeremonyPurpose,
    /// The account it was begun for; none for a discoverable sign-in.
    pub user_id: Option<Uuid>,
    /// For a second step: the digest of the token the password earned.
    pub mfa_token_hash: Option<String>,
    /// webauthn-rs's ceremony state, JSON.
    pub state: String,
}

/// Stores a ceremony under the digest of its id. One per account and purpose: beginning another
/// replaces it, so a signed-in caller cannot fill the table.
pub async fn insert_challenge(
    conn: &mut AnyConnection,
    id_hash: &str,
    challenge: &Challenge,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    if let Some(user_id) = challenge.user_id {
        let text = sql(conn, "DELETE FROM webauthn_challenges WHERE user_id = ? AND purpose = ?");
        sqlx::query(&text).bind(user_id.to_string()).bind(challenge.purpose.as_str()).execute(&mut *conn).await?;
    }
    let text = sql(
        conn,
        "INSERT INTO webauthn_challenges (id_hash, purpose, user_id, mfa_token_hash, state, expires_at, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    sqlx::query(&text)
        .bind(id_hash.to_owned())
        .bind(challenge.purpose.as_str())
        .bind(challenge.user_id.map(|id| id.to_string()))
        .bind(challenge.mfa_token_hash.clone())
        .bind(challenge.state.clone())
        .bind(expires_at.as_micros())
        .bind(now.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A live ceremony, without using it up.
pub async fn peek_challenge(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: Timestamp,
) -> Result<Option<Challenge>, StoreError> {
    let text = sql(
        conn,
        "SELECT purpose, user_id, mfa_token_hash, state FROM webauthn_challenges WHERE id_hash = ? AND expires_at > ?",
    );
    let row = sqlx::query(&text).bind(id_hash.to_owned()).bind(now.as_micros()).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    let purpose: String = row.try_get("purpose")?;
    Ok(Some(Challenge {
        purpose: CeremonyPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("challenge purpose {purpose}")))?,
        user_id: optional_uuid_column(&row, "user_id")?,
        mfa_token_hash: row.try_get("mfa_token_hash")?,
        state: text_column(&row, "state")?,
    }))
}

/// Uses up a live ceremony: `None` when it is unknown, expired, or was taken meanwhile.
pub async fn take_challenge(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: Timestamp,
) -> Result<Option<Challenge>, StoreError> {
    let Some(challenge) = peek_challenge(conn, id_hash, now).await? else { return Ok(None) };
    let text = sql(conn, "DELETE FROM webauthn_challenges WHERE id_hash = ? AND expires_at > ?");
    let taken = sqlx::query(&text).bind(id_hash.to_owned()).bind(now.as_micros()).execute(&mut *conn).await?;
    Ok((taken.rows_affected() == 1).then_some(challenge))
}

/// Ends every ceremony begun for the account (its factors were reset).
pub async fn delete_challenges_of(conn: &mut AnyConnection, user_id: Uuid) -> Result<(), StoreError> {
    let text = sql(conn, "DELETE FROM webauthn_challenges WHERE user_id = ?");
    sqlx::query(&text).bind(user_id.to_string()).execute(&mut *conn).await?;
    Ok(())
}

/// Deletes up to `limit` ceremonies that expired before `before`; answers how many.
pub async fn delete_challenges_before(
    conn: &mut AnyConnection,
    before: Timestamp,
    limit: i64,
) -> Result<u64, StoreError> {
    Ok(delete_older_than(conn, "webauthn_challenges", "id_hash", "expires_at", before.as_micros(), limit).await?)
}
