//! The `holds` table. A hold leaves `pending` by exactly one conditional update
//! ([`end`]), so of a capture, a void and an expiry racing for it exactly one wins.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{sql, uuid_column};
use crate::domain::money::Currency;
use crate::domain::time::Timestamp;
use crate::domain::wallet::{Hold, HoldStatus};

const COLUMNS: &str = "id, from_wallet_id, to_wallet_id, amount, currency, status, captured_amount, transfer_id, \
     description, expires_at, created_at, updated_at";

pub async fn insert(conn: &mut AnyConnection, hold: &Hold) -> Result<(), StoreError> {
    let statement = format!("INSERT INTO holds ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    let text = sql(conn, &statement);
    sqlx::query(&text)
        .bind(hold.id.to_string())
        .bind(hold.from_wallet_id.to_string())
        .bind(hold.to_wallet_id.to_string())
        .bind(hold.amount)
        .bind(hold.currency.code())
        .bind(hold.status.as_str())
        .bind(hold.captured_amount)
        .bind(hold.transfer_id.map(|id| id.to_string()))
        .bind(hold.description.clone())
        .bind(hold.expires_at.as_micros())
        .bind(hold.created_at.as_micros())
        .bind(hold.updated_at.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn find(conn: &mut AnyConnection, id: Uuid) -> Result<Option<Hold>, StoreError> {
    let statement = format!("SELECT {COLUMNS} FROM holds WHERE id = ?");
    let text = sql(conn, &statement);
    let row = sqlx::query(&text).bind(id.to_string()).fetch_optional(&mut *conn).await?;
    row.as_ref().map(hold_from_row).transpose()
}

/// Ends a pending hold as `status` at `now`, if it is still pending and, unless it is being
/// expired, not yet expired; answers whether this call ended it.
pub async fn end(
    conn: &mut AnyConnection,
    id: Uuid,
    status: HoldStatus,
    captured: Option<(i64, Uuid)>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let timing = if status == HoldStatus::Expired { "expires_at <= ?" } else { "expires_at > ?" };
    let statement = format!(
        "UPDATE holds SET status = ?, captured_amount = ?, transfer_id = ?, updated_at = ? \
         WHERE id = ? AND status = 'pending' AND {timing}"
    );
    let text = sql(conn, &statement);
    let ended = sqlx::query(&text)
        .bind(status.as_str())
        .bind(captured.map(|(amount, _)| amount))
        .bind(captured.map(|(_, transfer)| transfer.to_string()))
        .bind(now.as_micros())
        .bind(id.to_string())
        .bind(now.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(ended.rows_affected() == 1)
}

/// Up to `limit` pending holds that expired before `now`.
pub async fn expired(conn: &mut AnyConnection, now: Timestamp, limit: i64) -> Result<Vec<Uuid>, StoreError> {
    let text =
        sql(conn, "SELECT id FROM holds WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT ?");
    let rows = sqlx::query(&text).bind(now.as_micros()).bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(|row| uuid_column(row, "id")).collect()
}

fn hold_from_row(row: &AnyRow) -> Result<Hold, StoreError> {
    let currency: String = row.try_get("currency")?;
    let status: String = row.try_get("status")?;
    let transfer: Option<String> = row.try_get("transfer_id")?;
    Ok(Hold {
        id: uuid_column(row, "id")?,
        from_wallet_id: uuid_column(row, "from_wallet_id")?,
        to_wallet_id: uuid_column(row, "to_wallet_id")?,
        amount: row.try_get("amount")?,
        currency: Currency::parse(&currency).map_err(|_| StoreError::Corrupt(format!("hold currency {currency}")))?,
        status: HoldStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("hold status {status}")))?,
        captured_amount: row.try_get("captured_amount")?,
        transfer_id: transfer
            .map(|id| Uuid::try_parse(&id).map_err(|_| StoreError::Corrupt(format!("hold transfer {id}"))))
            .transpose()?,
        description: row.try_get("description")?,
        expires_at: Timestamp::from_micros(row.try_get("expires_at")?),
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
    })
}
