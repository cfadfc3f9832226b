//! Embedded schema migrations, applied in order by `serve` and `migrate`.
//!
//! Each migration is one SQL file, never edited once released: its checksum is recorded, and a
//! database whose recorded checksum differs refuses to start. Nodes starting together take a
//! lock. On PostgreSQL the whole run is one transaction (its DDL is transactional) holding a
//! transaction-scoped advisory lock, which also works through a transaction-pooling PgBouncer
//! (a session lock there could be taken on one server and released on another). MySQL takes
//! `GET_LOCK` for the session, its DDL committing as it goes. On SQLite each migration first
//! inserts its own version row, so a second process finds it claimed and skips it.

use sqlx::{AnyConnection, Connection as _, Row as _};

use super::conn::Pooling;
use super::error::StoreError;
use super::sql::{Backend, is, sql};
use crate::domain::secrets::sha256_hex;
use crate::domain::time::Timestamp;

struct Migration {
    version: i64,
    name: &'static str,
    text: &'static str,
    /// Work on the data that SQL alone cannot do portably, run in the same transaction.
    data: Option<DataStep>,
}

/// A migration's step in Rust.
#[derive(Debug, Clone, Copy)]
enum DataStep {
    /// Addresses are keyed by NFC and full case folding from migration 8 on.
    RekeyEmails,
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "accounts", text: include_str!("../../migrations/0001_accounts.sql"), data: None },
    Migration {
        version: 2,
        name: "server_secrets",
        text: include_str!("../../migrations/0002_server_secrets.sql"),
        data: None,
    },
    Migration {
        version: 3,
        name: "audit_events",
        text: include_str!("../../migrations/0003_audit_events.sql"),
        data: None,
    },
    Migration {
        version: 4,
        name: "user_listing",
        text: include_str!("../../migrations/0004_user_listing.sql"),
        data: None,
    },
    Migration { version: 5, name: "mail", text: include_str!("../../migrations/0005_mail.sql"), data: None },
    Migration {
        version: 6,
        name: "pending_email",
        text: include_str!("../../migrations/0006_pending_email.sql"),
        data: None,
    },
    Migration {
        version: 7,
        name: "outbox_bounds",
        text: include_str!("../../migrations/0007_outbox_bounds.sql"),
        data: None,
    },
    Migration {
        version: 8,
        name: "email_keys",
        text: include_str!("../../migrations/0008_email_keys.sql"),
        data: Some(DataStep::RekeyEmails),
    },
    Migration { version: 9, name: "wallets", text: include_str!("../../migrations/0009_wallets.sql"), data: None },
    Migration { version: 10, name: "holds", text: include_str!("../../migrations/0010_holds.sql"), data: None },
    Migration { version: 11, name: "abuse", text: include_str!("../../migrations/0011_abuse.sql"), data: None },
    Migration {
        version: 12,
        name: "second_factors",
        text: include_str!("../../migrations/0012_second_factors.sql"),
        data: None,
    },
    Migration { version: 13, name: "passkeys", text: include_str!("../../migrations/0013_passkeys.sql"), data: None },
];

const MYSQL_TABLE_OPTIONS: &str = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
/// Byte-wise comparison for key columns whose ranges must not depend on the database's locale.
const POSTGRES_BINARY_COLLATION: &str = "COLLATE \"C\"";
const LOCK_ID: i64 = 0x7e55_e7a0;

/// Applies every pending migration; answers the versions it applied.
pub async fn run(conn: &mut AnyConnection, pooling: Pooling) -> Result<Vec<i64>, StoreError> {
    if is(conn, Backend::Postgres) {
        let mut tx = conn.begin_with(pooling.begin()).await?;
        sqlx::query(&format!("SELECT pg_advisory_xact_lock({LOCK_ID})")).execute(&mut *tx).await?;
        create_table(&mut tx).await?;
        let done = apply_pending(&mut tx).await?;
        tx.commit().await?;
        return Ok(done);
    }
    create_table(conn).await?;
    lock(conn).await?;
    let outcome = apply_pending(conn).await;
    unlock(conn).await;
    outcome
}

