//! The connection pool: at most `max` connections, the most recently given back handed out
//! first, each set up as it is opened.
//!
//! Ours rather than sqlx's because of what happens when a connection is given back. sqlx 0.8
//! pings every connection on its way back, whatever it did: on PostgreSQL that was one round
//! trip of the three a token refresh made, and with no time limit, so a server that stops
//! answering kept every connection in such a ping for as long as TCP waits (sqlx issue 4349).
//! Here a [`Lease`] says what state its connection is in:
//! - [`State::Settled`]: its last statement, commit or rollback ended well, with nothing left
//!   to read or send ([`super::Conn::finish`] and [`super::Tx`] say so). It goes straight back.
//! - [`State::Unknown`]: dropped before that (an error, a request cut off, a read that simply
//!   ended). It is pinged on its way back, within [`FLUSH_TIMEOUT`], as sqlx did: that sends a
//!   `ROLLBACK` sqlx queued, reads off what a cut-off statement left, and finds a connection
//!   the server closed, which is then closed here too.
//! - [`State::Discard`]: a `BEGIN` was sent and not seen to succeed. The server may be in a
//!   transaction that the driver does not know of (sqlx's guard against that works only for
//!   nested transactions), in which later writes would never commit: it is closed.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions as _, Connection as _, Executor as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StoreError;
use super::sql::Backend;

/// How long a request waits for a connection (a free one, or a new one opened) before the
/// database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection given back in an unknown state may take to answer its ping.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection given back less than this long ago is handed out without a ping first
/// (HikariCP's "alive bypass window", 500 ms by default, is the same idea): one that has just
/// answered is almost surely alive. One idle for this long or longer is pinged, and replaced
/// if the server closed it. (A SQLite file cannot drop a connection: it is never pinged.)
const TRUSTED_AFTER_USE: Duration = Duration::from_millis(500);

/// The longest pause between two tries to open a connection the server refused for now.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// An idle connection unused this long is closed when the pool is next used (sqlx's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// A bounded pool of connections to one database.
#[derive(Clone, Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    options: AnyConnectOptions,
    backend: Backend,
    max: u32,
    /// One permit per connection that may be open; a [`Lease`] holds one.
    permits: Arc<Semaphore>,
    /// Connections given back, the newest last.
    idle: Mutex<VecDeque<Idle>>,
    /// Connections are closed once they are this old.
    max_lifetime: Duration,
    closing: AtomicBool,
}

#[derive(Debug)]
struct Idle {
    conn: AnyConnection,
    opened: Instant,
    since: Instant,
}

/// What is known of a leased connection's state; see the module's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Settled,
    Unknown,
    Discard,
}

