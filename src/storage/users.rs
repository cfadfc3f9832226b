//! The `users` table. Uniqueness of username and e-mail, ignoring case, is the database's job:
//! the lower-cased copies carry unique indexes and a violation comes back as a conflict.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row as _};
use uuid::Uuid;

use super::Store;
use super::error::StoreError;
use super::sql::{row_placeholders, sql, text_column};
use crate::domain::fields::Metadata;
use crate::domain::fields::email_key;
use crate::domain::listing::sort_name;
use crate::domain::time::Timestamp;
use crate::domain::user::{LoginName, Profile, Role, User, UserStatus, username_key};

/// The unique index on lower-cased usernames.
pub const USERNAME_INDEX: &str = "username_lower";
/// The unique index on lower-cased e-mail addresses.
pub const EMAIL_INDEX: &str = "email_lower";

pub(super) const COLUMNS: &str = "id, username, email, email_verified_at, phone, first_name, last_name, \
     display_name, role, status, metadata, password_hash, created_at, updated_at, last_login_at, pending_email";

pub async fn insert(conn: &mut AnyConnection, user: &User) -> Result<(), StoreError> {
    insert_many(conn, std::slice::from_ref(user)).await
}

/// Inserts `users` with their search keys in one statement per table; the seeding command
/// sends thousands at a time.
pub async fn insert_many(conn: &mut AnyConnection, users: &[User]) -> Result<(), StoreError> {
    if users.is_empty() {
        return Ok(());
    }
    let statement = format!(
        "INSERT INTO users (id, username, username_lower, email, email_lower, email_verified_at, \
         phone, first_name, last_name, display_name, role, status, metadata, sort_name, pending_email, \
         password_hash, created_at, updated_at, last_login_at) VALUES {}",
        row_placeholders(users.len(), 19)
    );
    let text = sql(conn, &statement);
    let mut query = sqlx::query(&text);
    for user in users {
        query = bind_account(query.bind(user.id.to_string()), user)
            .bind(user.password_hash.clone())
            .bind(user.created_at.as_micros())
            .bind(user.updated_at.as_micros())
            .bind(user.last_login_at.map(Timestamp::as_micros));
    }
    query.execute(&mut *conn).await?;
    let keys: Vec<(String, Uuid)> =
        users.iter().flat_map(|user| search_keys(&user.profile).into_iter().map(|key| (key, user.id))).collect();
    insert_search_keys(conn, &keys).await
}

/// Binds the fourteen columns from `username` to `pending_email`, in this order, that both an
/// insert and an update write.
fn bind_account<'q>(query: Query<'q, Any, AnyArguments<'q>>, user: &User) -> Query<'q, Any, AnyArguments<'q>> {
    let p = &user.profile;
    query
        .bind(p.username.clone())
        .bind(p.username.as_deref().map(username_key))
        .bind(p.email.clone())
        .bind(p.email.as_deref().map(email_key))
        .bind(user.email_verified_at.map(Timestamp::as_micros))
        .bind(p.phone.clone())
        .bind(p.first_name.clone())
        .bind(p.last_name.clone())
        .bind(p.display_name.clone())
        .bind(user.role.as_str())
        .bind(user.status.as_str())
        .bind(p.metadata.to_stored())
        .bind(sort_name(p))
        .bind(user.pending_email.clone())
}

pub async fn find_by_id(conn: &mut AnyConnection, id: Uuid) -> Result<Option<User>, StoreError> {
    let text = format!("SELECT {COLUMNS} FROM users WHERE id = ?");
    fetch_one_user(conn, text, id.to_string()).await
}

pub async fn find_by_login(conn: &mut AnyConnection, name: &LoginName) -> Result<Option<User>, StoreError> {
    let column = match name {
        LoginName::Username(_) => "username_lower",
        LoginName::Email(_) => "email_lower",
    };
    let value = name.key();
    let text = format!("SELECT {COLUMNS} FROM users WHERE {column} = ?");
    fetch_one_user(conn, text, value).await
}

async fn fetch_one_user(conn: &mut AnyConnection, text: String, key: String) -> Result<Option<User>, StoreError> {
    let text = sql(conn, &text);
    let row = sqlx::query(&text).bind(key).fetch_optional(&mut *conn).await?;
    row.as_ref().map(user_from_row).transpose()
}

