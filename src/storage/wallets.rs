//! The `wallets` table. Balances change only through [`move_balance`], in the transaction that
//! writes the matching ledger entry; a closed wallet is marked deleted, never removed, so its
//! entries keep their wallet.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{AnyQuery, Backend, is, sql};
use crate::domain::money::{Currency, MAX_AMOUNT};
use crate::domain::time::Timestamp;
use crate::domain::wallet::{Wallet, WalletKind, WalletStatus};

const COLUMNS: &str = "id, owner_id, currency, kind, description, status, balance, held, created_at, updated_at";

pub async fn insert(conn: &mut AnyConnection, wallet: &Wallet) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "INSERT INTO wallets (id, owner_id, currency, kind, description, status, balance, held, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    sqlx::query(&text)
        .bind(wallet.id.to_string())
        .bind(wallet.owner_id.to_string())
        .bind(wallet.currency.code())
        .bind(wallet.kind.as_str())
        .bind(wallet.description.clone())
        .bind(wallet.status.as_str())
        .bind(wallet.balance)
        .bind(wallet.held)
        .bind(wallet.created_at.as_micros())
        .bind(wallet.updated_at.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A wallet that is not deleted.
pub async fn find(conn: &mut AnyConnection, id: Uuid) -> Result<Option<Wallet>, StoreError> {
    let statement = format!("SELECT {COLUMNS} FROM wallets WHERE id = ? AND deleted_at IS NULL");
    let text = sql(conn, &statement);
    let row = sqlx::query(&text).bind(id.to_string()).fetch_optional(&mut *conn).await?;
    row.as_ref().map(wallet_from_row).transpose()
}

/// The wallet, read after locking its row for the rest of the transaction. On PostgreSQL and
/// MySQL a locking read (`FOR UPDATE`), which sees the latest committed row whatever snapshot
/// the transaction holds; on SQLite a plain read, as a transaction from [`super::Store::begin`]
/// holds the file's one write lock from its start (call it in no other).
pub async fn lock_and_find(conn: &mut AnyConnection, id: Uuid) -> Result<Option<Wallet>, StoreError> {
    Ok(lock_and_find_all(conn, &[id]).await?.pop())
}

/// The wallets of `ids` that exist, locked in the order of their ids, in one statement: the
/// order every transaction locks wallets in, so that two never wait for each other.
pub async fn lock_and_find_all(conn: &mut AnyConnection, ids: &[Uuid]) -> Result<Vec<Wallet>, StoreError> {
    let locking = if is(conn, Backend::Sqlite) { "" } else { " FOR UPDATE" };
    let marks = vec!["?"; ids.len()].join(", ");
    let statement =
        format!("SELECT {COLUMNS} FROM wallets WHERE id IN ({marks}) AND deleted_at IS NULL ORDER BY id{locking}");
    let text = sql(conn, &statement);
    // Batches come in every size: only a pair's statement is worth a place in the cache.
    let mut query = sqlx::query(&text).persistent(ids.len() <= 2);
    for id in ids {
        query = query.bind(id.to_string());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(wallet_from_row).collect()
}

/// The owner's wallets that are not deleted, oldest first (an owner has few).
pub async fn list_of(conn: &mut AnyConnection, owner_id: Uuid) -> Result<Vec<Wallet>, StoreError> {
    let statement = format!("SELECT {COLUMNS} FROM wallets WHERE owner_id = ? AND deleted_at IS NULL ORDER BY id");
    let text = sql(conn, &statement);
    let rows = sqlx::query(&text).bind(owner_id.to_string()).fetch_all(&mut *conn).await?;
    rows.iter().map(wallet_from_row).collect()
}

/// Writes the fields an owner may change: kind, description, status.
pub async fn update_settings(conn: &mut AnyConnection, wallet: &Wallet) -> Result<(), StoreError> {
    let text = sql(conn, "UPDATE wallets SET kind = ?, description = ?, status = ?, updated_at = ? WHERE id = ?");
    sqlx::query(&text)
        .bind(wallet.kind.as_str())
        .bind(wallet.description.clone())
        .bind(wallet.status.as_str())
        .bind(wallet.updated_at.as_micros())
        .bind(wallet.id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Adds `amount` (negative: takes it away) to the balance, only while what remains available
/// stays at or above zero and the balance at or below [`MAX_AMOUNT`]; answers the new balance,
/// or `None` when it would overdraw (a debit) or pass the ceiling (a credit).
pub async fn move_balance(
    conn: &mut AnyConnection,
    id: Uuid,
    amount: i64,
    now: Timestamp,
) -> Result<Option<i64>, StoreError> {
    // MariaDB has no `UPDATE … RETURNING`: there the balance is read after the update.
    let returning = !is(conn, Backend::MySql);
    let statement = format!(
        "UPDATE wallets SET balance = balance + ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL \
         AND balance + ? - held >= 0 AND balance <= ?{}",
        if returning { " RETURNING balance" } else { "" }
    );
    let text = sql(conn, &statement);
    // Both at most 10^15: `balance + amount` cannot overflow, and the ceiling is computed here.
    let query = sqlx::query(&text)
        .bind(amount)
        .bind(now.as_micros())
        .bind(id.to_string())
        .bind(amount)
        .bind(MAX_AMOUNT - amount.max(0));
    if returning {
        let row = query.fetch_optional(&mut *conn).await?;
        return row.map(|row| row.try_get("balance")).transpose().map_err(StoreError::from);
    }
    if query.execute(&mut *conn).await?.rows_affected() != 1 {
        return Ok(None);
    }
    let text = sql(conn, "SELECT balance FROM wallets WHERE id = ?");
    let row = sqlx::query(&text).bind(id.to_string()).fetch_one(&mut *conn).await?;
    Ok(Some(row.try_get("balance")?))
}

/// Adds each amount of `moves` (wallet, amount; negative takes away) to its wallet's balance in
/// one statement, only if every wallet is open, keeps its held money covered and stays at or
/// below [`MAX_AMOUNT`]; `false` when one would not (nothing is changed then). Callers checked
/// each under the rows' locks, so `false` means the locks did not hold.
pub async fn move_many(conn: &mut AnyConnection, moves: &[(Uuid, i64)], now: Timestamp) -> Result<bool, StoreError> {
    if moves.is_empty() {
        return Ok(true);
    }
    let arms = " WHEN ? THEN ?".repeat(moves.len());
    let marks = vec!["?"; moves.len()].join(", ");
    let statement = format!(
        "UPDATE wallets SET balance = balance + CASE id{arms} END, updated_at = ? \
         WHERE id IN ({marks}) AND deleted_at IS NULL AND balance + CASE id{arms} END BETWEEN held AND ?"
    );
    let text = sql(conn, &statement);
    // Batches come in every size: only a pair's statement is worth a place in the cache.
    let mut query = bind_arms(sqlx::query(&text), moves).persistent(moves.len() <= 2).bind(now.as_micros());
    for (id, _) in moves {
        query = query.bind(id.to_string());
    }
    let moved = bind_arms(query, moves).bind(MAX_AMOUNT).execute(&mut *conn).await?;
    Ok(moved.rows_affected() == moves.len() as u64)
}

/// Binds `CASE id WHEN ? THEN ? …`.
fn bind_arms<'q>(mut query: AnyQuery<'q>, moves: &[(Uuid, i64)]) -> AnyQuery<'q> {
    for (id, amount) in moves {
        query = query.bind(id.to_string()).bind(*amount);
    }
    query
}

/// Reserves `amount` of what is available for a hold; `false` when not that much is.
pub async fn reserve(conn: &mut AnyConnection, id: Uuid, amount: i64, now: Timestamp) -> Result<bool, StoreError> {
    let text = sql(
        conn,
        "UPDATE wallets SET held = held + ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL AND balance - held >= ?",
    );
    let reserved = sqlx::query(&text)
        .bind(amount)
        .bind(now.as_micros())
        .bind(id.to_string())
        .bind(amount)
        .execute(&mut *conn)
        .await?;
    Ok(reserved.rows_affected() == 1)
}

/// Ends a reservation of `released` and takes `debited` (at most that) from the balance, as a
/// hold ends; answers the new balance. Balance less held cannot fall by it.
pub async fn settle(
    conn: &mut AnyConnection,
    id: Uuid,
    debited: i64,
    released: i64,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let text = sql(conn, "UPDATE wallets SET balance = balance - ?, held = held - ?, updated_at = ? WHERE id = ?");
    sqlx::query(&text)
        .bind(debited)
        .bind(released)
        .bind(now.as_micros())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    let text = sql(conn, "SELECT balance FROM wallets WHERE id = ?");
    let row = sqlx::query(&text).bind(id.to_string()).fetch_one(&mut *conn).await?;
    Ok(row.try_get("balance")?)
}

/// Marks an empty wallet deleted; `false` when it holds money (or is gone).
pub async fn delete_empty(conn: &mut AnyConnection, id: Uuid, now: Timestamp) -> Result<bool, StoreError> {
    let text = sql(
        conn,
        "UPDATE wallets SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL AND balance = 0 AND held = 0",
    );
    let deleted =
        sqlx::query(&text).bind(now.as_micros()).bind(now.as_micros()).bind(id.to_string()).execute(&mut *conn).await?;
    Ok(deleted.rows_affected() == 1)
}

/// Marks every wallet of `owner_id` deleted, when none holds money; `false` when one does (the
/// caller then rolls back). Both statements are writes, which wait for transfers in flight and
/// see the rows as they commit: a wallet filled meanwhile is never closed.
pub async fn delete_all_empty(conn: &mut AnyConnection, owner_id: Uuid, now: Timestamp) -> Result<bool, StoreError> {
    let text = sql(
        conn,
        "UPDATE wallets SET deleted_at = ?, updated_at = ? WHERE owner_id = ? AND deleted_at IS NULL \
         AND balance = 0 AND held = 0",
    );
    sqlx::query(&text)
        .bind(now.as_micros())
        .bind(now.as_micros())
        .bind(owner_id.to_string())
        .execute(&mut *conn)
        .await?;
    let text = sql(conn, "UPDATE wallets SET updated_at = ? WHERE owner_id = ? AND deleted_at IS NULL");
    let left = sqlx::query(&text).bind(now.as_micros()).bind(owner_id.to_string()).execute(&mut *conn).await?;
    Ok(left.rows_affected() == 0)
}

fn wallet_from_row(row: &AnyRow) -> Result<Wallet, StoreError> {
    let text = |column: &str| row.try_get::<String, _>(column);
    let corrupt = |what: &str, value: String| StoreError::Corrupt(format!("wallet {what} {value}"));
    let id = |column: &str| {
        let value = text(column)?;
        Uuid::try_parse(&value).map_err(|_| corrupt(column, value))
    };
    let currency = text("currency")?;
    let kind = text("kind")?;
    let status = text("status")?;
    Ok(Wallet {
        id: id("id")?,
        owner_id: id("owner_id")?,
        currency: Currency::parse(&currency).map_err(|_| corrupt("currency", currency.clone()))?,
        kind: WalletKind::parse(&kind).ok_or_else(|| corrupt("kind", kind.clone()))?,
        description: row.try_get("description")?,
        status: WalletStatus::parse(&status).ok_or_else(|| corrupt("status", status.clone()))?,
        balance: row.try_get("balance")?,
        held: row.try_get("held")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
    })
}
