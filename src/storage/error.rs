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
            sqlx::Error::Database(db) if connection_lost(db.as_ref()) => Self::Unavailable(error),
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

/// Whether a database error says the server ended the connection or would not open it (a
/// restart, a failover, an administrator's kill, too many clients): the pool replaces such a
/// connection, and the request is answered `503` with `Retry-After`. On PostgreSQL (and
/// PgBouncer) that is any `FATAL` or `PANIC`, which ends the session by definition; an `ERROR`
/// never does, whatever its class (`08P01` is also a statement's wrong number of parameters).
/// On MySQL and MariaDB it is the server's numbers for shutting down (1053), too many
/// connections (1040), a killed connection (1927) and an idle one closed (4031); not SQLSTATE
/// classes, which mix these with a packet too large or a statement's time limit.
fn connection_lost(error: &dyn sqlx::error::DatabaseError) -> bool {
    use sqlx::mysql::MySqlDatabaseError;
    use sqlx::postgres::{PgDatabaseError, PgSeverity};
    if let Some(postgres) = error.try_downcast_ref::<PgDatabaseError>() {
        return matches!(postgres.severity(), PgSeverity::Fatal | PgSeverity::Panic);
    }
    error
        .try_downcast_ref::<MySqlDatabaseError>()
        .is_some_and(|mysql| matches!(mysql.number(), 1040 | 1053 | 1927 | 4031))
}
