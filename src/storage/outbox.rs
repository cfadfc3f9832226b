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
}

/// A claimed mail and how often it was tried before.
#[derive(Debug, Clone)]
pub struct ClaimedMail {
    pub mail: OutgoingMail,
    pub attempts: i64,
}

pub async fn enqueue(conn: &mut AnyConnection, mail: &OutgoingMail, now: Timestamp) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "INSERT INTO outbox (id, recipient, subject, text_body, html_body, created_at, attempts, next_attempt_at) \
         VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
    );
    sqlx::query(&text)
        .bind(mail.id.to_string())
        .bind(mail.recipient.clone())
        .bind(mail.subject.clone())
        .bind(mail.text_body.clone())
        .bind(mail.html_body.clone())
        .bind(now.as_micros())
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
        "SELECT id FROM outbox WHERE next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?) \
         ORDER BY next_attempt_at LIMIT ?",
    );
    let rows = sqlx::query(&text).bind(now.as_micros()).bind(now.as_micros()).bind(limit).fetch_all(&mut *conn).await?;
    let take = sql(
        conn,
        "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE id = ? AND (lease_until IS NULL OR lease_until < ?)",
    );
    let read = sql(
        conn,
        "SELECT id, recipient, subject, text_body, html_body, attempts FROM outbox WHERE id = ? AND lease_owner = ?",
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
            },
            attempts: row.try_get("attempts")?,
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

/// Records a failed attempt and when to try again; releases the lease.
pub async fn reschedule(
    conn: &mut AnyConnection,
    id: Uuid,
    owner: Uuid,
    next_attempt_at: Timestamp,
    error: &str,
) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL, \
         last_error = ? WHERE id = ? AND lease_owner = ?",
    );
    let error: String = error.chars().take(500).collect();
    sqlx::query(&text)
        .bind(next_attempt_at.as_micros())
        .bind(error)
        .bind(id.to_string())
        .bind(owner.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Mails not yet delivered.
pub async fn depth(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox").fetch_one(&mut *conn).await?;
    Ok(row.try_get::<i64, _>("n")?)
}
