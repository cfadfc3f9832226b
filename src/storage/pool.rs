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
//!
//! Connections are opened, and pinged on their way back, on the runtime the pool was made on
//! (its home: the multi-threaded one), wherever they are used. A connection's socket belongs to
//! the reactor of the runtime that opened it, and a connection outlives its lease: opened by
//! one HTTP thread (each a runtime of its own), it would later serve another's request only
//! when the first thread's scheduler next looked at its reactor, and it would fail for good
//! once that thread stopped. The price: each database reply wakes the home runtime, which
//! wakes the request's thread (a refresh on PostgreSQL lost 5–8 %; README, Performance).

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions as _, Connection as _, Executor as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
// Aborts its task when dropped: a dropped tokio `JoinHandle` detaches instead.
use tokio_util::task::AbortOnDropHandle;

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
    /// The runtime whose reactor the connections' sockets are registered with.
    home: tokio::runtime::Handle,
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
    /// A pool that opens connections as they are first needed, on the current runtime.
    pub fn new(url: &str, backend: Backend, max: u32, max_lifetime: Duration) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.parse().map_err(StoreError::Unavailable)?;
        let home = tokio::runtime::Handle::try_current()
            .map_err(|error| StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(error))))?;
        let max = max.max(1);
        let shared = Shared {
            options,
            backend,
            max,
            home,
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
    async fn open_patiently(self: &Arc<Self>) -> Result<AnyConnection, StoreError> {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.open_at_home().await {
                Err(sqlx::Error::Io(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(sqlx::Error::Database(error)) if error.is_transient_in_connect_phase() => {}
                opened => return Ok(opened?),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Opens a connection on the home runtime (see the module's documentation). The opening
    /// stops when the caller stops waiting, so that no more than `max` are ever under way.
    async fn open_at_home(self: &Arc<Self>) -> Result<AnyConnection, sqlx::Error> {
        let shared = self.clone();
        match AbortOnDropHandle::new(self.home.spawn(async move { shared.open().await })).await {
            Ok(opened) => opened,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Cancelled: the home runtime has shut down, as the pool's owner stops.
            Err(_) => Err(sqlx::Error::PoolClosed),
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
        let home = self.home.clone();
        home.spawn(async move {
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

    pub fn state(&self) -> State {
        self.state
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
#[path = "pool_tests.rs"]
mod tests;