/// Writes every mutable column of `user`, whose profile was `before`; the search keys are
/// rewritten only when a searchable field changed. `NotFound` when the account is gone.
///
/// `user` must have been read with [`lock_and_find`] in the same transaction: a copy read
/// before it would write back what a concurrent change has since replaced.
pub async fn update(conn: &mut AnyConnection, before: &Profile, user: &User) -> Result<(), StoreError> {
    let text = sql(
        conn,
        "UPDATE users SET username = ?, username_lower = ?, email = ?, email_lower = ?, \
         email_verified_at = ?, phone = ?, first_name = ?, last_name = ?, display_name = ?, \
         role = ?, status = ?, metadata = ?, sort_name = ?, pending_email = ?, updated_at = ? WHERE id = ?",
    );
    let result = bind_account(sqlx::query(&text), user)
        .bind(user.updated_at.as_micros())
        .bind(user.id.to_string())
        .execute(&mut *conn)
        .await?;
    found(result.rows_affected())?;
    let keys = search_keys(&user.profile);
    if keys == search_keys(before) {
        return Ok(());
    }
    let text = sql(conn, "DELETE FROM user_search_keys WHERE user_id = ?");
    sqlx::query(&text).bind(user.id.to_string()).execute(&mut *conn).await?;
    let keys: Vec<(String, Uuid)> = keys.into_iter().map(|key| (key, user.id)).collect();
    insert_search_keys(conn, &keys).await
}

/// Readies the account tables for queries after a bulk load (see [`Store::after_bulk_load`]).
pub async fn after_bulk_load(store: &Store) -> Result<(), StoreError> {
    store.after_bulk_load(&["users", "user_search_keys"]).await
}

/// What a prefix search over this profile matches: each searchable field lower-cased, once.
pub fn search_keys(profile: &Profile) -> Vec<String> {
    let fields = [&profile.username, &profile.first_name, &profile.last_name, &profile.display_name];
    let mut keys: Vec<String> = fields.into_iter().flatten().map(|value| value.to_lowercase()).collect();
    keys.extend(profile.email.as_deref().map(email_key));
    keys.sort_unstable();
    keys.dedup();
    keys
}