impl Pool {
    /// A pool that opens connections as they are first needed.
    pub fn new(url: &str, backend: Backend, max: u32, max_lifetime: Duration) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.parse().map_err(StoreError::Unavailable)?;
        let max = max.max(1);
        let shared = Shared {
            options,
            backend,
            max,
            permits: Arc::new(Semaphore::new(max as usize)),
            idle: Mutex::new(VecDeque::new()),
            max_lifetime,
            closing: AtomicBool::new(false),
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// A connection: an idle one if there is any, else a new one, within [`ACQUIRE_TIMEOUT`].
    pub async fn acquire(&self) -> Result<Lease, StoreError> {
        match tokio::time::timeout(ACQUIRE_TIMEOUT, self.take()).await {
            Ok(lease) => lease,
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }

    async fn take(&self) -> Result<Lease, StoreError> {
        let shared = &self.shared;
        let closed = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        let permit = shared.permits.clone().acquire_owned().await.map_err(|_| closed())?;
        if shared.closing.load(Ordering::Acquire) {
            return Err(closed());
        }
        let lease = |conn, opened| Lease {
            conn: Some(conn),
            opened,
            permit: Some(permit),
            shared: shared.clone(),
            state: State::Unknown,
        };
        while let Some(Idle { mut conn, opened, since }) = shared.pop_idle() {
            if opened.elapsed() >= shared.max_lifetime {
                continue;
            }
            let trusted = shared.backend == Backend::Sqlite || since.elapsed() < TRUSTED_AFTER_USE;
            if trusted || conn.ping().await.is_ok() {
                return Ok(lease(conn, opened));
            }
            // Dropped, not closed: the server has gone, there is no one to say goodbye to.
        }
        Ok(lease(shared.open_patiently().await?, Instant::now()))
    }

    /// Refuses new leases, waits for those out to come back, and closes every connection.
    pub async fn close(&self) {
        let shared = &self.shared;
        shared.closing.store(true, Ordering::Release);
        // Taking every permit waits for each lease to end; the leases come back to `idle`.
        if let Ok(all) = shared.permits.acquire_many(shared.max).await {
            shared.permits.close();
            drop(all);
        }
        let idle = std::mem::take(&mut *shared.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for Idle { conn, .. } in idle {
            drop(tokio::time::timeout(FLUSH_TIMEOUT, conn.close()).await);
        }
    }
}

impl Shared {
    /// The newest idle connection; those idle longer than [`IDLE_TIMEOUT`] are closed first.
    fn pop_idle(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while idle.front().is_some_and(|oldest| oldest.since.elapsed() >= IDLE_TIMEOUT) {
            idle.pop_front();
        }
        idle.pop_back()
    }

    /// Opens a connection, trying again, less and less often, while the server refuses it
    /// for now (starting up, or every connection slot taken: `53300`, which a connection
    /// closed a moment ago can still hold), as sqlx's pool did; [`Pool::acquire`]'s time
    /// limit ends the wait.
    async fn open_patiently(&self) -> Result<AnyConnection, StoreError> {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.open().await {
                Err(sqlx::Error::Io(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(sqlx::Error::Database(error)) if error.is_transient_in_connect_phase() => {}
                opened => return Ok(opened?),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Opens a connection and sets the session up for tessera's statements.
    async fn open(&self) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = self.options.connect().await?;
        let setup = match self.backend {
            // WAL lets readers run beside the one writer; NORMAL sync is safe with WAL.
            Backend::Sqlite => Some("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL"),
            // UTC, so that the database's clock (rate limits) never repeats an hour.
            Backend::MySql => Some("SET time_zone = '+00:00'"),
            Backend::Postgres => None,
        };
        if let Some(setup) = setup {
            conn.execute(setup).await?;
        }
        Ok(conn)
    }

    /// Takes `conn` back: a settled one straight into `idle`; one in an unknown state after a
    /// ping, in a task of its own that holds the permit until then; an old or discarded one
    /// is closed.
    fn give_back(
        self: Arc<Self>,
        mut conn: AnyConnection,
        opened: Instant,
        permit: OwnedSemaphorePermit,
        mut state: State,
    ) {
        if opened.elapsed() >= self.max_lifetime {
            state = State::Discard;
        }
        if state == State::Settled {
            self.push_idle(conn, opened);
            drop(permit);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            if state == State::Discard {
                drop(tokio::time::timeout(FLUSH_TIMEOUT, conn.close()).await);
            } else if let Ok(Ok(())) = tokio::time::timeout(FLUSH_TIMEOUT, conn.ping()).await {
                self.push_idle(conn, opened);
            } else {
                tracing::warn!("a connection given back did not answer its ping: closed");
            }
            drop(permit);
        });
    }

    fn push_idle(&self, conn: AnyConnection, opened: Instant) {
        let idle = Idle { conn, opened, since: Instant::now() };
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).push_back(idle);
    }
}

/// A connection taken from the [`Pool`]; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    conn: Option<AnyConnection>,
    opened: Instant,
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
    state: State,
}

impl Lease {
    /// Says what is known of the connection's state now (see the module's documentation).
    pub fn set_state(&mut self, state: State) {
        self.state = state;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(conn), Some(permit)) = (self.conn.take(), self.permit.take()) {
            self.shared.clone().give_back(conn, self.opened, permit, self.state);
        }
    }
}

impl Deref for Lease {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        let Some(conn) = &self.conn else { unreachable!("a lease holds its connection until it is dropped") };
        conn
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        let Some(conn) = &mut self.conn else { unreachable!("a lease holds its connection until it is dropped") };
        conn
    }
}

#[cfg(test)]
mod tests {
    use tessera_scratch::ScratchDb;