/// The table of applied migrations; on MySQL in InnoDB whatever the server's default engine,
/// as its rows are also locked (see `signing_keys::lock_current`).
async fn create_table(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let options = if is(conn, Backend::MySql) { MYSQL_TABLE_OPTIONS } else { "" };
    let statement = format!(
        "CREATE TABLE IF NOT EXISTS tessera_migrations (version BIGINT NOT NULL PRIMARY KEY, \
         name VARCHAR(200) NOT NULL, checksum VARCHAR(64) NOT NULL, applied_at BIGINT NOT NULL) {options}"
    );
    sqlx::query(&statement).execute(&mut *conn).await?;
    Ok(())
}

async fn apply_pending(conn: &mut AnyConnection) -> Result<Vec<i64>, StoreError> {
    let applied = applied(conn).await?;
    let mut done = Vec::new();
    for migration in MIGRATIONS {
        let checksum = sha256_hex(migration.text.as_bytes());
        match applied.iter().find(|(version, _)| *version == migration.version) {
            Some((_, recorded)) if *recorded == checksum => continue,
            Some(_) => {
                return Err(StoreError::Corrupt(format!(
                    "migration {} ({}) was changed after it was applied",
                    migration.version, migration.name
                )));
            }
            None => {}
        }
        if apply(conn, migration, &checksum).await? {
            tracing::info!(version = migration.version, name = migration.name, "applied migration");
            done.push(migration.version);
        }
    }
    if let Some((newest, _)) = applied.iter().max_by_key(|(v, _)| *v) {
        if MIGRATIONS.iter().all(|m| m.version < *newest) {
            tracing::warn!(version = newest, "the database schema is newer than this binary");
        }
    }
    Ok(done)
}

async fn applied(conn: &mut AnyConnection) -> Result<Vec<(i64, String)>, StoreError> {
    let rows = sqlx::query("SELECT version, checksum FROM tessera_migrations").fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("version")?, row.try_get("checksum")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Applies one migration in a transaction; `false` when another process claimed it first.
async fn apply(conn: &mut AnyConnection, migration: &Migration, checksum: &str) -> Result<bool, StoreError> {
    let options = if is(conn, Backend::MySql) { MYSQL_TABLE_OPTIONS } else { "" };
    let collation = if is(conn, Backend::Postgres) { POSTGRES_BINARY_COLLATION } else { "" };
    let mut tx = conn.begin().await?;
    let claim = sql(&tx, "INSERT INTO tessera_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)");
    let claimed = sqlx::query(&claim)
        .bind(migration.version)
        .bind(migration.name)
        .bind(checksum)
        .bind(Timestamp::now().as_micros())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from);
    match claimed {
        Err(StoreError::Conflict { .. }) => return Ok(false),
        other => other?,
    };
    for statement in statements(migration.text) {
        let statement = statement.replace("{table_options}", options).replace("{binary_collation}", collation);
        sqlx::query(&statement).execute(&mut *tx).await?;
    }
    match migration.data {
        Some(DataStep::RekeyEmails) => {
            let rekeyed = super::users::rekey_emails(&mut tx).await?;
            tracing::info!(rekeyed, "re-keyed e-mail addresses");
        }
        None => {}
    }
    tx.commit().await?;
    Ok(true)
}

/// The statements of a migration file: comments dropped, split at `;`.
fn statements(text: &str) -> Vec<String> {
    let without_comments: Vec<&str> = text.lines().filter(|line| !line.trim_start().starts_with("--")).collect();
    without_comments.join("\n").split(';').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

async fn lock(conn: &mut AnyConnection) -> Result<(), StoreError> {
    if is(conn, Backend::MySql) {
        sqlx::query("SELECT GET_LOCK('tessera_migrations', 120)").execute(&mut *conn).await?;
    }
    Ok(())
}

async fn unlock(conn: &mut AnyConnection) {
    if !is(conn, Backend::MySql) {
        return;
    }
    if let Err(error) = sqlx::query("SELECT RELEASE_LOCK('tessera_migrations')").execute(&mut *conn).await {
        tracing::warn!(%error, "could not release the migration lock");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_split_and_comments_dropped() {
        let parts = statements("-- a comment; here\nCREATE TABLE a (x BIGINT);\n\nINSERT INTO a VALUES (1);\n");
        assert_eq!(parts, vec!["CREATE TABLE a (x BIGINT)", "INSERT INTO a VALUES (1)"]);
    }

    #[test]
    fn versions_are_unique_and_ascending() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }
}
