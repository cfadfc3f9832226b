//! The `audit_events` table.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{AnyQuery, delete_older_than, optional_uuid_column, sql, text_column, uuid_column};
use crate::domain::audit::{AuditEvent, AuditFilter, EventType};
use crate::domain::time::Timestamp;

/// The statement that writes `count` events, for [`bind_event`] once per event; also part of
/// bigger statements.
pub fn insert_events_statement(count: usize) -> String {
    let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; count].join(", ");
    format!("INSERT INTO audit_events (id, type, actor_id, user_id, ip, user_agent, detail, created_at) VALUES {rows}")
}

pub async fn insert(conn: &mut AnyConnection, event: &AuditEvent) -> Result<(), StoreError> {
    let statement = insert_events_statement(1);
    let text = sql(conn, &statement);
    bind_event(sqlx::query(&text), event).execute(&mut *conn).await?;
    Ok(())
}

/// Binds the values of one row of [`insert_events_statement`].
pub fn bind_event<'q>(query: AnyQuery<'q>, event: &AuditEvent) -> AnyQuery<'q> {
    query
        .bind(event.id.to_string())
        .bind(event.kind.as_str())
        .bind(event.actor_id.map(|id| id.to_string()))
        .bind(event.user_id.map(|id| id.to_string()))
        .bind(event.ip.clone())
        .bind(event.user_agent.clone())
        .bind(event.detail.to_string())
        .bind(event.created_at.as_micros())
}

/// Up to `limit` events matching `filter`, newest first, older than the event `before` when
/// given. Ids are time-ordered, so `(user_id, id)` and `(type, id)` indexes serve every filter.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &AuditFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
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
        values.push(before.to_string());
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
    rows.iter().map(event_from_row).collect()
}

fn event_from_row(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    let kind: String = row.try_get("type")?;
    let detail = text_column(row, "detail")?;
    Ok(AuditEvent {
        id: uuid_column(row, "id")?,
        kind: EventType::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("audit event type {kind}")))?,
        actor_id: optional_uuid_column(row, "actor_id")?,
        user_id: optional_uuid_column(row, "user_id")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
    })
}

/// Deletes up to `limit` events older than `before`; answers how many.
pub async fn delete_before(conn: &mut AnyConnection, before: Timestamp, limit: i64) -> Result<u64, StoreError> {
    Ok(delete_older_than(conn, "audit_events", "id", "created_at", before.as_micros(), limit).await?)
}
