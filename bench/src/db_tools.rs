//! The databases' own tools, driven for the write ceilings: pgbench with a script of a route's
//! statements on PostgreSQL, the `sqlite3` shell running a generated script on SQLite.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// What one ceiling run measured.
#[derive(Debug, Clone, Copy)]
pub struct CeilingRun {
    pub per_second: f64,
    /// Transactions run again after a serialization failure or deadlock (pgbench only).
    pub retried: u64,
    /// Transactions completed.
    pub transactions: u64,
}

/// A script file in the temporary folder, deleted with this value.
pub struct TempScript(pub PathBuf);

impl TempScript {
    pub fn write(name: &str, text: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("tessera-bench-{}-{name}", uuid::Uuid::now_v7().simple()));
        std::fs::write(&path, text)?;
        Ok(Self(path))
    }
}

impl Drop for TempScript {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// Runs pgbench with `script` (prepared statements, up to 5 tries of a transaction that hit a
/// serialization failure or deadlock) and reads its rate. Any failed transaction is an error.
pub fn pgbench(
    url: &str,
    script: &Path,
    clients: usize,
    duration: Duration,
    defines: &[(&str, String)],
) -> anyhow::Result<CeilingRun> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(clients);
    let output = std::process::Command::new("pgbench")
        .args(["--no-vacuum", "--protocol=prepared", "--max-tries=5"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={threads}"))
        .arg(format!("--time={}", duration.as_secs().max(1)))
        .args(defines.iter().map(|(name, value)| format!("--define={name}={value}")))
        .arg("--file")
        .arg(script)
        .arg(url)
        .stderr(Stdio::inherit())
        .output()
        .context("running pgbench (Debian's postgresql-client)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed: {}\n{text}", output.status);
    }
    let number = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    let per_second = number("tps = ").context("pgbench printed no tps")?;
    if number("number of failed transactions: ").unwrap_or(0.0) > 0.0 {
        bail!("pgbench: some transactions failed\n{text}");
    }
    let transactions = number("number of transactions actually processed: ").context("pgbench printed no count")?;
    Ok(CeilingRun {
        per_second,
        retried: number("number of transactions retried: ").unwrap_or(0.0) as u64,
        transactions: transactions as u64,
    })
}

/// Writes `count` repetitions of a script (each made by `fill`, after the settings tessera's
/// SQLite connections have) and times the `sqlite3` shell running them on `file`: one
/// connection in a tight loop, which is SQLite's ceiling, since it has one writer at a time.
pub fn sqlite_loop(file: &Path, count: usize, mut fill: impl FnMut(usize) -> String) -> anyhow::Result<CeilingRun> {
    let script = TempScript::write("loop.sql", "")?;
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&script.0)?);
        writeln!(out, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")?;
        for n in 0..count {
            out.write_all(fill(n).as_bytes())?;
        }
        out.flush()?;
    }
    let input = std::fs::File::open(&script.0)?;
    let started = Instant::now();
    let status = std::process::Command::new("sqlite3")
        .arg(file)
        .stdin(input)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .context("running the sqlite3 shell (Debian's sqlite3)")?;
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("sqlite3 failed: {status}");
    }
    Ok(CeilingRun { per_second: count as f64 / elapsed.as_secs_f64(), retried: 0, transactions: count as u64 })
}

/// A script's statements without its `--` comment lines.
pub fn without_comments(script: &str) -> String {
    script.lines().filter(|l| !l.starts_with("--")).flat_map(|l| [l, "\n"]).collect()
}

/// The microseconds since the epoch, as tessera stores instants.
pub fn now_micros() -> anyhow::Result<i64> {
    Ok(i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros())?)
}
