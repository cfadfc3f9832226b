//! Serving connections: HTTP/1.1 over hyper, with the limits that keep slow or idle clients
//! from holding the server. A client must send a request's headers within the header timeout,
//! which also bounds how long a kept-alive connection may wait idle for its next request; at
//! most `max_connections` are served at once, and further ones wait in the listen queue until
//! a slot frees. On shutdown, idle connections close and in-flight requests finish, within the
//! drain's time limit; connections still open after it are closed.
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
pub use super::workers::{ConnectionLimits, HttpThreads, thread_count};

/// A pause after a failed accept (say, out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` completes, then waits for in-flight requests
/// (for at most `limits.drain_timeout`).
/// `open` counts the connections being served. Fails only when the HTTP threads cannot start.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    threads: HttpThreads,
    open: Gauge,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let workers = Workers::start(router, limits, &threads, open)?;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use axum::Router;
    use tokio::sync::{Notify, oneshot};

    use super::*;

    /// Asks for `/thread` on `stream` and reads the answer's body: the serving thread's name.
    async fn serving_thread(stream: &mut TcpStream) -> String {
        stream.write_all(b"GET /thread HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0_u8; 1024];
        loop {
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "the connection closed before its answer");
            answer.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap();
                if body.len() == length {
                    return body.to_owned();
                }
            }
        }
    }

    /// A server of `router` on a free port, as `serve` runs it, with `drain_timeout`: its
    /// address, the sender that stops it, the gauge of open connections, and its task.
    async fn start(router: Router, drain_timeout: Duration) -> (SocketAddr, oneshot::Sender<()>, Gauge, Server) {
        start_with(router, drain_timeout, |_| HttpThreads::plain(thread_count())).await
    }

    /// [`start`] with the HTTP threads `threads` makes, given the gauge of open connections.
    async fn start_with(
        router: Router,
        drain_timeout: Duration,
        threads: impl FnOnce(&Gauge) -> HttpThreads,
    ) -> (SocketAddr, oneshot::Sender<()>, Gauge, Server) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let limits = ConnectionLimits { header_timeout: Duration::from_secs(10), max_connections: 64, drain_timeout };
        let open = Gauge::default();
        let threads = threads(&open);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits, threads, open.clone(), async {
            stopped.await.ok();
        }));
        (address, stop, open, server)
    }

    type Server = tokio::task::JoinHandle<std::io::Result<()>>;

    /// Clears the name it holds when dropped.
    struct SendingUntilDropped(Arc<std::sync::Mutex<Option<String>>>);

    impl Drop for SendingUntilDropped {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = None;
        }
    }

    /// Each new connection goes to the thread serving the fewest, so kept-alive connections
    /// spread evenly; at shutdown the idle ones are closed and `serve` returns.
    #[tokio::test]
    async fn connections_spread_evenly_over_the_threads_and_close_at_shutdown() {
        let name = || std::thread::current().name().unwrap_or("unnamed").to_owned();
        let router = Router::new().route("/thread", get(move || async move { name() }));
        let (address, stop, _, server) = start(router, Duration::from_secs(10)).await;

        let threads = thread_count();
        let mut open = Vec::new();
        let mut served_by = BTreeMap::<String, usize>::new();
        for _ in 0..threads * 3 {
            let mut stream = TcpStream::connect(address).await.unwrap();
            *served_by.entry(serving_thread(&mut stream).await).or_default() += 1;
            open.push(stream);
        }
        let expected: BTreeMap<String, usize> = (0..threads).map(|i| (format!("tessera-http-{i}"), 3)).collect();
        assert_eq!(served_by, expected);

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
        for mut stream in open {
            let mut rest = Vec::new();
            assert_eq!(stream.read_to_end(&mut rest).await.unwrap(), 0, "an idle connection is closed");
        }
    }

    /// A client that never reads its answer cannot hold the shutdown: once the drain's time
    /// is up, its connection is closed and `serve` returns.
    #[tokio::test]
    async fn shutdown_closes_connections_still_open_when_the_drain_time_is_up() {
        // An answer that never ends: like a long one its client does not read, it would keep
        // a graceful shutdown waiting for ever. While it is being sent, `sending` holds the
        // name of the thread that sends it.
        let sending = Arc::new(std::sync::Mutex::new(None::<String>));
        let endless = {
            let sending = sending.clone();
            move || async move {
                *sending.lock().unwrap() = std::thread::current().name().map(str::to_owned);
                let sent = SendingUntilDropped(sending);
                let chunk = axum::body::Bytes::from_static(&[b'x'; 16 * 1024]);
                let chunks = futures_util::stream::repeat_with(move || {
                    let _ = &sent;
                    Ok::<_, std::convert::Infallible>(chunk.clone())
                });
                axum::body::Body::from_stream(chunks)
            }
        };
        let router = Router::new().route("/endless", get(endless));
        // Whether each thread's `stopping` found it still sending: it must not, since the
        // hook gives back the thread's database connections, which the answer could still use.
        let found_sending = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (address, stop, open, server) = start_with(router, Duration::from_millis(200), |_| {
            let (sending, found) = (sending.clone(), found_sending.clone());
            let stopping = move || {
                let this = std::thread::current().name().map(str::to_owned);
                found.lock().unwrap().push(this.is_some() && *sending.lock().unwrap() == this);
                Box::pin(async {}) as futures_util::future::LocalBoxFuture<'static, ()>
            };
            HttpThreads { stopping: Arc::new(stopping), ..HttpThreads::plain(thread_count()) }
        })
        .await;

        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(b"GET /endless HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
        let mut head = [0_u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        // From here on the client reads nothing.
        stop.send(()).unwrap();
        let served = tokio::time::timeout(Duration::from_secs(30), server).await;
        served.expect("serve returned once the drain's time was up").unwrap().unwrap();
        assert_eq!(open.get(), 0, "the connection is no longer counted as open");
        let found = found_sending.lock().unwrap().clone();
        assert_eq!(found, vec![false; thread_count()], "each thread's stopping ran after its connections ended");
        // Its socket was closed: reading what was buffered ends in EOF or a reset.
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "the connection was closed");
    }

    /// A request in flight when shutdown starts is still answered, within the drain's time.
    #[tokio::test]
    async fn shutdown_answers_a_request_in_flight() {
        let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let slow = {
            let (started, release) = (started.clone(), release.clone());
            move || {
                let (started, release) = (started.clone(), release.clone());
                async move {
                    started.notify_one();
                    release.notified().await;
                    "done"
                }
            }
        };
        let router = Router::new().route("/slow", get(slow));
        let (address, stop, _, server) = start(router, Duration::from_secs(10)).await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
        started.notified().await;

        stop.send(()).unwrap();
        // The listener is dropped in the same step that tells the HTTP threads to finish;
        // then give them a moment to start draining before the request may end.
        while TcpStream::connect(address).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.notify_one();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(30), server).await.unwrap().unwrap().unwrap();
    }
}
