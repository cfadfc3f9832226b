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
pub mod rate_limits;
pub mod refresh_tokens;
pub mod rotations;
pub mod second_factors;
pub mod server_secrets;
pub mod sessions;
pub mod sign_in_attempts;
pub mod signing_keys;
pub mod sql;
pub mod user_import;
pub mod user_list;
pub mod users;
pub mod wallets;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor as _, Transaction};

pub use conn::{Conn, Pooling};
pub use error::StoreError;

/// A connection or an open transaction, as the domain passes it to the storage functions, so
/// that one operation can write several tables atomically without naming the driver.
pub type Connection = sqlx::AnyConnection;
pub use sql::Backend;

/// How long SQLite's writer connection is used before it is replaced.
const WRITER_LIFETIME: Duration = Duration::from_secs(60);

/// How long a request waits for a connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection given back less than this long ago is handed out without a ping first
/// (HikariCP's "alive bypass window", 500 ms by default, is the same idea): one that has just
/// answered is almost surely alive, and the ping is a round trip of its own, one of the four a
/// token refresh made on PostgreSQL. One idle for this long or longer is pinged, and replaced
/// if it is dead.
const TRUSTED_AFTER_USE: Duration = Duration::from_millis(500);

/// The database, shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// SQLite only: the one connection that writes, which this process's transactions take in
    /// turn, so that writers queue here instead of sleeping in SQLite's busy handler.
    writer: Option<AnyPool>,
    backend: Backend,
    pooling: Pooling,
}

impl Store {
    /// Opens a pool on `url` (`sqlite://…`, `postgres://…` or `mysql://…`). A SQLite file is
    /// created when the URL says `mode=rwc`; it runs in WAL mode with a busy timeout. A
    /// PostgreSQL URL may say `pool_mode=transaction` (see the module [`conn`](mod@conn)).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let backend = Backend::from_url(url).ok_or_else(|| {
            StoreError::InvalidUrl("the database URL must start with sqlite:, postgres: or mysql:".into())
        })?;
        install_default_drivers();
        let (url, pooling) = Pooling::from_url(url, backend)?;
        let url = normalise(&url, backend);
        let pool = pool_options(backend, max_connections).connect_lazy(&url).map_err(StoreError::Unavailable)?;
        let writer = match backend {
            // Renewed now and then: a connection SQLite left in a bad state (a transaction it
            // rolled back itself after a full disk, say) is not kept for long.
            Backend::Sqlite => Some(
                pool_options(backend, 1)
                    .max_lifetime(WRITER_LIFETIME)
                    .connect_lazy(&url)
                    .map_err(StoreError::Unavailable)?,
            ),
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
            Pooling::Transaction => Ok(Conn::transaction(self.pool.begin_with(Pooling::READ_BEGIN).await?)),
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
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match (&self.writer, self.pooling) {
            (Some(writer), _) => writer.begin_with("BEGIN IMMEDIATE").await?,
            (None, Pooling::Transaction) => self.pool.begin_with(self.pooling.begin()).await?,
            (None, Pooling::Direct) => self.pool.begin().await?,
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

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

fn pool_options(backend: Backend, max_connections: u32) -> AnyPoolOptions {
    let options = AnyPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // sqlx would ping every connection as it is taken; see TRUSTED_AFTER_USE for when a
        // server's connection is. (sqlx still pings each one as it is given back, which also
        // clears whatever a dropped request left on it.)
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the one writer; NORMAL sync is safe with WAL.
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL").await?;
                }
                if backend == Backend::MySql {
                    // UTC, so that the database's clock (rate limits) never repeats an hour.
                    conn.execute("SET time_zone = '+00:00'").await?;
                }
                Ok(())
            })
        });
    match backend {
        // A SQLite file cannot drop a connection: there is nothing to ping.
        Backend::Sqlite => options,
        // A connection that fails its ping is closed and another is taken. One the server
        // closed within the window fails its request's first statement instead, which is
        // answered 503 (`StoreError::Unavailable`), and is then replaced.
        Backend::Postgres | Backend::MySql => options.before_acquire(|conn, meta| {
            Box::pin(async move { Ok(meta.idle_for < TRUSTED_AFTER_USE || sqlx::Connection::ping(conn).await.is_ok()) })
        }),
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
