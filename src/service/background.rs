//! Where work that a request starts, and that must go on after it, runs.
//!
//! Requests run on the HTTP threads, each a runtime of its own (`http::workers`); a task
//! spawned there would stop with its thread at shutdown, and would wait behind that thread's
//! requests meanwhile. Services that start such work capture the runtime they are built on,
//! the multi-threaded one, and spawn it there (where the database connections it takes are the
//! pool's home shard's, of which HTTP threads may borrow only half).

use std::future::Future;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// The runtime for work that outlives its request.
#[derive(Clone, Debug)]
pub struct Background(Handle);

impl Background {
    /// The runtime this is called on. Services are built on the multi-threaded runtime.
    ///
    /// # Panics
    /// Outside a runtime (services are always built inside one).
    pub fn current() -> Self {
        Self(Handle::current())
    }

    /// Runs `work` on that runtime, wherever this is called from.
    pub fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.spawn(work)
    }
}
