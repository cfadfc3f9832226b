//! The HTTP threads: one per core, each running a single-threaded runtime of its own, and
//! serving every connection handed to it from its first request to its close.
//!
//! Why not tokio's multi-threaded runtime, as for the rest: there a request's wake-ups cross
//! threads (the thread that reads a socket's readiness wakes another to run the request, which
//! may steal it back), and on two cores those cross-thread wake-ups cost as much as the route:
//! `GET /v1/me` did 0.53 of nginx's requests per second on the multi-threaded runtime and 0.8
//! on threads of their own (README, Performance). What is given up is stealing: a connection
//! stays on its thread. That costs little here because nothing long runs on these threads:
//! password hashing has threads of its own, and database waits are awaited, not blocked on.
//! New connections go to the thread serving the fewest, so long-lived connections spread.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use futures_util::future::LocalBoxFuture;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// For a request's headers to arrive, and for an idle kept-alive connection.
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// How long, once shutdown starts, connections may take to finish; those still open then
    /// are closed. Without it, one client that never reads a long answer would hold the
    /// shutdown (and the database pool's close behind it) for as long as it liked.
    pub drain_timeout: Duration,
}

/// How many HTTP threads a server runs, and what each runs on its own runtime: `started`
/// before its first connection, `stopping` once its connections have ended (the store gives
/// each thread connections of its own there, and closes them: `app.rs`).
#[derive(Clone)]
pub struct HttpThreads {
    pub count: usize,
    pub started: Arc<dyn Fn() + Send + Sync>,
    pub stopping: Arc<dyn Fn() -> LocalBoxFuture<'static, ()> + Send + Sync>,
}

impl HttpThreads {
    /// `count` threads that run nothing of their own.
    pub fn plain(count: usize) -> Self {
        Self { count, started: Arc::new(|| {}), stopping: Arc::new(|| Box::pin(async {})) }
    }
}

/// How many HTTP threads a server runs by default: one per core (as many as tokio's runtime
/// would have workers).
pub fn thread_count() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The HTTP threads of one server.
pub struct Workers {
    threads: Vec<Worker>,
}

/// One HTTP thread, as the acceptor sees it.
struct Worker {
    inbox: mpsc::UnboundedSender<Handed>,
    /// Connections handed to it and not yet closed.
    serving: Arc<AtomicUsize>,
    /// Sent when its thread has finished every connection and stopped.
    stopped: oneshot::Receiver<()>,
}

/// A connection on its way to an HTTP thread, with its slot among `max_connections`.
struct Handed {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
}

impl Workers {
    /// Starts `threads.count` HTTP threads (at least one).
    pub fn start(
        router: Router,
        limits: ConnectionLimits,
        threads: &HttpThreads,
        open: Gauge,
    ) -> std::io::Result<Self> {
        let threads = (0..threads.count.max(1))
            .map(|index| Worker::start(index, router.clone(), limits, threads.clone(), open.clone()))
            .collect::<std::io::Result<_>>()?;
        Ok(Self { threads })
    }

    /// Gives `stream` to the thread serving the fewest connections.
    pub fn hand_over(&self, stream: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit) {
        // Taken off this runtime's reactor, to be registered with the chosen thread's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => return tracing::debug!(%error, %peer, "could not hand a connection over"),
        };
        let mut handed = Handed { stream, peer, slot };
        let mut by_load: Vec<&Worker> = self.threads.iter().collect();
        by_load.sort_by_key(|worker| worker.serving.load(Ordering::Relaxed));
        for worker in by_load {
            worker.serving.fetch_add(1, Ordering::Relaxed);
            match worker.inbox.send(handed) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    worker.serving.fetch_sub(1, Ordering::Relaxed);
                    handed = back;
                }
            }
        }
        tracing::error!(peer = %handed.peer, "no HTTP thread is running: connection closed");
    }

    /// Lets every thread finish its connections (idle ones close, in-flight requests are
    /// answered, within the drain's time limit), and waits until all have stopped.
    pub async fn finish(self) {
        let mut stopping = Vec::with_capacity(self.threads.len());
        for Worker { inbox, stopped, .. } in self.threads {
            // The end of its inbox is what tells a thread to finish.
            drop(inbox);
            stopping.push(stopped);
        }
        for stopped in stopping {
            // An error means the thread ended without saying so; it has stopped either way.
            stopped.await.ok();
        }
    }
}

impl Worker {
    fn start(
        index: usize,
        router: Router,
        limits: ConnectionLimits,
        hooks: HttpThreads,
        open: Gauge,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (inbox, arrivals) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::new(AtomicUsize::new(0));
        let counted = serving.clone();
        std::thread::Builder::new().name(format!("tessera-http-{index}")).spawn(move || {
            runtime.block_on(async {
                (hooks.started)();
                serve_arrivals(arrivals, router, limits, Counters { open, serving: counted }).await;
                (hooks.stopping)().await;
            });
            // Whatever is left on this thread (a database connection's ping on its way back, say)
            // ends with its runtime; work that must outlive a request runs on the main runtime.
            drop(runtime);
            stop.send(()).ok();
        })?;
        Ok(Self { inbox, serving, stopped })
    }
}

/// The gauges a connection is counted in while it is served.
#[derive(Clone)]
struct Counters {
    open: Gauge,
    serving: Arc<AtomicUsize>,
}

/// A connection being served: counted until it is dropped, however its task ends.
struct Served {
    counters: Counters,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.counters.open.dec();
        self.counters.serving.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves each connection handed over until the acceptor is gone, then lets them finish.
async fn serve_arrivals(
    mut arrivals: mpsc::UnboundedReceiver<Handed>,
    router: Router,
    limits: ConnectionLimits,
    counters: Counters,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let mut connections = JoinSet::new();
    loop {
        let handed = tokio::select! {
            handed = arrivals.recv() => handed,
            // Ended connections' tasks are taken out as they end: the set holds the live ones.
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = ended
                    && error.is_panic()
                {
                    tracing::error!(%error, "a connection's task panicked");
                }
                continue;
            }
        };
        let Some(Handed { stream, peer, slot }) = handed else { break };
        counters.open.inc();
        let served = Served { counters: counters.clone(), _slot: slot };
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, %peer, "could not take a connection over");
                continue;
            }
        };
        let service = router.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(served);
        });
    }
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        // Cancelled now, before the thread's `stopping` runs, so that none is still using (or
        // taking) the thread's database connections as it gives them back: each socket is
        // closed and its slot and counts given back by its `Served`.
        let left = counters.serving.load(Ordering::Relaxed);
        connections.shutdown().await;
        tracing::warn!(connections = left, "connections still open when the shutdown's time ran out: closed");
    }
}