async fn insert_search_keys(conn: &mut AnyConnection, keys: &[(String, Uuid)]) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let statement =
        format!("INSERT INTO user_search_keys (search_key, user_id) VALUES {}", row_placeholders(keys.len(), 2));
    let text = sql(conn, &statement);
    let mut query = sqlx::query(&text);
    for (key, user_id) in keys {
        query = query.bind(key.clone()).bind(user_id.to_string());
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Sets a new password hash and drops any pending change of address: a new password is the
/// owner taking the account back, so a change asked for under the old one must not complete.
/// With `expected`, only while the hash is still that one (the one the caller's current
/// password was checked against); answers whether it was written.
pub async fn set_password(
    conn: &mut AnyConnection,
    id: Uuid,
    expected: Option<&str>,
    hash: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let condition = if expected.is_some() { " AND password_hash = ?" } else { "" };
    let statement =
        format!("UPDATE users SET password_hash = ?, pending_email = NULL, updated_at = ? WHERE id = ?{condition}");
    let text = sql(conn, &statement);
    let mut query = sqlx::query(&text).bind(hash.to_owned()).bind(now.as_micros()).bind(id.to_string());
    if let Some(expected) = expected {
        query = query.bind(expected.to_owned());
    }
    Ok(query.execute(&mut *conn).await?.rows_affected() == 1)
}

/// Replaces the hash `old` with `new`, only if `old` is still the account's: an upgrade of a
/// hash never undoes a password change that happened meanwhile. Answers whether it did.
pub async fn replace_password_hash(
    conn: &mut AnyConnection,
    id: Uuid,
    old: &str,
    new: &str,
) -> Result<bool, StoreError> {
    let text = sql(conn, "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?");
    let result =
        sqlx::query(&text).bind(new.to_owned()).bind(id.to_string()).bind(old.to_owned()).execute(&mut *conn).await?;
    Ok(result.rows_affected() == 1)
}

pub async fn record_login(conn: &mut AnyConnection, id: Uuid, now: Timestamp) -> Result<(), StoreError> {
    let text = sql(conn, "UPDATE users SET last_login_at = ? WHERE id = ?");
    sqlx::query(&text).bind(now.as_micros()).bind(id.to_string()).execute(&mut *conn).await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, id: Uuid) -> Result<(), StoreError> {
    let text = sql(conn, "DELETE FROM users WHERE id = ?");
    let result = sqlx::query(&text).bind(id.to_string()).execute(&mut *conn).await?;
    found(result.rows_affected())
}

/// Locks the account's row for the rest of the transaction. Changes to an account's tokens
/// take it first, so two of them (say, two reset requests) queue instead of deadlocking on
/// InnoDB's gap locks, and always in the same order: the account, then its tokens.
pub async fn lock_row(conn: &mut AnyConnection, id: Uuid) -> Result<(), StoreError> {
    let text = sql(conn, "UPDATE users SET updated_at = updated_at WHERE id = ?");
    sqlx::query(&text).bind(id.to_string()).execute(&mut *conn).await?;
    Ok(())
}

/// The account, read after locking its row for the rest of the transaction: what a write in
/// this transaction then saves was read under the lock, so no concurrent change is undone.
pub async fn lock_and_find(conn: &mut AnyConnection, id: Uuid) -> Result<Option<User>, StoreError> {
    lock_row(conn, id).await?;
    find_by_id(conn, id).await
}

/// Whether an account other than `except` has the address `email` (any case).
pub async fn email_taken(conn: &mut AnyConnection, email: &str, except: Uuid) -> Result<bool, StoreError> {
    let text = sql(conn, "SELECT COUNT(*) AS n FROM users WHERE email_lower = ? AND id <> ?");
    let row = sqlx::query(&text).bind(email_key(email)).bind(except.to_string()).fetch_one(&mut *conn).await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// Rows read per batch when re-keying.
const REKEY_BATCH: i64 = 1_000;

/// Recomputes the keys derived from each address (`email_lower`, the sort key of an account
/// without a username, its search keys) where they differ from [`email_key`]: rows written
/// before addresses were folded. An address whose new key another account already has keeps
/// its old key, with a warning naming the account, for an operator to resolve. Answers how
/// many accounts were re-keyed.
pub async fn rekey_emails(conn: &mut AnyConnection) -> Result<u64, StoreError> {
    let statement = format!("SELECT {COLUMNS}, email_lower FROM users WHERE id > ? ORDER BY id LIMIT ?");
    let select = sql(conn, &statement).into_owned();
    let rekey = sql(conn, "UPDATE users SET email_lower = ?, sort_name = ? WHERE id = ? AND email = ?").into_owned();
    let forget = sql(conn, "DELETE FROM user_search_keys WHERE user_id = ?").into_owned();
    let mut after = String::new();
    let mut rekeyed = 0;
    loop {
        let rows = sqlx::query(&select).bind(after.clone()).bind(REKEY_BATCH).fetch_all(&mut *conn).await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("id")?;
        for row in &rows {
            let stored: Option<String> = row.try_get("email_lower")?;
            let user = user_from_row(row)?;
            if user.profile.email.as_deref().map(email_key) == stored {
                continue;
            }
            if let Some(key) = user.profile.email.as_deref().map(email_key)
                && email_taken(conn, &key, user.id).await?
            {
                tracing::warn!(user_id = %user.id, "another account has this address once folded; its old key stays");
                continue;
            }
            // Only the derived keys, and only while the address is the one read: a node of the
            // previous version may be serving during the upgrade.
            let written = sqlx::query(&rekey)
                .bind(user.profile.email.as_deref().map(email_key))
                .bind(sort_name(&user.profile))
                .bind(user.id.to_string())
                .bind(user.profile.email.clone())
                .execute(&mut *conn)
                .await?;
            if written.rows_affected() == 1 {
                sqlx::query(&forget).bind(user.id.to_string()).execute(&mut *conn).await?;
                let keys: Vec<(String, Uuid)> =
                    search_keys(&user.profile).into_iter().map(|key| (key, user.id)).collect();
                insert_search_keys(conn, &keys).await?;
                rekeyed += 1;
            }
        }
    }
    Ok(rekeyed)
}

/// Takes the owners guard for the rest of the transaction: every change that could leave the
/// service without an active owner takes it first, so such changes run one after another.
pub async fn lock_owners(conn: &mut AnyConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE guards SET version = version + 1 WHERE name = 'owners'").execute(&mut *conn).await?;
    Ok(())
}

pub async fn count_active_owners(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'owner' AND status = 'active'")
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get::<i64, _>("n")?)
}

fn found(rows: u64) -> Result<(), StoreError> {
    if rows == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

pub(super) fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    let id: String = row.try_get("id")?;
    let role: String = row.try_get("role")?;
    let status: String = row.try_get("status")?;
    let metadata = text_column(row, "metadata")?;
    Ok(User {
        id: Uuid::try_parse(&id).map_err(|_| StoreError::Corrupt(format!("user id {id}")))?,
        profile: Profile {
            username: row.try_get("username")?,
            email: row.try_get("email")?,
            phone: row.try_get("phone")?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            display_name: row.try_get("display_name")?,
            metadata: Metadata::from_stored(&metadata),
        },
        email_verified_at: row.try_get::<Option<i64>, _>("email_verified_at")?.map(Timestamp::from_micros),
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role}")))?,
        status: UserStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
        password_hash: row.try_get("password_hash")?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        updated_at: Timestamp::from_micros(row.try_get("updated_at")?),
        last_login_at: row.try_get::<Option<i64>, _>("last_login_at")?.map(Timestamp::from_micros),
        pending_email: row.try_get("pending_email")?,
    })
}
