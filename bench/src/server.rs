//! The server under test: the release `tessera` binary as a child process on a fresh database.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// A running tessera child process.
pub struct Server {
    child: Child,
    pub base: String,
    pub pid: u32,
}

/// Where the database lives and how the server is configured.
#[derive(Clone)]
pub struct ServerConfig {
    pub binary: PathBuf,
    pub database_url: String,
    pub hash_concurrency: usize,
    /// Further `TESSERA_*` settings.
    pub env: Vec<(String, String)>,
}

/// tessera's `TESSERA_DATABASE_MAX_CONNECTIONS` unless `--server-env` sets it.
const DEFAULT_POOL: usize = 10;

impl ServerConfig {
    /// The connections the server's database pool has.
    pub fn pool_size(&self) -> usize {
        self.env
            .iter()
            .find(|(name, _)| name == "TESSERA_DATABASE_MAX_CONNECTIONS")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(DEFAULT_POOL)
    }
}

impl Server {
    /// Starts the binary on a free port and waits for `/readyz`; answers the server and the
    /// time from spawning the process to the first `200`.
    pub async fn start(config: &ServerConfig) -> anyhow::Result<(Self, Duration)> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let started = Instant::now();
        let child = Command::new(&config.binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TESSERA_DATABASE_URL", &config.database_url)
            .env("TESSERA_LISTEN", format!("127.0.0.1:{port}"))
            .env("TESSERA_HASH_CONCURRENCY", config.hash_concurrency.to_string())
            .env("TESSERA_RATE_LIMIT", "0")
            .env("RUST_LOG", "error")
            .envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", config.binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        loop {
            if let Ok(response) = client.get(format!("{base}/readyz")).send().await
                && response.status().is_success()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the server did not become ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ready_after = started.elapsed();
        Ok((Self { child, base, pid }, ready_after))
    }

    /// Resident memory now and at its peak, in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Stops the server with SIGTERM and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await??;
        Ok(())
    }
}

/// Runs a `tessera` command on the configured database, feeding `stdin` when given.
pub fn tessera(config: &ServerConfig, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
    let mut child = std::process::Command::new(&config.binary)
        .env_clear()
        .env("TESSERA_DATABASE_URL", &config.database_url)
        .env("RUST_LOG", "error")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting tessera {}", args.join(" ")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        writeln!(pipe, "{text}")?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("tessera {} failed: {status}", args.join(" "));
    }
    Ok(())
}

/// Creates the administrator `bench-admin` with the benchmark's password.
pub fn create_admin(config: &ServerConfig) -> anyhow::Result<()> {
    tessera(
        config,
        &["admin", "create", "--username", "bench-admin", "--role", "admin", "--password-stdin"],
        Some(crate::scenarios::PASSWORD),
    )
}
