//! The ledger: `ledger_entries` (only ever inserted), `transfers`, and `idempotency_keys`, the
//! record that makes a repeated request replay what the first one made.

use std::collections::HashSet;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::audit::{self, bind_event, insert_events_statement};
use super::error::StoreError;
use super::sql::{AnyQuery, Backend, is, sql, uuid_column};
use crate::domain::audit::AuditEvent;
use crate::domain::money::Currency;
use crate::domain::time::Timestamp;
use crate::domain::wallet::{EntryKind, EntryPosition, LedgerEntry, Transfer};

const ENTRY_COLUMNS: &str = "id, wallet_id, amount, balance_after, kind, transfer_id, description, created_at";

/// `INSERT INTO table (columns) VALUES (?, …), …` for `rows` rows.
fn insert_rows(table: &str, columns: &str, rows: usize) -> String {
    let marks = vec!["?"; columns.split(',').count()].join(", ");
    let rows = vec![format!("({marks})"); rows].join(", ");
    format!("INSERT INTO {table} ({columns}) VALUES {rows}")
}

fn insert_transfers_statement(count: usize) -> String {
    insert_rows("transfers", "id, from_wallet_id, to_wallet_id, amount, currency, description, created_at", count)
}

fn insert_keys_statement(count: usize) -> String {
    insert_rows("idempotency_keys", "actor_id, idem_key, request_hash, result_id, created_at", count)
}

/// Writes `entries` in one statement (a transfer's two, an adjustment's one).
pub async fn insert_entries(conn: &mut AnyConnection, entries: &[LedgerEntry]) -> Result<(), StoreError> {
    let statement = insert_entries_statement(entries.len());
    let text = sql(conn, &statement);
    bind_entries(sqlx::query(&text), entries).execute(&mut *conn).await?;
    Ok(())
}

fn insert_entries_statement(count: usize) -> String {
    insert_rows("ledger_entries", ENTRY_COLUMNS, count)
}

fn bind_entries<'q>(mut query: AnyQuery<'q>, entries: &[LedgerEntry]) -> AnyQuery<'q> {
    for entry in entries {
        query = query
            .bind(entry.id.to_string())
            .bind(entry.wallet_id.to_string())
            .bind(entry.amount)
            .bind(entry.balance_after)
            .bind(entry.kind.as_str())
            .bind(entry.transfer_id.map(|id| id.to_string()))
            .bind(entry.description.clone())
            .bind(entry.created_at.as_micros());
    }
    query
}

/// Writes a transfer with its entries and its audit event in one round trip where the backend
/// allows: on PostgreSQL one statement (the first two inserts as CTEs), on SQLite three
/// statements in one call; on MySQL three calls.
pub async fn book(
    conn: &mut AnyConnection,
    transfer: &Transfer,
    entries: &[LedgerEntry],
    event: &AuditEvent,
) -> Result<(), StoreError> {
    let (transfer_statement, entries_statement, event_statement) =
        (insert_transfers_statement(1), insert_entries_statement(entries.len()), insert_events_statement(1));
    let statement = match Backend::of(conn) {
        Backend::Postgres => format!("WITH t AS ({transfer_statement}), e AS ({entries_statement}) {event_statement}"),
        Backend::Sqlite => format!("{transfer_statement}; {entries_statement}; {event_statement}"),
        Backend::MySql => {
            insert_transfer(conn, transfer).await?;
            insert_entries(conn, entries).await?;
            return audit::insert(conn, event).await;
        }
    };
    let text = sql(conn, &statement);
    let query = bind_event(bind_entries(bind_transfer(sqlx::query(&text), transfer), entries), event);
    query.execute(&mut *conn).await?;
    Ok(())
}

pub async fn find_entry(conn: &mut AnyConnection, id: Uuid) -> Result<Option<LedgerEntry>, StoreError> {
    let statement = format!("SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE id = ?");
    let text = sql(conn, &statement);
    let row = sqlx::query(&text).bind(id.to_string()).fetch_optional(&mut *conn).await?;
    row.as_ref().map(entry_from_row).transpose()
}

