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
//! **Shards.** A connection's socket belongs to the reactor of the runtime that opened it, and a
//! connection outlives its lease: opened by one HTTP thread (each a runtime of its own), it
//! would serve another thread's request only when the first thread's scheduler next looked at
//! its reactor, and it would fail for good once that thread stopped. So the pool is cut in
//! shards, each with a runtime that opens, pings and closes its connections:
//! - the home shard, on the runtime the pool was made on (the multi-threaded one), for every
//!   caller that is not an HTTP thread: background work, commands, tests;
//! - on PostgreSQL and MySQL, one shard per HTTP thread, which the thread takes with
//!   [`Pool::enter`] as it starts and gives back with [`Pool::leave`] as it stops. Its
//!   connections are used only there, so a database reply wakes only the thread waiting for
//!   it. Through the home shard, the reply woke the multi-threaded runtime, which woke the
//!   request's thread: a refresh on PostgreSQL lost 5–8 % to that hop (README, Performance).
//!
//! Each shard has a fixed share of `max`, so the total is never passed with no count shared
//! between threads: the HTTP threads `2 max / (2 threads + 1)` each, the home shard the rest
//! (about half a thread's share: 4, 4 and 2 of 10 on two cores, which measured a little better
//! than 3, 3 and 4). An HTTP thread whose own connections are all in use takes one of the home
//! shard's (with the hop), never another thread's. A SQLite connection runs on a thread of its own and wakes
//! its caller directly, so a SQLite pool has the home shard only.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions as _, Connection as _, Executor as _};
use tokio::runtime::Handle;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
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

/// The home shard's index in [`Shared::shards`].
const HOME: usize = 0;

/// A bounded pool of connections to one database.
#[derive(Clone, Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    options: AnyConnectOptions,
    backend: Backend,
    /// The home shard first, then one per HTTP thread (see the module's documentation).
    shards: Box<[Shard]>,
    /// Connections are closed once they are this old.
    max_lifetime: Duration,
    closing: AtomicBool,
}

/// A share of the pool, whose connections live on one runtime.
#[derive(Debug)]
struct Shard {
    size: u32,
    /// One permit per connection of this shard that may be open; a [`Lease`] holds one.
    permits: Arc<Semaphore>,
    place: Mutex<Place>,
}

