//! The pool's shards. A connection's socket belongs to the reactor of the runtime that opened
//! it, and a connection outlives its lease: opened by one HTTP thread (each a runtime of its
//! own), it would serve another thread's request only when the first thread's scheduler next
//! looked at its reactor, and it would fail for good once that thread stopped. So the pool is
//! cut in shards, each with a runtime that opens, pings and closes its connections:
//! - the home shard, on the runtime the pool was made on (the multi-threaded one), for every
//!   caller that is not an HTTP thread: commands, tests, background work, and the work a
//!   request hands to the background (the rate limiter's counters in the database, a sign-in
//!   slot given back, a recovery mail's request);
//! - on PostgreSQL and MySQL, one shard per HTTP thread, which the thread takes with
//!   [`Shards::enter`] as it starts and gives back with [`Shards::leave`] as it stops. Its
//!   connections are used only there, so a database reply wakes only the thread waiting for
//!   it. Through the home shard, the reply woke the multi-threaded runtime, which woke the
//!   request's thread: a refresh on PostgreSQL lost 10 % to that hop (README, Performance).
//!
//! Each shard has a fixed share of `max`, so the total is never passed with no count shared
//! between threads: the HTTP threads `2 max / (2 threads + 1)` each, the home shard the rest
//! (about half a thread's share: 4, 4 and 2 of 10 on two cores). A share of one connection is
//! not worth cutting off, so with fewer than [`MIN_THREAD_SHARE`] each (many cores, a small
//! `max`) there are no threads' shards. An HTTP thread whose own connections are all in use
//! may borrow one of the home shard's (with the hop), never another thread's; but half of the
//! home shard (at least one) is kept from lending, so that an overflow of requests cannot
//! starve the work handed to the background (the rate limiter fails open after waiting
//! 500 ms). A SQLite connection runs on a thread of its own and wakes its caller directly, so
//! a SQLite pool has the home shard only.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sqlx::AnyConnection;
use tokio::runtime::{Handle, Id};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use crate::storage::sql::Backend;

/// An idle connection unused this long is closed when the pool is next used (sqlx's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The least share of the pool an HTTP thread is given; below it, threads have none.
pub const MIN_THREAD_SHARE: u32 = 2;

/// The home shard's index.
pub const HOME: usize = 0;

/// The home shard first, then one per HTTP thread.
#[derive(Debug)]
pub struct Shards {
    list: Box<[Shard]>,
    /// The home shard's permits that HTTP threads may borrow (see the module's documentation).
    lendable: Arc<Semaphore>,
}

/// A share of the pool, whose connections live on one runtime.
#[derive(Debug)]
pub struct Shard {
    pub size: u32,
    /// One permit per connection of this shard that may be open; a [`Slot`] holds one.
    pub permits: Arc<Semaphore>,
    place: Mutex<Place>,
}

#[derive(Debug)]
struct Place {
    /// The runtime whose reactor the shard's connections' sockets are registered with: always
    /// the home runtime for the home shard; for an HTTP thread's, that thread's between its
    /// [`Shards::enter`] and [`Shards::leave`], else none (connections given back then are
    /// dropped with their sockets).
    runtime: Option<Handle>,
    /// Connections given back, the newest last; each on `runtime`.
    idle: VecDeque<Idle>,
}

#[derive(Debug)]
pub struct Idle {
    pub conn: AnyConnection,
    pub opened: Instant,
    pub since: Instant,
}

/// A lease's right to its connection: a permit of its shard, and for a thread that borrowed
/// from the home shard, one of the lendable permits too.
#[derive(Debug)]
pub struct Slot {
    pub shard: usize,
    _permit: OwnedSemaphorePermit,
    _lent: Option<OwnedSemaphorePermit>,
}

impl Shards {
    /// Shards for a pool of `max` connections made on `home`, served by `http_threads`.
    pub fn new(backend: Backend, max: u32, http_threads: u32, home: Handle) -> Self {
        let per_thread = max.saturating_mul(2) / http_threads.saturating_mul(2).saturating_add(1);
        let (threads, per_thread) = match backend {
            Backend::Postgres | Backend::MySql if per_thread >= MIN_THREAD_SHARE => (http_threads, per_thread),
            _ => (0, 0),
        };
        let home_size = max - threads * per_thread;
        let lendable = if threads == 0 { 0 } else { home_size / 2 };
        let list = std::iter::once(Shard::new(home_size, Some(home)))
            .chain((0..threads).map(|_| Shard::new(per_thread, None)))
            .collect();
        Self { list, lendable: Arc::new(Semaphore::new(lendable as usize)) }
    }