    use super::*;
    use crate::storage::{Store, Tx};

    /// The servers the test run names (`TESSERA_TEST_POSTGRES_URL`, `TESSERA_TEST_MYSQL_URL`).
    fn servers() -> Vec<String> {
        ["TESSERA_TEST_POSTGRES_URL", "TESSERA_TEST_MYSQL_URL"]
            .into_iter()
            .filter_map(|v| std::env::var(v).ok())
            .collect()
    }

    /// A fresh database on each server named, and a SQLite file first when `with_sqlite`.
    async fn databases(prefix: &str, with_sqlite: bool) -> Vec<ScratchDb> {
        let mut made = Vec::new();
        if with_sqlite {
            made.push(ScratchDb::create(None, prefix).await.unwrap());
        }
        for server in servers() {
            made.push(ScratchDb::create(Some(&server), prefix).await.unwrap());
        }
        made
    }

    /// Runs `statement` on a connection for writes of `store`, each durable on its own.
    async fn run(store: &Store, statement: &str) -> Result<(), StoreError> {
        store
            .write(async |conn: &mut AnyConnection| conn.execute(statement).await.map(drop).map_err(StoreError::from))
            .await
    }

    async fn value(conn: &mut AnyConnection) -> i64 {
        let row = sqlx::query("SELECT v FROM probe WHERE id = 1").fetch_one(conn).await.unwrap();
        sqlx::Row::get(&row, "v")
    }

