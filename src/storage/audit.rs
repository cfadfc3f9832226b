//! The `audit_events` table.

use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{delete_older_than, sql, text_column};
use crate::domain::audit::AuditEvent;
use crate::domain::time::Timestamp;

pub async fn insert(conn: &mut AnyConnection, event: &AuditEvent) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "INSERT INTO audit_events (id, type, actor_id, user_id, ip, user_agent, detail, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    sqlx::query(&text)
        .bind(event.id.to_string())
        .bind(event.kind.as_str())
        .bind(event.actor_id.map(|id| id.to_string()))
        .bind(event.user_id.map(|id| id.to_string()))
        .bind(event.ip.clone())
        .bind(event.user_agent.clone())
        .bind(event.detail.to_string())
        .bind(event.created_at.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub kind: String,
    pub actor_id: Option<String>,
    pub user_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: String,
    pub created_at: Timestamp,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<Uuid>,
    pub kind: Option<String>,
}

/// Up to `limit` events matching `filter`, newest first, older than the event `before` when
/// given. Ids are time-ordered, so `(user_id, id)` and `(type, id)` indexes serve every filter.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &AuditFilter,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    if let Some(user_id) = filter.user_id {
        conditions.push("user_id = ?");
        values.push(user_id.to_string());
    }
    if let Some(kind) = &filter.kind {
        conditions.push("type = ?");
        values.push(kind.clone());
    }
    if let Some(before) = before {
        conditions.push("id < ?");
        values.push(before.to_owned());
    }
    let clause = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let statement = format!(
        "SELECT id, type, actor_id, user_id, ip, user_agent, detail, created_at FROM audit_events {clause} \
         ORDER BY id DESC LIMIT ?"
    );
    let text = sql(conn, &statement);
    let mut query = sqlx::query(&text);
    for value in values {
        query = query.bind(value);
    }
    let rows = query.bind(limit).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            Ok(StoredEvent {
                id: row.try_get("id")?,
                kind: row.try_get("type")?,
                actor_id: row.try_get("actor_id")?,
                user_id: row.try_get("user_id")?,
                ip: row.try_get("ip")?,
                user_agent: row.try_get("user_agent")?,
                detail: text_column(row, "detail")?,
                created_at: Timestamp::from_micros(row.try_get("created_at")?),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Deletes up to `limit` events older than `before`; answers how many.
pub async fn delete_before(conn: &mut AnyConnection, before: Timestamp, limit: i64) -> Result<u64, StoreError> {
    Ok(delete_older_than(conn, "audit_events", "id", "created_at", before.as_micros(), limit).await?)
}
