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
//! Connections are opened, pinged and closed on the runtime of their shard: the home one, or
//! an HTTP thread's own (see [`shard`]).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions as _, Connection as _, Executor as _};
use tokio::runtime::{Handle, Id};
// Aborts its task when dropped: a dropped tokio `JoinHandle` detaches instead.
use tokio_util::task::AbortOnDropHandle;

use super::StoreError;
use super::sql::Backend;
use shard::{HOME, Idle, Shards, Slot};

mod shard;

/// How long a request waits for a connection (a free one, or a new one opened) before the
/// database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection given back in an unknown state may take to answer its ping, and
/// connections being closed together to say goodbye.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection given back less than this long ago is handed out without a ping first
/// (HikariCP's "alive bypass window", 500 ms by default, is the same idea): one that has just
/// answered is almost surely alive. One idle for this long or longer is pinged, and replaced
/// if the server closed it. (A SQLite file cannot drop a connection: it is never pinged.)
const TRUSTED_AFTER_USE: Duration = Duration::from_millis(500);

/// The longest pause between two tries to open a connection the server refused for now.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A bounded pool of connections to one database.
#[derive(Clone, Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    options: AnyConnectOptions,
    backend: Backend,
    shards: Shards,
    /// Connections are closed once they are this old.
    max_lifetime: Duration,
    closing: AtomicBool,
}

/// What is known of a leased connection's state; see the module's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Settled,
    Unknown,
    Discard,
}

impl Pool {
    /// A pool that opens connections as they are first needed, made on the current runtime
    /// (its home), with a share for each of `http_threads` where that pays (see [`shard`]).
    pub fn new(
        url: &str,
        backend: Backend,
        max: u32,
        max_lifetime: Duration,
        http_threads: u32,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.parse().map_err(StoreError::Unavailable)?;
        let home = Handle::try_current()
            .map_err(|error| StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(error))))?;
        let shards = Shards::new(backend, max.max(1), http_threads, home);
        let shared = Shared { options, backend, shards, max_lifetime, closing: AtomicBool::new(false) };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Gives the current runtime (an HTTP thread's, as it starts) a share of its own, if one is
    /// free: from now on its connections are opened here and used only here.
    pub fn enter(&self) {
        if let Ok(here) = Handle::try_current() {
            self.shared.shards.enter(here);
        }
    }

    /// Gives the current runtime's share back, as its thread stops: its idle connections are
    /// closed here, where their sockets are; any given back later are dropped.
    pub async fn leave(&self) {
        if let Ok(here) = Handle::try_current() {
            close_all(self.shared.shards.leave(here.id())).await;
        }
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
        let slot = shared.shards.slot().await.map_err(|_| closed())?;
        if shared.closing.load(Ordering::Acquire) {
            return Err(closed());
        }
        let shard = shared.shards.get(slot.shard);
        // The runtime the shard's connections live on; for a thread's shard its thread has just
        // left, the home one (the connection is then dropped when given back).
        let runtime = shard.runtime().or_else(|| shared.shards.get(HOME).runtime()).ok_or_else(closed)?;
        let lease = |conn, opened| Lease {
            conn: Some(conn),
            opened,
            on: runtime.id(),
            slot: Some(slot),
            shared: shared.clone(),
            state: State::Unknown,
        };
        while let Some(Idle { mut conn, opened, since }) = shard.pop_idle() {
            if opened.elapsed() >= shared.max_lifetime {
                continue;
            }
            let trusted = shared.backend == Backend::Sqlite || since.elapsed() < TRUSTED_AFTER_USE;
            if trusted || conn.ping().await.is_ok() {
                return Ok(lease(conn, opened));
            }
            // Dropped, not closed: the server has gone, there is no one to say goodbye to.
        }
        Ok(lease(shared.open_patiently(&runtime).await?, Instant::now()))
    }

    /// Refuses new leases, waits for those out to come back, and closes every connection.
    pub async fn close(&self) {
        self.shared.closing.store(true, Ordering::Release);
        close_all(self.shared.shards.close().await).await;
    }
}

/// Closes `idle`'s connections together, within [`FLUSH_TIMEOUT`] in all.
async fn close_all(idle: impl IntoIterator<Item = Idle>) {
    let closing = futures_util::future::join_all(idle.into_iter().map(|idle| idle.conn.close()));
    drop(tokio::time::timeout(FLUSH_TIMEOUT, closing).await);
}

impl Shared {
    /// Opens a connection, trying again, less and less often, while the server refuses it
    /// for now (starting up, or every connection slot taken: `53300`, which a connection
    /// closed a moment ago can still hold), as sqlx's pool did; [`Pool::acquire`]'s time
    /// limit ends the wait.
    async fn open_patiently(self: &Arc<Self>, runtime: &Handle) -> Result<AnyConnection, StoreError> {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.open_on(runtime).await {
                Err(sqlx::Error::Io(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(sqlx::Error::Database(error)) if error.is_transient_in_connect_phase() => {}
                opened => return Ok(opened?),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Opens a connection on its shard's `runtime`. The opening stops when the caller stops
    /// waiting, so that no more than `max` are ever under way.
    async fn open_on(self: &Arc<Self>, runtime: &Handle) -> Result<AnyConnection, sqlx::Error> {
        let shared = self.clone();
        match AbortOnDropHandle::new(runtime.spawn(async move { shared.open().await })).await {
            Ok(opened) => opened,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Cancelled: the runtime has shut down, as the pool's owner (or the thread) stops.
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

    /// Takes `conn` (its socket on the runtime `on`) back into `slot`'s shard: a settled one
    /// straight into `idle`; one in an unknown state after a ping, in a task of its own on that
    /// runtime that holds the slot until then; an old or discarded one is closed. A connection
    /// whose runtime is no longer its shard's (the thread has left) is dropped with its socket.
    fn give_back(self: Arc<Self>, slot: Slot, mut conn: AnyConnection, opened: Instant, on: Id, mut state: State) {
        if opened.elapsed() >= self.max_lifetime {
            state = State::Discard;
        }
        let shard = self.shards.get(slot.shard);
        let runtime = shard.runtime().filter(|runtime| runtime.id() == on);
        let Some(runtime) = runtime else { return };
        if state == State::Settled {
            // The slot is dropped after: whoever takes it finds the connection.
            drop(shard.keep(conn, opened, on));
            return;
        }
        runtime.spawn(async move {
            if state == State::Discard {
                drop(tokio::time::timeout(FLUSH_TIMEOUT, conn.close()).await);
            } else if let Ok(Ok(())) = tokio::time::timeout(FLUSH_TIMEOUT, conn.ping()).await {
                drop(self.shards.get(slot.shard).keep(conn, opened, on));
            } else {
                tracing::warn!("a connection given back did not answer its ping: closed");
            }
            drop(slot);
        });
    }
}

/// A connection taken from the [`Pool`]; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    conn: Option<AnyConnection>,
    opened: Instant,
    /// The runtime its connection's socket lives on.
    on: Id,
    slot: Option<Slot>,
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
        if let (Some(conn), Some(slot)) = (self.conn.take(), self.slot.take()) {
            self.shared.clone().give_back(slot, conn, self.opened, self.on, self.state);
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
mod tests;