    #[tokio::test]
    async fn a_transaction_dropped_halfway_leaves_no_lock_and_nothing_on_its_connection() {
        for db in databases("pool_rollback", true).await {
            let url = &db.url;
            // One connection, so that the statements after the drop run on the dropped one's.
            let store = Store::connect(url, 1).await.unwrap();
            run(&store, "CREATE TABLE probe (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)").await.unwrap();
            run(&store, "INSERT INTO probe (id, v) VALUES (1, 0)").await.unwrap();

            let mut tx = store.begin().await.unwrap();
            tx.execute("UPDATE probe SET v = 1 WHERE id = 1").await.unwrap();
            drop(tx);

            // Another session may write the row at once: the rollback was sent without waiting
            // for the connection's next user (each database waits at most a second for a lock).
            let other = Store::connect(url, 1).await.unwrap();
            let mut tx = other.begin().await.unwrap();
            match other.backend() {
                Backend::Postgres => tx.execute("SET LOCAL lock_timeout = '1s'").await.unwrap(),
                Backend::MySql => tx.execute("SET SESSION innodb_lock_wait_timeout = 1").await.unwrap(),
                Backend::Sqlite => Default::default(),
            };
            tx.execute("UPDATE probe SET v = v + 2 WHERE id = 1").await.unwrap();
            tx.commit().await.unwrap();
            other.close().await;

            // The dropped transaction's connection: in no transaction, its write undone.
            let mut conn = store.write_conn().await.unwrap();
            assert_eq!(value(&mut conn).await, 2, "{url}");
            conn.execute("UPDATE probe SET v = 3 WHERE id = 1").await.unwrap();
            conn.finish().await.unwrap();
            let other = Store::connect(url, 1).await.unwrap();
            assert_eq!(value(&mut other.conn().await.unwrap()).await, 3, "committed on its own: {url}");
            other.close().await;
            store.close().await;
            db.remove().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_connection_whose_begin_was_cut_off_is_closed_not_reused_inside_its_transaction() {
        let Ok(server) = std::env::var("TESSERA_TEST_POSTGRES_URL") else { return };
        let db = ScratchDb::create(Some(&server), "pool_begin").await.unwrap();
        let store = Store::connect(&db.url, 1).await.unwrap();
        run(&store, "CREATE TABLE probe (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)").await.unwrap();
        // The server runs the BEGIN at once and answers after the sleep: the caller has gone.
        let begin = Tx::begin(store.pool.acquire().await.unwrap(), Some("BEGIN; SELECT pg_sleep(0.3)"));
        assert!(tokio::time::timeout(Duration::from_millis(50), begin).await.is_err());
        // On the pool's one connection: a write that must be durable on its own.
        run(&store, "INSERT INTO probe (id, v) VALUES (1, 1)").await.unwrap();
        let other = Store::connect(&db.url, 1).await.unwrap();
        assert_eq!(value(&mut other.conn().await.unwrap()).await, 1, "the write was not held in a transaction");
        other.close().await;
        store.close().await;
        db.remove().await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_refused_for_want_of_a_slot_is_tried_again_until_one_is_free() {
        let Ok(server) = std::env::var("TESSERA_TEST_POSTGRES_URL") else { return };
        let db = ScratchDb::create(Some(&server), "pool_slots").await.unwrap();
        let role = db.name.replace("pool_slots", "pool_role");
        let admin = Store::connect(&server, 1).await.unwrap();
        run(&admin, &format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")).await.unwrap();
        let mut as_role = url::Url::parse(&db.url).unwrap();
        as_role.set_username(&role).unwrap();
        // The role's one slot, held for a moment: the pool is refused (53300) until it is free.
        let held = Store::connect(as_role.as_str(), 1).await.unwrap();
        let lease = held.conn().await.unwrap();
        let store = Store::connect(as_role.as_str(), 1).await.unwrap();
        let release = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(lease);
            held.close().await;
        };
        let (acquired, ()) = tokio::join!(store.conn(), release);
        let row = sqlx::query("SELECT 1 AS n").fetch_one(&mut *acquired.unwrap()).await.unwrap();
        assert_eq!(sqlx::Row::get::<i32, _>(&row, "n"), 1);
        store.close().await;
        db.remove().await.unwrap();
        run(&admin, &format!("DROP ROLE {role}")).await.unwrap();
        admin.close().await;
    }

    #[tokio::test]
    async fn a_statement_cut_off_leaves_its_connection_fit_for_the_next() {
        for server in servers() {
            let store = Store::connect(&server, 1).await.unwrap();
            let sleep = match store.backend() {
                Backend::Postgres => "SELECT pg_sleep(0.3)",
                _ => "SELECT SLEEP(0.3)",
            };
            let mut conn = store.conn().await.unwrap();
            let cut = tokio::time::timeout(Duration::from_millis(50), conn.execute(sleep)).await;
            assert!(cut.is_err(), "the statement was cut off: {server}");
            drop(conn);
            for _ in 0..3 {
                let row = sqlx::query("SELECT 41 + 1 AS n").fetch_one(&mut *store.conn().await.unwrap()).await.unwrap();
                assert_eq!(sqlx::Row::get::<i32, _>(&row, "n"), 42, "{server}");
            }
            store.close().await;
        }
    }

    #[tokio::test]
    async fn closing_waits_for_the_leases_out_then_refuses_new_ones() {
        let db = ScratchDb::create(None, "pool_close").await.unwrap();
        let pool = Pool::new(&db.url, Backend::Sqlite, 2, Duration::from_secs(60)).unwrap();
        let lease = pool.acquire().await.unwrap();
        let closing = tokio::spawn({
            let pool = pool.clone();
            async move { pool.close().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!closing.is_finished(), "close waits for the lease out");
        drop(lease);
        tokio::time::timeout(Duration::from_secs(5), closing).await.unwrap().unwrap();
        assert!(matches!(pool.acquire().await, Err(StoreError::Unavailable(sqlx::Error::PoolClosed))));
        db.remove().await.unwrap();
    }
}