#[derive(Debug)]
struct Place {
    /// The runtime whose reactor the shard's connections' sockets are registered with: always
    /// the home runtime for the home shard; for an HTTP thread's, that thread's between its
    /// [`Pool::enter`] and [`Pool::leave`], else none (connections given back then are closed).
    runtime: Option<Handle>,
    /// Connections given back, the newest last.
    idle: VecDeque<Idle>,
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
    /// A pool that opens connections as they are first needed, with a shard for each of
    /// `http_threads` on PostgreSQL and MySQL when `max` allows one connection each (see the
    /// module's documentation); made on the current runtime, its home.
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
        let max = max.max(1);
        let (threads, per_thread) = match backend {
            Backend::Sqlite => (0, 0),
            Backend::Postgres | Backend::MySql => {
                match max.saturating_mul(2) / http_threads.saturating_mul(2).saturating_add(1) {
                    0 => (0, 0),
                    share => (http_threads, share),
                }
            }
        };
        let shards = std::iter::once(Shard::new(max - threads * per_thread, Some(home)))
            .chain((0..threads).map(|_| Shard::new(per_thread, None)))
            .collect();
        let shared = Shared { options, backend, shards, max_lifetime, closing: AtomicBool::new(false) };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Gives the current runtime (an HTTP thread's, as it starts) a shard of its own, if one
    /// is free: from now on its connections are opened here and used only here.
    pub fn enter(&self) {
        let Ok(here) = Handle::try_current() else { return };
        for shard in &self.shared.shards[HOME + 1..] {
            let mut place = shard.place();
            if place.runtime.is_none() {
                // Left behind by a thread that stopped without leaving: their sockets' reactor
                // is gone, so they are dropped, not closed.
                let stale = std::mem::take(&mut place.idle);
                place.runtime = Some(here);
                drop(place);
                drop(stale);
                return;
            }
        }
    }

    /// Gives the current runtime's shard back, as its thread stops: its idle connections are
    /// closed here, where their sockets are, and any given back later are closed on return.
    pub async fn leave(&self) {
        let Some(index) = self.shared.own_shard() else { return };
        let idle = {
            let mut place = self.shared.shards[index].place();
            place.runtime = None;
            std::mem::take(&mut place.idle)
        };
        close_all(idle).await;
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
        let (index, permit) = match shared.own_shard() {
            Some(own) => shared.own_or_home_permit(own).await,
            None => (HOME, shared.shards[HOME].permits.clone().acquire_owned().await),
        };
        let permit = permit.map_err(|_| closed())?;
        if shared.closing.load(Ordering::Acquire) {
            return Err(closed());
        }
        let shard = &shared.shards[index];
        let lease = |conn, opened| Lease {
            conn: Some(conn),
            opened,
            permit: Some(permit),
            shared: shared.clone(),
            shard: index,
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
        // A shard whose thread has just left: opened at home, closed when given back.
        let runtime = shard.runtime().or_else(|| shared.shards[HOME].runtime()).ok_or_else(closed)?;
        Ok(lease(shared.open_patiently(&runtime).await?, Instant::now()))
    }

    /// Refuses new leases, waits for those out to come back, and closes every connection.
    pub async fn close(&self) {
        let shared = &self.shared;
        shared.closing.store(true, Ordering::Release);
        for shard in &shared.shards {
            // Taking every permit waits for each lease to end; the leases come back to `idle`.
            if let Ok(all) = shard.permits.acquire_many(shard.size).await {
                shard.permits.close();
                drop(all);
            }
            let idle = std::mem::take(&mut shard.place().idle);
            close_all(idle).await;
        }
    }
}

/// Closes `idle`'s connections, each within [`FLUSH_TIMEOUT`].
async fn close_all(idle: VecDeque<Idle>) {
    for Idle { conn, .. } in idle {
        drop(tokio::time::timeout(FLUSH_TIMEOUT, conn.close()).await);
    }
}

impl Shared {
    /// The index of the shard the current runtime has entered, if any.
    fn own_shard(&self) -> Option<usize> {
        if self.shards.len() == 1 {
            return None;
        }
        let here = Handle::try_current().ok()?.id();
        (HOME + 1..self.shards.len())
            .find(|&index| self.shards[index].place().runtime.as_ref().is_some_and(|runtime| runtime.id() == here))
    }

    /// A permit of the thread's own shard if one is free, else of the home shard if one is
    /// free, else whichever frees first (the own one when both do).
    async fn own_or_home_permit(&self, own: usize) -> (usize, Result<OwnedSemaphorePermit, AcquireError>) {
        let (mine, home) = (&self.shards[own].permits, &self.shards[HOME].permits);
        if let Ok(permit) = mine.clone().try_acquire_owned() {
            return (own, Ok(permit));
        }
        if let Ok(permit) = home.clone().try_acquire_owned() {
            return (HOME, Ok(permit));
        }
        tokio::select! {
            biased;
            permit = mine.clone().acquire_owned() => (own, permit),
            permit = home.clone().acquire_owned() => (HOME, permit),
        }
    }

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

    /// Opens a connection on its shard's `runtime` (see the module's documentation). The
    /// opening stops when the caller stops waiting, so that no more than `max` are ever under way.
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

    /// Takes `conn` back into shard `index`: a settled one straight into `idle`; one in an
    /// unknown state after a ping, in a task of its own on the shard's runtime that holds the
    /// permit until then; an old or discarded one is closed. A shard whose thread has left
    /// keeps nothing: the connection is dropped with its socket.
    fn give_back(
        self: Arc<Self>,
        index: usize,
        mut conn: AnyConnection,
        opened: Instant,
        permit: OwnedSemaphorePermit,
        mut state: State,
    ) {
        if opened.elapsed() >= self.max_lifetime {
            state = State::Discard;
        }
        let runtime = {
            let mut place = self.shards[index].place();
            let Some(runtime) = place.runtime.clone() else { return };
            if state == State::Settled {
                place.idle.push_back(Idle::new(conn, opened));
                // The permit is dropped after the lock: whoever takes it finds the connection.
                return;
            }
            runtime
        };
        runtime.spawn(async move {
            if state == State::Discard {
                drop(tokio::time::timeout(FLUSH_TIMEOUT, conn.close()).await);
            } else if let Ok(Ok(())) = tokio::time::timeout(FLUSH_TIMEOUT, conn.ping()).await {
                self.shards[index].push_idle(conn, opened);
            } else {
                tracing::warn!("a connection given back did not answer its ping: closed");
            }
            drop(permit);
        });
    }
}

impl Shard {
    fn new(size: u32, runtime: Option<Handle>) -> Self {
        let place = Place { runtime, idle: VecDeque::new() };
        Self { size, permits: Arc::new(Semaphore::new(size as usize)), place: Mutex::new(place) }
    }

    fn place(&self) -> MutexGuard<'_, Place> {
        self.place.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn runtime(&self) -> Option<Handle> {
        self.place().runtime.clone()
    }

    /// The newest idle connection; those idle longer than [`IDLE_TIMEOUT`] are closed first.
    fn pop_idle(&self) -> Option<Idle> {
        let mut place = self.place();
        while place.idle.front().is_some_and(|oldest| oldest.since.elapsed() >= IDLE_TIMEOUT) {
            place.idle.pop_front();
        }
        place.idle.pop_back()
    }

    /// Keeps `conn` idle, unless the shard's thread has left meanwhile.
    fn push_idle(&self, conn: AnyConnection, opened: Instant) {
        let mut place = self.place();
        if place.runtime.is_some() {
            place.idle.push_back(Idle::new(conn, opened));
        }
    }
}

impl Idle {
    fn new(conn: AnyConnection, opened: Instant) -> Self {
        Self { conn, opened, since: Instant::now() }
    }
}

/// A connection taken from the [`Pool`]; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    conn: Option<AnyConnection>,
    opened: Instant,
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
    /// The shard it came from and goes back to.
    shard: usize,
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
            self.shared.clone().give_back(self.shard, conn, self.opened, permit, self.state);
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
