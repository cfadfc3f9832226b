//! The queries of moving accounts in and out: which accounts a batch of an import names
//! already, and every account in id order for an export.

use sqlx::{AnyConnection, Row as _};

use crate::domain::user::User;
use uuid::Uuid;

use super::error::StoreError;
use super::sql::{sql, text_column};
use super::users::{COLUMNS, user_from_row};
use crate::domain::ids::parse_id;

/// An existing account an import line may name: its id and the keys it is unique by.
#[derive(Debug, Clone)]
pub struct Existing {
    pub id: Uuid,
    pub username_key: Option<String>,
    pub email_key: Option<String>,
}

/// The accounts whose id is one of `ids`, or whose lower-cased username or e-mail key is one
/// of `usernames` or `emails`: one statement for a whole batch.
pub async fn matching(
    conn: &mut AnyConnection,
    ids: &[Uuid],
    usernames: &[String],
    emails: &[String],
) -> Result<Vec<Existing>, StoreError> {
    // One SELECT per column, joined by UNION, so that each can use its column's index.
    let select = |column: &str, n: usize| {
        (n > 0).then(|| {
            format!("SELECT id, username_lower, email_lower FROM users WHERE {column} IN ({})", vec!["?"; n].join(", "))
        })
    };
    let selects: Vec<String> =
        [select("id", ids.len()), select("username_lower", usernames.len()), select("email_lower", emails.len())]
            .into_iter()
            .flatten()
            .collect();
    if selects.is_empty() {
        return Ok(Vec::new());
    }
    let statement = selects.join(" UNION ");
    let text = sql(conn, &statement);
    // Not prepared once and reused: PostgreSQL would soon settle on a generic plan made while
    // the table was still small (a scan comparing every row with every key), which makes each
    // batch slower than the last. Planned afresh, each SELECT walks its index.
    let mut query = sqlx::query(&text).persistent(false);
    for id in ids {
        query = query.bind(id.to_string());
    }
    for key in usernames.iter().chain(emails) {
        query = query.bind(key.clone());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            let id = text_column(row, "id")?;
            let id = parse_id(&id).ok_or_else(|| StoreError::Corrupt(format!("user id {id}")))?;
            let (username_key, email_key) = (row.try_get("username_lower")?, row.try_get("email_lower")?);
            Ok(Existing { id, username_key, email_key })
        })
        .collect()
}

/// Up to `limit` accounts after `after` in id order (ids are time-ordered UUIDv7 text, so the
/// order is also roughly creation order): the pages of an export.
pub async fn page_by_id(conn: &mut AnyConnection, after: Option<Uuid>, limit: u32) -> Result<Vec<User>, StoreError> {
    let statement = format!("SELECT {COLUMNS} FROM users WHERE id > ? ORDER BY id LIMIT {limit}");
    let text = sql(conn, &statement);
    let after = after.map(|id| id.to_string()).unwrap_or_default();
    let rows = sqlx::query(&text).bind(after).fetch_all(&mut *conn).await?;
    rows.iter().map(user_from_row).collect()
}
