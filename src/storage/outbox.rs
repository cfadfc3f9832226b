//! The `outbox` table: mails waiting for the SMTP server, claimed by leases so that one mail
//! goes out once however many nodes run workers.

use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{sql, text_column};
use crate::domain::time::Timestamp;

/// A mail as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    /// When the link the mail carries stops working; such a mail is dropped, not sent, after.
    pub expires_at: Option<Timestamp>,
}

/// A claimed mail, how often it was tried before, and since when it has been queued.
#[derive(Debug, Clone)]
pub struct ClaimedMail {
    pub mail: OutgoingMail,
    pub attempts: i64,
    pub queued_at: Timestamp,
}

/// A mail set aside after failing for too long, as an operator sees it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub failed_at: Timestamp,
}

pub async fn enqueue(conn: &mut AnyConnection, mail: &OutgoingMail, now: Timestamp) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "INSERT INTO outbox (id, recipient, subject, text_body, html_body, created_at, attempts, next_attempt_at, \
         expires_at, queued_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
    );
    sqlx::query(&text)
        .bind(mail.id.to_string())
        .bind(mail.recipient.clone())
        .bind(mail.subject.clone())
        .bind(mail.text_body.clone())
        .bind(mail.html_body.clone())
        .bind(now.as_micros())
        .bind(now.as_micros())
        .bind(mail.expires_at.map(Timestamp::as_micros))
        .bind(now.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Claims up to `limit` due mails for `owner` until `lease_until`. Each row is taken by a
/// conditional update, so of two workers racing for one row exactly one wins it.
pub async fn claim(
    conn: &mut AnyConnection,
    owner: Uuid,
    now: Timestamp,
    lease_until: Timestamp,
    limit: i64,
) -> Result<Vec<ClaimedMail>, StoreError> {
    let text = sql(
        conn,
        "SELECT id FROM outbox WHERE failed_at IS NULL AND next_attempt_at <= ? \
         AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id LIMIT ?",
    );
    let rows = sqlx::query(&text).bind(now.as_micros()).bind(now.as_micros()).bind(limit).fetch_all(&mut *conn).await?;
    let take = sql(
        conn,
        "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE id = ? AND failed_at IS NULL \
         AND (lease_until IS NULL OR lease_until < ?)",
    );
    let read = sql(
        conn,
        "SELECT id, recipient, subject, text_body, html_body, attempts, expires_at, queued_at, created_at FROM outbox \
         WHERE id = ? AND lease_owner = ?",
    );
    let mut claimed = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        let won = sqlx::query(&take)
            .bind(owner.to_string())
            .bind(lease_until.as_micros())
            .bind(id.clone())
            .bind(now.as_micros())
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1;
        if !won {
            continue;
        }
        let Some(row) = sqlx::query(&read).bind(id.clone()).bind(owner.to_string()).fetch_optional(&mut *conn).await?
        else {
            continue;
        };
        claimed.push(ClaimedMail {
            mail: OutgoingMail {
                id: Uuid::try_parse(&id).map_err(|_| StoreError::Corrupt(format!("outbox id {id}")))?,
                recipient: row.try_get("recipient")?,
                subject: row.try_get("subject")?,
                text_body: text_column(&row, "text_body")?,
                html_body: text_column(&row, "html_body")?,
                expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(Timestamp::from_micros),
            },
            attempts: row.try_get("attempts")?,
            queued_at: Timestamp::from_micros(
                row.try_get::<Option<i64>, _>("queued_at")?.map_or_else(|| row.try_get("created_at"), Ok)?,
            ),
        });
    }
    Ok(claimed)
}

/// Removes a delivered mail, if `owner` still holds it.
pub async fn delete_sent(conn: &mut AnyConnection, id: Uuid, owner: Uuid) -> Result<(), StoreError> {
    let text = sql(conn, "DELETE FROM outbox WHERE id = ? AND lease_owner = ?");
    sqlx::query(&text).bind(id.to_string()).bind(owner.to_string()).execute(&mut *conn).await?;
    Ok(())
}

/// What becomes of a mail after a failed attempt.
#[derive(Debug, Clone, Copy)]
pub enum AfterFailure {
    /// Tried again from this instant.
    RetryAt(Timestamp),
    /// Set aside as a dead letter at this instant: kept for an operator to read and requeue,
    /// never claimed until then.
    SetAside(Timestamp),
}

/// Records a failed attempt and what follows it, if `owner` still holds the mail; releases the
/// lease.
pub async fn record_failure(
    conn: &mut AnyConnection,
    id: Uuid,
    owner: Uuid,
    after: AfterFailure,
    error: &str,
) -> Result<(), StoreError> {
    let (column, at) = match after {
        AfterFailure::RetryAt(at) => ("next_attempt_at", at),
        AfterFailure::SetAside(at) => ("failed_at", at),
    };
    let statement = format!(
        "UPDATE outbox SET attempts = attempts + 1, {column} = ?, lease_owner = NULL, lease_until = NULL, \
         last_error = ? WHERE id = ? AND lease_owner = ?"
    );
    let text = sql(conn, &statement);
    let error: String = error.chars().take(500).collect();
    sqlx::query(&text)
        .bind(at.as_micros())
        .bind(error)
        .bind(id.to_string())
        .bind(owner.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Mails waiting to be delivered, and mails set aside as dead letters.
pub async fn depth(conn: &mut AnyConnection) -> Result<(i64, i64), StoreError> {
    let waiting = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE failed_at IS NULL").fetch_one(&mut *conn).await?;
    let dead =
        sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE failed_at IS NOT NULL").fetch_one(&mut *conn).await?;
    Ok((waiting.try_get("n")?, dead.try_get("n")?))
}

/// The dead letters, oldest first.
pub async fn dead_letters(conn: &mut AnyConnection) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, recipient, subject, attempts, last_error, created_at, failed_at FROM outbox \
         WHERE failed_at IS NOT NULL ORDER BY failed_at, id",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            Ok(DeadLetter {
                id: Uuid::try_parse(&id).map_err(|_| StoreError::Corrupt(format!("outbox id {id}")))?,
                recipient: row.try_get("recipient")?,
                subject: row.try_get("subject")?,
                attempts: row.try_get("attempts")?,
                last_error: row.try_get("last_error")?,
                created_at: Timestamp::from_micros(row.try_get("created_at")?),
                failed_at: Timestamp::from_micros(row.try_get("failed_at")?),
            })
        })
        .collect()
}

/// Puts dead letters back in the queue, due now and with a fresh time allowance: those with
/// `ids`, or all of them with `None`. Answers how many.
pub async fn requeue(conn: &mut AnyConnection, ids: Option<&[Uuid]>, now: Timestamp) -> Result<u64, StoreError> {
    let only = match ids {
        Some([]) => return Ok(0),
        Some(ids) => format!(" AND id IN ({})", vec!["?"; ids.len()].join(", ")),
        None => String::new(),
    };
    let statement = format!(
        "UPDATE outbox SET failed_at = NULL, next_attempt_at = ?, queued_at = ? WHERE failed_at IS NOT NULL{only}"
    );
    let text = sql(conn, &statement);
    let mut query = sqlx::query(&text).bind(now.as_micros()).bind(now.as_micros());
    for id in ids.unwrap_or_default() {
        query = query.bind(id.to_string());
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}