/// Up to `limit` entries of a wallet, newest first, older than `before` when given.
pub async fn list_entries(
    conn: &mut AnyConnection,
    wallet_id: Uuid,
    before: Option<&EntryPosition>,
    limit: i64,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let page = if before.is_some() { "AND id < ?" } else { "" };
    let statement =
        format!("SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE wallet_id = ? {page} ORDER BY id DESC LIMIT ?");
    let text = sql(conn, &statement);
    let mut query = sqlx::query(&text).bind(wallet_id.to_string());
    if let Some(before) = before {
        query = query.bind(before.id.to_string());
    }
    let rows = query.bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(entry_from_row).collect()
}

pub async fn insert_transfer(conn: &mut AnyConnection, transfer: &Transfer) -> Result<(), StoreError> {
    let statement = insert_transfers_statement(1);
    let text = sql(conn, &statement);
    bind_transfer(sqlx::query(&text), transfer).execute(&mut *conn).await?;
    Ok(())
}

fn bind_transfer<'q>(query: AnyQuery<'q>, transfer: &Transfer) -> AnyQuery<'q> {
    query
        .bind(transfer.id.to_string())
        .bind(transfer.from_wallet_id.to_string())
        .bind(transfer.to_wallet_id.to_string())
        .bind(transfer.amount)
        .bind(transfer.currency.code())
        .bind(transfer.description.clone())
        .bind(transfer.created_at.as_micros())
}

pub async fn find_transfer(conn: &mut AnyConnection, id: Uuid) -> Result<Option<Transfer>, StoreError> {
    let text = sql(
        conn,
        "SELECT id, from_wallet_id, to_wallet_id, amount, currency, description, created_at FROM transfers WHERE id = ?",
    );
    let Some(row) = sqlx::query(&text).bind(id.to_string()).fetch_optional(&mut *conn).await? else { return Ok(None) };
    let currency: String = row.try_get("currency")?;
    Ok(Some(Transfer {
        id: uuid_column(&row, "id")?,
        from_wallet_id: uuid_column(&row, "from_wallet_id")?,
        to_wallet_id: uuid_column(&row, "to_wallet_id")?,
        amount: row.try_get("amount")?,
        currency: Currency::parse(&currency).map_err(|_| StoreError::Corrupt(format!("currency {currency}")))?,
        description: row.try_get("description")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
    }))
}

/// A request made under an idempotency key, as first recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub request_hash: String,
    /// What the request made (recorded with the key, so known once the key is visible).
    pub result_id: Option<Uuid>,
}

/// Records `key` for `actor` with the request's hash and the id of what the request makes, first
/// thing in the transaction that makes it, so both land together or neither does; `false` when
/// the key is taken (a concurrent holder makes this wait for its end).
pub async fn claim_key(
    conn: &mut AnyConnection,
    actor: Uuid,
    key: &str,
    request_hash: &str,
    result: Uuid,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let statement = insert_keys_statement(1);
    let text = sql(conn, &statement);
    let claim = KeyClaim { actor, key, request_hash, result };
    let inserted = bind_key(sqlx::query(&text), &claim, now).execute(&mut *conn).await.map_err(StoreError::from);
    match inserted {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(other) => Err(other),
    }
}

/// A key to record with what its request makes.
#[derive(Debug, Clone, Copy)]
pub struct KeyClaim<'a> {
    pub actor: Uuid,
    pub key: &'a str,
    pub request_hash: &'a str,
    pub result: Uuid,
}

fn bind_key<'q>(query: AnyQuery<'q>, claim: &KeyClaim<'_>, now: Timestamp) -> AnyQuery<'q> {
    query
        .bind(claim.actor.to_string())
        .bind(claim.key.to_owned())
        .bind(claim.request_hash.to_owned())
        .bind(claim.result.to_string())
        .bind(now.as_micros())
}

