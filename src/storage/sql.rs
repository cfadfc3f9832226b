//! Portable statements. Queries are written once with `?` placeholders, as SQLite and MySQL
//! take them; for PostgreSQL they are rewritten to `$1, $2, …` on the way out.

use std::borrow::Cow;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};
use uuid::Uuid;

use super::error::StoreError;

/// The database products tessera runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    /// The backend a database URL names, by its scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url::Url::parse(url).ok()?.scheme().to_owned();
        match scheme.as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    pub fn of(conn: &AnyConnection) -> Self {
        match conn.backend_name() {
            "PostgreSQL" => Self::Postgres,
            "MySQL" => Self::MySql,
            _ => Self::Sqlite,
        }
    }
}

/// A statement with some of its values bound.
pub type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// `text` in the placeholder style of `conn`'s backend.
pub fn sql<'t>(conn: &AnyConnection, text: &'t str) -> Cow<'t, str> {
    match Backend::of(conn) {
        Backend::Postgres => Cow::Owned(numbered_placeholders(text)),
        Backend::Sqlite | Backend::MySql => Cow::Borrowed(text),
    }
}

/// Whether `conn` talks to `backend`, for the few statements that differ.
pub fn is(conn: &AnyConnection, backend: Backend) -> bool {
    Backend::of(conn) == backend
}

/// The clause that makes an `INSERT` leave a row whose `key` exists as it is, instead of
/// failing (a failed statement would end a transaction on PostgreSQL). On MySQL the no-op
/// update takes the row's exclusive lock at once (`INSERT IGNORE` would take a shared one,
/// and two such upgrading deadlock).
pub fn keep_existing(conn: &AnyConnection, key: &str) -> String {
    match Backend::of(conn) {
        Backend::MySql => format!("ON DUPLICATE KEY UPDATE {key} = {key}"),
        Backend::Postgres | Backend::Sqlite => format!("ON CONFLICT ({key}) DO NOTHING"),
    }
}

fn numbered_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    let mut in_literal = false;
    for c in text.chars() {
        match c {
            '\'' => {
                in_literal = !in_literal;
                out.push(c);
            }
            '?' if !in_literal => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// `(?, ?), (?, ?), …`: the placeholders of a multi-row `VALUES` list.
pub fn row_placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// A UUID column; a value that is not one makes the row corrupt.
pub fn uuid_column(row: &AnyRow, column: &str) -> Result<Uuid, StoreError> {
    optional_uuid_column(row, column)?.ok_or_else(|| StoreError::Corrupt(format!("{column} is null")))
}

/// A UUID column that may be null.
pub fn optional_uuid_column(row: &AnyRow, column: &str) -> Result<Option<Uuid>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|id| Uuid::try_parse(&id).map_err(|_| StoreError::Corrupt(format!("{column} {id}")))).transpose()
}

/// A `TEXT` column as a string. MySQL reports `TEXT` as a blob through the `Any` driver, so
/// when the value does not decode as text it is read as bytes and checked to be UTF-8.
pub fn text_column(row: &AnyRow, column: &str) -> Result<String, sqlx::Error> {
    match row.try_get::<String, _>(column) {
        Ok(text) => Ok(text),
        Err(_) => {
            let bytes: Vec<u8> = row.try_get(column)?;
            String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
        }
    }
}

/// Deletes the rows of `table` whose `column` is one of `keys` (a batch chosen by the caller,
/// so each statement holds its locks briefly); answers how many went.
pub async fn delete_where_in(
    conn: &mut AnyConnection,
    table: &str,
    column: &str,
    keys: &[String],
) -> Result<u64, sqlx::Error> {
    if keys.is_empty() {
        return Ok(0);
    }
    let statement = format!("DELETE FROM {table} WHERE {column} IN {}", row_placeholders(1, keys.len()));
    let text = sql(conn, &statement);
    let mut query = sqlx::query(&text);
    for key in keys {
        query = query.bind(key.clone());
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}

/// Deletes up to `limit` rows of `table` whose `time_column` is before `before` (microseconds),
/// choosing the batch by `key_column` first so the delete holds its locks briefly; answers how
/// many went.
pub async fn delete_older_than(
    conn: &mut AnyConnection,
    table: &str,
    key_column: &str,
    time_column: &str,
    before: i64,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let statement = format!("SELECT {key_column} FROM {table} WHERE {time_column} < ? LIMIT ?");
    let text = sql(conn, &statement);
    let rows = sqlx::query(&text).bind(before).bind(limit).fetch_all(&mut *conn).await?;
    let keys = rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<Vec<_>, _>>()?;
    delete_where_in(conn, table, key_column, &keys).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_literals() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c = '?' AND d IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d IN ($2, $3)"
        );
    }

    #[test]
    fn backends_are_named_by_scheme() {
        assert_eq!(Backend::from_url("sqlite://x.db?mode=rwc"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("postgres://u@h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::from_url("mysql://root@h/db"), Some(Backend::MySql));
        assert_eq!(Backend::from_url("oracle://h"), None);
    }
}
