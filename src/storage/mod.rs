//! Persistence: one [`Store`] over SQLite, PostgreSQL or MySQL/MariaDB, chosen by the URL.
//!
//! One body of query code serves all three through sqlx's `Any` driver: statements use only
//! portable SQL (VARCHAR, TEXT and BIGINT columns; instants as microseconds), placeholders are
//! adapted per backend in [`sql`], and each aggregate has a module of functions over a
//! connection, so one domain operation can write several tables in one transaction.

pub mod audit;
pub mod conn;
pub mod email_tokens;
pub mod error;
pub mod group_commit;
pub mod holds;
pub mod ledger;
pub mod migrations;
pub mod outbox;
pub mod passkeys;
mod pool;
pub mod rate_limits;
pub mod refresh_tokens;
pub mod rotations;
pub mod second_factors;
pub mod server_secrets;
pub mod sessions;
pub mod sign_in_attempts;
pub mod signing_keys;
pub mod sql;
mod transaction;
pub mod user_import;
pub mod user_list;
pub mod users;
pub mod wallets;

use std::time::Duration;

use sqlx::Executor as _;

pub use conn::{Conn, Pooling};
pub use error::StoreError;
use pool::Pool;
pub use transaction::Tx;

/// A connection or an open transaction, as the domain passes it to the storage functions, so
/// that one operation can write several tables atomically without naming the driver.
pub type Connection = sqlx::AnyConnection;
pub use sql::Backend;

/// How long SQLite's writer connection is used before it is replaced.
const WRITER_LIFETIME: Duration = Duration::from_secs(60);

/// How long any other connection is used before it is replaced (sqlx's default): after a
/// fail-over, none stays on a server that is no longer the primary for longer.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The database, shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// SQLite only: the one connection that writes, which this process's transactions take in
    /// turn, so that writers queue here instead of sleeping in SQLite's busy handler.
    writer: Option<Pool>,
    backend: Backend,
    pooling: Pooling,
}

impl Store {
    /// Opens a pool on `url` (`sqlite://…`, `postgres://…` or `mysql://…`). A SQLite file is
    /// created when the URL says `mode=rwc`; it runs in WAL mode with a busy timeout. A
    /// PostgreSQL URL may say `pool_mode=transaction` (see the module [`conn`](mod@conn)).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_for_server(url, max_connections, 0).await
    }

    /// [`Self::connect`] for a server with `http_threads`: on PostgreSQL and MySQL each of them
    /// gets a share of the pool for its own use once it calls [`Self::enter_http_thread`]
    /// (see the module `pool`).
    pub async fn connect_for_server(url: &str, max_connections: u32, http_threads: u32) -> Result<Self, StoreError> {
        let backend = Backend::from_url(url).ok_or_else(|| {
            StoreError::InvalidUrl("the database URL must start with sqlite:, postgres: or mysql:".into())
        })?;
        let (url, pooling) = Pooling::from_url(url, backend)?;
        let url = normalise(&url, backend);
        let pool = Pool::new(&url, backend, max_connections, MAX_LIFETIME, http_threads)?;
        let writer = match backend {
            // Renewed now and then: a connection SQLite left in a bad state (a transaction it
            // rolled back itself after a full disk, say) is not kept for long.
            Backend::Sqlite => Some(Pool::new(&url, backend, 1, WRITER_LIFETIME, 0)?),
            Backend::Postgres | Backend::MySql => None,
        };
        Ok(Self { pool, writer, backend, pooling })
    }

    /// The database product.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for reads (and, behind a transaction pooler, a read-only transaction).
    pub async fn conn(&self) -> Result<Conn, StoreError> {
        match self.pooling {
            Pooling::Direct => Ok(Conn::pooled(self.pool.acquire().await?)),
            Pooling::Transaction => {
                Ok(Conn::transaction(Tx::begin(self.pool.acquire().await?, Some(Pooling::READ_BEGIN)).await?))
            }
        }
    }

    /// A connection for writing statements outside a transaction, each durable on its own;
    /// [`Conn::finish`] ends it ([`Self::write`] does both). On SQLite it is the writer, so that the statements queue here
    /// rather than in SQLite's busy handler.
    pub async fn write_conn(&self) -> Result<Conn, StoreError> {
        match self.pooling {
            Pooling::Direct => Ok(Conn::pooled(self.writer.as_ref().unwrap_or(&self.pool).acquire().await?)),
            Pooling::Transaction => Ok(Conn::transaction(self.begin().await?)),
        }
    }

    /// Runs `work` on a [`Self::write_conn`] and finishes it, so that no write can forget to.
    pub async fn write<T, E: From<StoreError>>(
        &self,
        work: impl AsyncFnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.write_conn().await?;
        let done = work(&mut conn).await?;
        conn.finish().await?;
        Ok(done)
    }

    /// A transaction: everything written through it lands together or not at all. On SQLite it
    /// runs on the one writer connection and holds the file's write lock from its start
    /// (`BEGIN IMMEDIATE`), so what it reads is what it writes over.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match (&self.writer, self.pooling) {
            (Some(writer), _) => Tx::begin(writer.acquire().await?, Some("BEGIN IMMEDIATE")).await?,
            (None, Pooling::Transaction) => Tx::begin(self.pool.acquire().await?, Some(self.pooling.begin())).await?,
            (None, Pooling::Direct) => Tx::begin(self.pool.acquire().await?, None).await?,
        })
    }

    /// Applies pending migrations; answers the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        migrations::run(&mut *self.pool.acquire().await?, self.pooling).await
    }

    /// Whether the database answers (one message in the simple protocol, which a transaction
    /// pooler serves outside a transaction).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.acquire().await?.execute("SELECT 1").await?;
        Ok(())
    }

    /// What a bulk load should do before queries run: refresh the planner's statistics of
    /// `tables`, and on PostgreSQL also their visibility maps, without which an index-only scan
    /// still visits the table for every row (seen: 15 ms instead of 1 ms for 2,000 keys).
    /// `VACUUM` cannot run in a transaction, so this is one simple-protocol statement on a
    /// connection of its own.
    pub async fn after_bulk_load(&self, tables: &[&str]) -> Result<(), StoreError> {
        let list = tables.join(", ");
        let statement = match self.backend {
            Backend::Postgres => format!("VACUUM (ANALYZE) {list}"),
            Backend::MySql => format!("ANALYZE TABLE {list}"),
            Backend::Sqlite => "ANALYZE".to_owned(),
        };
        self.writer.as_ref().unwrap_or(&self.pool).acquire().await?.execute(statement.as_str()).await?;
        Ok(())
    }

    /// Gives the HTTP thread this is called on (as it starts) connections of its own, if the
    /// pool has a share left for one: a database reply then wakes only this thread.
    pub fn enter_http_thread(&self) {
        self.pool.enter();
    }

    /// Gives the share of the HTTP thread this is called on back, as it stops, closing its
    /// idle connections while their sockets' runtime still runs.
    pub async fn leave_http_thread(&self) {
        self.pool.leave().await;
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

/// `mariadb:` is spelled `mysql:` for the driver. (SQLite's busy timeout of 5 s and foreign
/// keys are sqlx's defaults.)
fn normalise(url: &str, backend: Backend) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if backend == Backend::MySql && parsed.scheme() != "mysql" => {
            // Neither scheme is special in the URL standard, so one may replace the other.
            if parsed.set_scheme("mysql").is_ok() { parsed.into() } else { url.to_owned() }
        }
        _ => url.to_owned(),
    }
}
