//! Load from wrk (Debian's `wrk`), a separate process written in C: on two cores an
//! in-process Rust client takes more CPU than the server it measures, and a heavy client
//! flatters every ratio towards 100 %. When wrk is not installed the in-process driver is used
//! instead, and the report says so.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::load::{Load, Measured};

/// The wrk threads: one per core, as the figures were taken.
fn threads(connections: usize) -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(connections).max(1)
}

/// Whether `wrk` is on the PATH (asked once per run of the harness).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::process::Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
    })
}

/// One wrk run.
pub struct Run<'a> {
    pub url: &'a str,
    pub headers: Vec<String>,
    /// A Lua script and its arguments, for requests that are not one fixed GET.
    pub script: Option<(&'a str, Vec<String>)>,
}

impl Run<'_> {
    /// Runs wrk for the load's warm-up (unmeasured), then for its duration, and reads its
    /// report. Answers other than 2xx and 3xx count as errors (wrk does not tell them apart).
    pub async fn measure(&self, load: Load) -> anyhow::Result<Measured> {
        if !load.warmup.is_zero() {
            self.run_for(load.concurrency, load.warmup).await?;
        }
        self.run_for(load.concurrency, load.duration).await
    }

    /// One run of `duration` on `connections` connections.
    pub async fn run_for(&self, connections: usize, duration: Duration) -> anyhow::Result<Measured> {
        let script = match &self.script {
            Some((body, _)) => {
                let path = std::env::temp_dir().join(format!("tessera-bench-{}.lua", uuid::Uuid::now_v7().simple()));
                std::fs::write(&path, body)?;
                Some(Removed(path))
            }
            None => None,
        };
        let mut command = tokio::process::Command::new("wrk");
        // wrk takes whole seconds.
        let seconds = duration.as_secs_f64().ceil().max(1.0);
        command
            .args(["--threads", &threads(connections).to_string()])
            .args(["--connections", &connections.to_string()])
            .args(["--duration", &format!("{seconds}s")])
            .arg("--latency");
        for header in &self.headers {
            command.arg("--header").arg(header);
        }
        if let Some(path) = &script {
            command.arg("--script").arg(&path.0);
        }
        command.arg(self.url);
        if let Some((_, args)) = &self.script {
            command.arg("--").args(args);
        }
        let output = command.stderr(Stdio::inherit()).output().await.context("running wrk (Debian's wrk)")?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!("wrk failed: {}\n{text}", output.status);
        }
        parse(&text, Duration::from_secs_f64(seconds)).with_context(|| format!("reading wrk's report:\n{text}"))
    }
}

/// Deletes the script file when the run is over.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// Reads wrk's `--latency` report.
fn parse(text: &str, duration: Duration) -> anyhow::Result<Measured> {
    let field = |label: &str| {
        text.lines().map(str::trim).find_map(|l| l.strip_prefix(label)).map(|rest| rest.trim().to_owned())
    };
    let requests: u64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .context("no request count")?;
    let percentile = |p: &str| field(p).as_deref().and_then(millis).context("no latency percentile");
    // `Latency   avg   stdev   max   +/- stdev`
    let max_ms =
        field("Latency").and_then(|l| l.split_whitespace().nth(2).and_then(millis)).context("no maximum latency")?;
    let mut errors = BTreeMap::new();
    if let Some(n) = field("Non-2xx or 3xx responses:").and_then(|n| n.parse::<u64>().ok()) {
        // wrk does not say which status: 500 stands for all of them.
        errors.insert(500, n);
    }
    if let Some(socket) = field("Socket errors:") {
        let sum: u64 = socket.split(',').filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok()).sum();
        if sum > 0 {
            errors.insert(0, sum);
        }
    }
    Ok(Measured {
        requests,
        per_second: requests as f64 / duration.as_secs_f64(),
        p50_ms: percentile("50%")?,
        p90_ms: percentile("90%")?,
        p99_ms: percentile("99%")?,
        max_ms,
        errors,
    })
}

/// `812.00us`, `1.32ms`, `2.01s` or `1.00m` in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_report() {
        let text = "Running 5s test @ http://127.0.0.1:18081\n  2 threads and 64 connections\n  \
            Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency    45.34ms   12.31ms  1.02s   69.57%\n    \
            Req/Sec   707.29    145.93     1.07k    70.00%\n  Latency Distribution\n     50%  812.00us\n     \
            75%   52.86ms\n     90%   62.15ms\n     99%   78.43ms\n  11282 requests in 8.02s, 13.65MB read\n  \
            Socket errors: connect 0, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 176\nRequests/sec:   1407.15\n";
        let m = parse(text, Duration::from_secs(8)).unwrap();
        assert_eq!(m.requests, 11282);
        assert!((m.p50_ms - 0.812).abs() < 1e-9);
        assert!((m.p99_ms - 78.43).abs() < 1e-9);
        assert!((m.max_ms - 1020.0).abs() < 1e-9);
        assert_eq!(m.errors.get(&500), Some(&176));
        assert_eq!(m.errors.get(&0), Some(&5));
    }
}