/// Of `keys` (caller, key), those recorded already, in one statement (row values in `IN`:
/// SQLite and PostgreSQL, not MySQL).
pub async fn recorded_keys(
    conn: &mut AnyConnection,
    keys: &[(Uuid, &str)],
) -> Result<HashSet<(Uuid, String)>, StoreError> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let pairs = vec!["(?, ?)"; keys.len()].join(", ");
    let statement =
        format!("SELECT actor_id, idem_key FROM idempotency_keys WHERE (actor_id, idem_key) IN (VALUES {pairs})");
    let text = sql(conn, &statement);
    // One text per batch size: not worth a place in the statement cache.
    let mut query = sqlx::query(&text).persistent(false);
    for (actor, key) in keys {
        query = query.bind(actor.to_string()).bind((*key).to_owned());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(|row| Ok((uuid_column(row, "actor_id")?, row.try_get("idem_key")?))).collect()
}

/// Many transfers at once, each with its key, its entries (`entries`, in any order) and its
/// audit event: four statements in one call, so SQLite only (it takes several statements with
/// parameters in one call; PostgreSQL's extended protocol does not).
pub async fn book_many(
    conn: &mut AnyConnection,
    claims: &[KeyClaim<'_>],
    transfers: &[Transfer],
    entries: &[LedgerEntry],
    events: &[AuditEvent],
    now: Timestamp,
) -> Result<(), StoreError> {
    let statement = [
        insert_keys_statement(claims.len()),
        insert_transfers_statement(transfers.len()),
        insert_entries_statement(entries.len()),
        insert_events_statement(events.len()),
    ]
    .join("; ");
    let mut query = sqlx::query(&statement).persistent(false);
    for claim in claims {
        query = bind_key(query, claim, now);
    }
    for transfer in transfers {
        query = bind_transfer(query, transfer);
    }
    query = bind_entries(query, entries);
    for event in events {
        query = bind_event(query, event);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

pub async fn find_key(conn: &mut AnyConnection, actor: Uuid, key: &str) -> Result<Option<KeyRecord>, StoreError> {
    let text = sql(conn, "SELECT request_hash, result_id FROM idempotency_keys WHERE actor_id = ? AND idem_key = ?");
    let row = sqlx::query(&text).bind(actor.to_string()).bind(key.to_owned()).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    let result: Option<String> = row.try_get("result_id")?;
    Ok(Some(KeyRecord {
        request_hash: row.try_get("request_hash")?,
        result_id: result
            .map(|id| Uuid::try_parse(&id).map_err(|_| StoreError::Corrupt(format!("result id {id}"))))
            .transpose()?,
    }))
}

/// Deletes up to `limit` keys recorded before `before`, each by its caller and name; answers
/// how many.
pub async fn delete_keys_before(conn: &mut AnyConnection, before: Timestamp, limit: i64) -> Result<u64, StoreError> {
    let text = sql(conn, "SELECT actor_id, idem_key FROM idempotency_keys WHERE created_at < ? LIMIT ?");
    let rows = sqlx::query(&text).bind(before.as_micros()).bind(limit).fetch_all(&mut *conn).await?;
    let keys = rows
        .iter()
        .map(|r| Ok((r.try_get::<String, _>("actor_id")?, r.try_get::<String, _>("idem_key")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    if keys.is_empty() {
        return Ok(0);
    }
    let pairs = vec!["(actor_id = ? AND idem_key = ?)"; keys.len()].join(" OR ");
    let statement = format!("DELETE FROM idempotency_keys WHERE {pairs}");
    let text = sql(conn, &statement);
    // One text per batch size: not worth a place in the statement cache.
    let mut query = sqlx::query(&text).persistent(false);
    for (actor, key) in keys {
        query = query.bind(actor).bind(key);
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}

fn entry_from_row(row: &AnyRow) -> Result<LedgerEntry, StoreError> {
    let kind: String = row.try_get("kind")?;
    let transfer: Option<String> = row.try_get("transfer_id")?;
    Ok(LedgerEntry {
        id: uuid_column(row, "id")?,
        wallet_id: uuid_column(row, "wallet_id")?,
        amount: row.try_get("amount")?,
        balance_after: row.try_get("balance_after")?,
        kind: EntryKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("entry kind {kind}")))?,
        transfer_id: transfer
            .map(|id| Uuid::try_parse(&id).map_err(|_| StoreError::Corrupt(format!("transfer id {id}"))))
            .transpose()?,
        description: row.try_get("description")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
    })
}

/// One wallet as the books see it: what it says it has, and what its entries and pending holds
/// add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletBooks {
    pub id: Uuid,
    pub balance: i64,
    pub held: i64,
    pub entries: i64,
    pub pending_holds: i64,
}

/// The books of up to `limit` wallets (closed ones too) after `after`, in id order: three
/// statements a batch, each an index range, so a pass stays linear in the ledger's size.
pub async fn books(conn: &mut AnyConnection, after: Option<Uuid>, limit: i64) -> Result<Vec<WalletBooks>, StoreError> {
    let text = sql(conn, "SELECT id, balance, held FROM wallets WHERE id > ? ORDER BY id LIMIT ?");
    let rows = sqlx::query(&text)
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut books = rows
        .iter()
        .map(|row| {
            Ok(WalletBooks {
                id: uuid_column(row, "id")?,
                balance: row.try_get("balance")?,
                held: row.try_get("held")?,
                entries: 0,
                pending_holds: 0,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    if books.is_empty() {
        return Ok(books);
    }
    // The batch is a range of ids: one index range per table, whatever the batch's size.
    let (first, last) = (books[0].id.to_string(), books[books.len() - 1].id.to_string());
    // SUM over BIGINT is NUMERIC on PostgreSQL and DECIMAL on MySQL: cast back to a 64-bit integer.
    let integer = if is(conn, Backend::MySql) { "SIGNED" } else { "BIGINT" };
    let sums = [
        ("entries", "ledger_entries", "wallet_id", ""),
        ("holds", "holds", "from_wallet_id", "AND status = 'pending'"),
    ];
    for (what, table, column, only) in sums {
        let statement = format!(
            "SELECT {column} AS w, CAST(SUM(amount) AS {integer}) AS s FROM {table} \
             WHERE {column} >= ? AND {column} <= ? {only} GROUP BY {column}"
        );
        let text = sql(conn, &statement);
        let query = sqlx::query(&text).bind(first.clone()).bind(last.clone());
        for row in query.fetch_all(&mut *conn).await? {
            let wallet = uuid_column(&row, "w")?;
            let sum: i64 = row.try_get("s")?;
            if let Some(book) = books.iter_mut().find(|b| b.id == wallet) {
                if what == "entries" { book.entries = sum } else { book.pending_holds = sum }
            }
        }
    }
    Ok(books)
}

/// Transfers whose entries do not cancel, or that have other than two entries.
pub async fn uneven_transfers(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM (SELECT transfer_id FROM ledger_entries WHERE transfer_id IS NOT NULL \
         GROUP BY transfer_id HAVING SUM(amount) <> 0 OR COUNT(*) <> 2) uneven",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("n")?)
}

/// How many wallets, entries and transfers there are.
pub async fn sizes(conn: &mut AnyConnection) -> Result<(i64, i64, i64), StoreError> {
    let mut counts = [0_i64; 3];
    for (count, table) in counts.iter_mut().zip(["wallets", "ledger_entries", "transfers"]) {
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}")).fetch_one(&mut *conn).await?;
        *count = row.try_get("n")?;
    }
    Ok((counts[0], counts[1], counts[2]))
}
