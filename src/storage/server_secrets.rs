//! The `server_secrets` table: secrets shared by every node, made once on first start.

use sqlx::{AnyConnection, Row as _};

use super::error::StoreError;
use super::sql::{keep_existing, sql};
use crate::domain::time::Timestamp;

/// The secret called `name`, storing `fresh` first when there is none yet. When several
/// nodes race, one insert wins and every node reads the winner's value.
pub async fn get_or_create(conn: &mut AnyConnection, name: &str, fresh: &str) -> Result<String, StoreError> {
    let text = format!(
        "INSERT INTO server_secrets (name, secret, created_at) VALUES (?, ?, ?) {}",
        keep_existing(conn, "name")
    );
    sqlx::query(&sql(conn, &text))
        .bind(name.to_owned())
        .bind(fresh.to_owned())
        .bind(Timestamp::now().as_micros())
        .execute(&mut *conn)
        .await?;
    let text = sql(conn, "SELECT secret FROM server_secrets WHERE name = ?");
    let row = sqlx::query(&text).bind(name.to_owned()).fetch_one(&mut *conn).await?;
    Ok(row.try_get("secret")?)
}

/// Every secret as stored, by name.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query("SELECT name, secret FROM server_secrets ORDER BY name").fetch_all(&mut *conn).await?;
    rows.iter().map(|row| Ok((row.try_get("name")?, row.try_get("secret")?))).collect()
}

/// Replaces the secret `name` holds, only if it still holds `old`; answers whether it did.
pub async fn replace(conn: &mut AnyConnection, name: &str, old: &str, new: &str) -> Result<bool, StoreError> {
    let text = sql(conn, "UPDATE server_secrets SET secret = ? WHERE name = ? AND secret = ?");
    let result =
        sqlx::query(&text).bind(new.to_owned()).bind(name.to_owned()).bind(old.to_owned()).execute(&mut *conn).await?;
    Ok(result.rows_affected() == 1)
}
