//! The `audit_events` table.

use sqlx::AnyConnection;

use super::error::StoreError;
use super::sql::sql;
use crate::domain::audit::AuditEvent;

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
