//! Listing and searching accounts for administrators, at any size.
//!
//! Every page is a range over an index, never an `OFFSET`: a page starts after the sort key
//! and id of the last row of the previous one (`key >= ? AND (key > ? OR id > ?)`, a form each
//! backend turns into an index seek). The sort keys are `created_at` and `sort_name`, each
//! indexed with `id`, and `(role, created_at, id)` and `(status, created_at, id)` serve the
//! filters on rare values.
//!
//! A prefix search `q` is a range of `user_search_keys`. Few matches are fetched through that
//! range and sorted; many matches are found by walking the sort index and probing each
//! account's keys, which reaches a page of results within a few thousand rows. A bounded
//! count of the range decides which, so neither plan ever reads the whole table.

use sqlx::{AnyConnection, Row as _};

use super::error::StoreError;
use super::sql::sql;
use super::users::{COLUMNS, user_from_row};
use crate::domain::listing::{Position, SortKey, UserFilter, UserSort};
use crate::domain::user::User;

/// Above this many matching keys a search walks the sort index instead of sorting matches.
const SEARCH_SORT_LIMIT: i64 = 2_000;

/// A value bound to a statement.
#[derive(Debug, Clone)]
enum Param {
    Int(i64),
    Text(String),
}

impl From<&SortKey> for Param {
    fn from(key: &SortKey) -> Self {
        match key {
            SortKey::Time(micros) => Param::Int(*micros),
            SortKey::Name(name) => Param::Text(name.clone()),
        }
    }
}

/// A statement's conditions and their values, built up together so they cannot drift apart.
#[derive(Default)]
struct Conditions {
    clauses: Vec<String>,
    values: Vec<Param>,
}

impl Conditions {
    fn push(&mut self, clause: impl Into<String>, values: impl IntoIterator<Item = Param>) {
        self.clauses.push(clause.into());
        self.values.extend(values);
    }

    fn of(filter: &UserFilter) -> Self {
        let mut c = Self::default();
        if let Some(role) = filter.role {
            c.push("role = ?", [Param::Text(role.as_str().into())]);
        }
        if let Some(status) = filter.status {
            c.push("status = ?", [Param::Text(status.as_str().into())]);
        }
        match filter.email_verified {
            Some(true) => c.push("email_verified_at IS NOT NULL", []),
            Some(false) => c.push("email_verified_at IS NULL", []),
            None => {}
        }
        if let Some(after) = filter.created_after {
            c.push("created_at > ?", [Param::Int(after.as_micros())]);
        }
        if let Some(before) = filter.created_before {
            c.push("created_at < ?", [Param::Int(before.as_micros())]);
        }
        c
    }

    fn where_clause(&self) -> String {
        if self.clauses.is_empty() { String::new() } else { format!("WHERE {}", self.clauses.join(" AND ")) }
    }

    async fn fetch(self, conn: &mut AnyConnection, statement: &str) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        let text = sql(conn, statement);
        // Not a cached prepared statement: PostgreSQL would in time run it with a generic
        // plan, blind to how wide the prefix range is, and pick a join that reads every pair
        // of rows (seen: 160 ms instead of 5 ms on a freshly loaded table).
        let mut query = sqlx::query(&text).persistent(false);
        for value in self.values {
            query = match value {
                Param::Int(v) => query.bind(v),
                Param::Text(v) => query.bind(v),
            };
        }
        query.fetch_all(&mut *conn).await
    }
}

/// The bounds of the keys that start with `prefix`: `[prefix, prefix + U+10FFFF)`, which the
/// byte-wise collation of `search_key` makes exactly the keys with that prefix.
fn prefix_range(prefix: &str) -> [Param; 2] {
    let lower = prefix.to_lowercase();
    let upper = format!("{lower}\u{10FFFF}");
    [Param::Text(lower), Param::Text(upper)]
}

const KEY_RANGE: &str = "search_key >= ? AND search_key < ?";
/// The accounts with a key in the range: for few matches, and for counting.
const IN_KEY_RANGE: &str = "id IN (SELECT user_id FROM user_search_keys WHERE search_key >= ? AND search_key < ?)";

/// Up to `limit` accounts matching `filter` in `sort` order, after `after` when given.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &UserFilter,
    sort: UserSort,
    after: Option<&Position>,
    limit: i64,
) -> Result<Vec<User>, StoreError> {
    let mut conditions = Conditions::of(filter);
    if let Some(q) = &filter.q {
        let search = if few_matches(conn, q).await? {
            IN_KEY_RANGE.to_owned()
        } else {
            // A scalar subquery, not EXISTS: planners turn EXISTS into a semi-join, which with
            // a wide range may hash the whole range first; this stays a probe per account
            // along the sort index, and the walk stops at the page's end.
            format!(
                "(SELECT k.user_id FROM user_search_keys k WHERE k.user_id = users.id AND k.{KEY_RANGE} LIMIT 1) \
                 IS NOT NULL"
            )
        };
        conditions.push(search, prefix_range(q));
    }
    let column = if sort.by_name() { "sort_name" } else { "created_at" };
    let (cmp, direction) = if sort.descending() { ("<", "DESC") } else { (">", "ASC") };
    if let Some(position) = after {
        let key = &position.key;
        conditions.push(
            format!("{column} {cmp}= ? AND ({column} {cmp} ? OR id {cmp} ?)"),
            [Param::from(key), Param::from(key), Param::Text(position.id.clone())],
        );
    }
    conditions.values.push(Param::Int(limit));
    let statement = format!(
        "SELECT {COLUMNS} FROM users {} ORDER BY {column} {direction}, id {direction} LIMIT ?",
        conditions.where_clause()
    );
    let rows = conditions.fetch(conn, &statement).await?;
    rows.iter().map(user_from_row).collect()
}

/// How many accounts match `filter`: a count of the whole filtered set, so only on request.
pub async fn count(conn: &mut AnyConnection, filter: &UserFilter) -> Result<i64, StoreError> {
    let mut conditions = Conditions::of(filter);
    if let Some(q) = &filter.q {
        conditions.push(IN_KEY_RANGE, prefix_range(q));
    }
    let statement = format!("SELECT COUNT(*) AS n FROM users {}", conditions.where_clause());
    let rows = conditions.fetch(conn, &statement).await?;
    Ok(rows.first().map(|row| row.try_get::<i64, _>("n")).transpose()?.unwrap_or(0))
}

/// Whether fewer than [`SEARCH_SORT_LIMIT`] keys start with `prefix`, counting no further. The
/// order makes it an index range on every backend; without it PostgreSQL may scan the table
/// until it has seen enough matches.
async fn few_matches(conn: &mut AnyConnection, prefix: &str) -> Result<bool, StoreError> {
    let mut probe = Conditions::default();
    probe.push(KEY_RANGE, prefix_range(prefix));
    probe.values.push(Param::Int(SEARCH_SORT_LIMIT));
    let statement = format!(
        "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM user_search_keys {} ORDER BY search_key LIMIT ?) matches",
        probe.where_clause()
    );
    let rows = probe.fetch(conn, &statement).await?;
    let n = rows.first().map(|row| row.try_get::<i64, _>("n")).transpose()?.unwrap_or(0);
    Ok(n < SEARCH_SORT_LIMIT)
}