    pub fn get(&self, index: usize) -> &Shard {
        &self.list[index]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Shard> {
        self.list.iter()
    }

    /// Gives the runtime `here` a thread's shard, if one is free: looked at and taken under
    /// one lock, since the HTTP threads enter at the same moment.
    pub fn enter(&self, here: Handle) {
        for shard in &self.list[HOME + 1..] {
            let mut place = shard.place();
            if place.runtime.is_none() {
                place.runtime = Some(here);
                return;
            }
        }
        if self.list.len() > 1 {
            tracing::warn!("an HTTP thread found no share of the database pool free: it uses the home one");
        }
    }

    /// Takes the shard of the runtime `here` back; answers its idle connections, to be closed.
    pub fn leave(&self, here: Id) -> VecDeque<Idle> {
        let Some(index) = self.entered_by(here) else { return VecDeque::new() };
        let mut place = self.list[index].place();
        place.runtime = None;
        std::mem::take(&mut place.idle)
    }

    /// The shard the current runtime has entered, if any.
    fn entered_by(&self, here: Id) -> Option<usize> {
        (HOME + 1..self.list.len()).find(|&index| self.list[index].runtime_id() == Some(here))
    }

    /// A slot for a caller on the current runtime: of its own shard if it has one and one is
    /// free; else borrowed from the home shard if one may be lent and is free; else whichever
    /// frees first (the own one when both do). Callers without a shard wait for the home one.
    pub async fn slot(&self) -> Result<Slot, AcquireError> {
        let own = match Handle::try_current() {
            Ok(here) if self.list.len() > 1 => self.entered_by(here.id()),
            _ => None,
        };
        let home = &self.list[HOME].permits;
        let Some(own) = own else {
            return Ok(Slot { shard: HOME, _permit: home.clone().acquire_owned().await?, _lent: None });
        };
        let mine = &self.list[own].permits;
        if let Ok(permit) = mine.clone().try_acquire_owned() {
            return Ok(Slot { shard: own, _permit: permit, _lent: None });
        }
        if let Ok(lent) = self.lendable.clone().try_acquire_owned()
            && let Ok(permit) = home.clone().try_acquire_owned()
        {
            return Ok(Slot { shard: HOME, _permit: permit, _lent: Some(lent) });
        }
        let borrowed = async {
            let lent = self.lendable.clone().acquire_owned().await?;
            Ok(Slot { shard: HOME, _permit: home.clone().acquire_owned().await?, _lent: Some(lent) })
        };
        tokio::select! {
            biased;
            permit = mine.clone().acquire_owned() => Ok(Slot { shard: own, _permit: permit?, _lent: None }),
            slot = borrowed => slot,
        }
    }

    /// Refuses every slot from now on, once the leases out have come back; answers every
    /// idle connection, to be closed.
    pub async fn close(&self) -> Vec<Idle> {
        let mut idle = Vec::new();
        for shard in self.iter() {
            if let Ok(all) = shard.permits.acquire_many(shard.size).await {
                shard.permits.close();
                drop(all);
            }
            idle.extend(std::mem::take(&mut shard.place().idle));
        }
        self.lendable.close();
        idle
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

    /// The runtime its connections live on now, if any.
    pub fn runtime(&self) -> Option<Handle> {
        self.place().runtime.clone()
    }

    fn runtime_id(&self) -> Option<Id> {
        self.place().runtime.as_ref().map(Handle::id)
    }

    /// The newest idle connection; those idle longer than [`IDLE_TIMEOUT`] are closed first.
    pub fn pop_idle(&self) -> Option<Idle> {
        let mut place = self.place();
        while place.idle.front().is_some_and(|oldest| oldest.since.elapsed() >= IDLE_TIMEOUT) {
            place.idle.pop_front();
        }
        place.idle.pop_back()
    }

    /// Keeps `conn`, whose socket lives on the runtime `on`, idle if the shard's connections
    /// still live there; else answers it back (its thread has left, or left and another
    /// entered), to be dropped.
    pub fn keep(&self, conn: AnyConnection, opened: Instant, on: Id) -> Option<AnyConnection> {
        let mut place = self.place();
        if place.runtime.as_ref().map(Handle::id) != Some(on) {
            return Some(conn);
        }
        place.idle.push_back(Idle { conn, opened, since: Instant::now() });
        None
    }
}

#[cfg(test)]
impl Shards {
    pub fn sizes(&self) -> Vec<u32> {
        self.iter().map(|shard| shard.size).collect()
    }

    pub fn lendable(&self) -> usize {
        self.lendable.available_permits()
    }

    pub fn idle(&self, index: usize) -> usize {
        self.list[index].place().idle.len()
    }
}
