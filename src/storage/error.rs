//! What can go wrong below the domain, classified once so callers can tell a conflict from
//! an outage. The sqlx error travels along as the source for logging; it is never shown.

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique index refused the write; `constraint` names the index (or, where the backend
    /// does not report it, the message, which names the index or column).
    #[error("unique constraint violated: {constraint}")]
    Conflict { constraint: String },
    #[error("row not found")]
    NotFound,
    /// The database cannot be reached or the pool is exhausted: a `503`, worth retrying.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A deadlock or serialization failure: the transaction was rolled back and may be run
    /// again as a whole.
    #[error("transaction conflict")]
    Retryable(#[source] sqlx::Error),
    #[error("database error")]
    Other(#[source] sqlx::Error),
    /// A row that breaks what the schema promises (an unknown role, a malformed id).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database URL cannot be used as given.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
}

impl StoreError {
    /// Whether this is a uniqueness conflict on the index or column called `name`.
    pub fn is_conflict_on(&self, name: &str) -> bool {
        matches!(self, Self::Conflict { constraint } if constraint.contains(name))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict { constraint: db.constraint().map_or_else(|| db.message().to_owned(), str::to_owned) }
            }
            // PostgreSQL serialization failure and deadlock (MySQL reports a deadlock as 40001
            // too); SQLite still busy after its timeout, or a read snapshot gone stale.
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001" | "40P01" | "5" | "517")) => {
                Self::Retryable(error)
            }
            sqlx::Error::Database(db) if db.code().is_some_and(|code| connection_lost(&code)) => {
                Self::Unavailable(error)
            }
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error),
            _ => Self::Other(error),
        }
    }
}

/// Whether a database error's SQLSTATE says the server ended the connection or would not open
/// it (a restart, a failover, an administrator's kill): class 08 (connection exception);
/// PostgreSQL's 57P01–57P03 (shutting down, crashed, starting up) and 53300 (too many
/// connections); MySQL's and MariaDB's 70100 (the connection or its statement was killed).
/// The pool replaces such a connection; the request is answered `503` with `Retry-After`.
fn connection_lost(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "70100")
}
