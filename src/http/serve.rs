//! Serving connections: HTTP/1.1 over hyper, with the limits that keep slow or idle clients
//! from holding the server. A client must send a request's headers within the header timeout,
//! which also bounds how long a kept-alive connection may wait idle for its next request; at
//! most `max_connections` are served at once, and further ones wait in the listen queue until
//! a slot frees. On shutdown, idle connections close and in-flight requests finish.
//!
//! One task accepts; each connection it accepts is served, to its end, by one of the HTTP
//! threads (see `workers.rs`), the one serving the fewest.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::workers::Workers;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// For a request's headers to arrive, and for an idle kept-alive connection.
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// A pause after a failed accept (say, out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` completes, then waits for in-flight requests.
/// `open` counts the connections being served. Fails only when the HTTP threads cannot start.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    open: Gauge,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let workers = Workers::start(router, limits, open)?;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((stream, peer, slot)) = accepted else { continue };
        stream.set_nodelay(true).ok();
        workers.hand_over(stream, peer, slot);
    }
    drop(listener);
    workers.finish().await;
    Ok(())
}

/// The next connection, once a slot is free for it; `None` after a failed accept.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    // The semaphore is never closed, so acquiring fails never.
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, slot)),
        Err(error) => {
            tracing::warn!(%error, "could not accept a connection");
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            None
        }
    }
}
