//! HTTP ceilings outside tessera, measured in the same run: nginx answering `return 200`
//! (when Debian's `nginx-light` is installed), and a bare hyper server in this process that
//! answers `200 ok` to everything on its own runtime with as many worker threads as tessera's.
//! Both listen on loopback ports of their own.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// nginx, as a child process with a configuration of its own in a temporary folder.
pub struct Nginx {
    pub base: String,
    child: tokio::process::Child,
    folder: PathBuf,
}

impl Nginx {
    /// Starts nginx on a free port: `worker_processes auto` (one per core, as tessera has one
    /// worker thread per core), no access log (tessera writes none either), `return 200`.
    /// `None` when nginx is not installed.
    pub async fn start() -> anyhow::Result<Option<Self>> {
        let Some(binary) = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().map(PathBuf::from).find(|p| p.exists())
        else {
            return Ok(None);
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let folder = std::env::temp_dir().join(format!("tessera-bench-nginx-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&folder)?;
        let dir = folder.display();
        let config = format!(
            "worker_processes auto;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}; proxy_temp_path {dir}; \
             fastcgi_temp_path {dir}; uwsgi_temp_path {dir}; scgi_temp_path {dir};\n  \
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\"; }} }}\n}}\n"
        );
        std::fs::write(folder.join("nginx.conf"), config)?;
        let child = tokio::process::Command::new(binary)
            .arg("-c")
            .arg(folder.join("nginx.conf"))
            .arg("-e")
            .arg(folder.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting nginx")?;
        let base = format!("http://127.0.0.1:{port}");
        let nginx = Self { base, child, folder };
        nginx.wait_until_up().await?;
        Ok(Some(nginx))
    }

    async fn wait_until_up(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client.get(&self.base).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("nginx did not answer within 5 s (see {})", self.folder.join("error.log").display())
    }
}

impl Drop for Nginx {
    /// Stops nginx with `SIGTERM`, which its master passes on to the workers; a `SIGKILL` would
    /// leave the workers running, listening, after the run.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let stopped = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            if stopped.is_ok_and(|status| status.success()) {
                for _ in 0..40 {
                    if self.child.try_wait().is_ok_and(|exited| exited.is_some()) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        self.child.start_kill().ok();
        std::fs::remove_dir_all(&self.folder).ok();
    }
}

/// A bare hyper HTTP/1.1 server: what the request stack adds is measured against it.
pub struct BareHyper {
    pub base: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BareHyper {
    pub fn start(workers: usize) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("bare-hyper")
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address: SocketAddr = listener.local_addr()?;
        runtime.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            while let Ok((stream, _)) = listener.accept().await {
                stream.set_nodelay(true).ok();
                tokio::spawn(async move {
                    let service = service_fn(|_: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service).await.ok();
                });
            }
        });
        Ok(Self { base: format!("http://{address}"), runtime: Some(runtime) })
    }
}

impl Drop for BareHyper {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
