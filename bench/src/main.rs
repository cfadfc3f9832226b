//! tessera-bench: drives the release `tessera` binary over loopback and sets every figure
//! beside a ceiling measured in the same run on the same machine.
//!
//! `cargo build --release --workspace && cargo run --release -p tessera-bench -- --scenario all`

mod ceilings;
mod db_tools;
mod flood;
mod import;
mod judge;
mod layout;
mod ledger_ceiling;
mod listing;
mod load;
mod mixed;
mod outside;
mod refresh;
mod report;
mod scenarios;
mod scratch;
mod server;
mod transfers;
mod wrk;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

use load::{Load, Rate, drive, drive_at_rate};
use report::Report;
use scenarios::{Login, Me, Register, seed_accounts, seed_user};
use server::{Server, ServerConfig};

const SCENARIOS: &[&str] = &["me", "login", "register", "refresh", "mixed", "login-flood"];
/// The share of the hash ceiling the `mixed` scenario's sign-ins and registrations ask for:
/// the pool busy but not full (sign-ins reach 85–100 % of the raw ceiling, so 70 % of it
/// filled the queue on a fast moment of the machine).
const MIXED_HASH_LOAD: f64 = 0.5;

#[derive(Parser, Debug)]
#[command(name = "tessera-bench", about = "Load tests tessera against this machine's own ceilings")]
struct Args {
    /// Scenarios, comma-separated: me, login, register, refresh, mixed, login-flood, or all. Or
    /// `list-users` alone: `GET /v1/users` on freshly seeded databases of each `--sizes`. Or
    /// `transfers` alone: transfers on a hot pair and among 1,000 wallets beside the
    /// database's own ceiling (SQLite or PostgreSQL). Or `import` alone: `tessera users
    /// import` of `--import-users` accounts with pre-hashed passwords, then an export.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Concurrent connections [default: 64; 32 for transfers].
    #[arg(short = 'c', long)]
    concurrency: Option<usize>,
    /// Alternating rounds (ceiling, tessera) for `me`, `refresh` and `transfers` (per layout);
    /// figures are medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests per second of the open-loop `mixed` scenario [default: what asks for half of
    /// the hash ceiling].
    #[arg(long)]
    rate: Option<f64>,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Warm-up seconds before each measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// A PostgreSQL or MySQL server URL; a fresh database is made on it. Default: a fresh SQLite file.
    #[arg(long)]
    db: Option<String>,
    /// The server binary [default: target/release/tessera of this workspace].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Password hashes the server computes at once [default: number of cores].
    #[arg(long)]
    hash_concurrency: Option<usize>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Account counts for `list-users`, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    sizes: Vec<u64>,
    /// Accounts in the file `import` imports.
    #[arg(long, default_value_t = 100_000)]
    import_users: u64,
    /// Extra settings for the server, e.g. `--server-env TESSERA_SESSION_CACHE_TTL=0s` (repeatable).
    #[arg(long, value_parser = parse_setting)]
    server_env: Vec<(String, String)>,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| "expected NAME=VALUE".to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenarios: Vec<String> = if args.scenario == "all" {
        SCENARIOS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.scenario.split(',').map(|s| s.trim().to_owned()).collect()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hash_concurrency = args.hash_concurrency.unwrap_or(cores);
    let binary = args
        .binary
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/tessera"));
    anyhow::ensure!(binary.exists(), "{} not found: run `cargo build --release` first", binary.display());
    // The scenarios that run alone make their own databases.
    let standalone =
        ServerConfig { binary, database_url: String::new(), hash_concurrency, env: args.server_env.clone() };
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.seconds);
    let figures = match scenarios.as_slice() {
        [one] if one == "list-users" => {
            // Latency, not throughput: one request in flight per core.
            let load = Load { concurrency: cores, warmup, duration };
            Some(serde_json::to_value(listing::run(&args.sizes, args.db.as_deref(), &standalone, load).await?)?)
        }
        [one] if one == "transfers" => {
            let load = Load { concurrency: args.concurrency.unwrap_or(32), warmup, duration };
            let rounds = args.rounds.max(1);
            Some(serde_json::to_value(transfers::run(args.db.as_deref(), &standalone, load, rounds).await?)?)
        }
        [one] if one == "import" => Some(import::run(args.import_users, args.db.as_deref(), &standalone).await?),
        _ => None,
    };
    if let Some(figures) = figures {
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&figures)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(());
    }
    let ServerConfig { binary, .. } = standalone;
    let db = scratch::create(args.db.as_deref()).await?;
    let config = ServerConfig { binary, database_url: db.url.clone(), hash_concurrency, env: args.server_env.clone() };
    let outcome = run(&args, &scenarios, &config).await;
    scratch::remove(&db).await;
    outcome
}

/// Measures the ceilings and every scenario, then prints and writes the report.
async fn run(args: &Args, scenarios: &[String], config: &ServerConfig) -> anyhow::Result<()> {
    let hash_concurrency = config.hash_concurrency;
    let concurrency = args.concurrency.unwrap_or(64);
    let load = Load {
        concurrency,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.seconds),
    };
    let mut report = Report {
        machine: ceilings::machine(),
        backend: config.database_url.split(':').next().unwrap_or("?").to_owned(),
        concurrency,
        seconds: args.seconds,
        hash_concurrency,
        driver: if wrk::available() { "wrk" } else { "in-process (wrk not installed)" }.to_owned(),
        ..Report::default()
    };

    report.notes.extend(ceilings::autogroup_warning(&config.database_url));
    eprintln!("measuring the hash ceiling…");
    report.hash_ceiling_per_second =
        Some(ceilings::hashes_per_second(hash_concurrency, load.duration.min(Duration::from_secs(5))).await);
    let (server, _) = Server::start(config).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let base = server.base.clone();
    report.idle_rss_mib = Some(server.memory_kib().0 as f64 / 1024.0);
    let seeded = seed_user(&client, &base, "bench").await?;
    let hash_ceiling = report.hash_ceiling_per_second.unwrap_or(0.0);
    let token = seeded["access_token"].as_str().context("no access token")?.to_owned();

    for name in scenarios {
        eprintln!("running {name}…");
        match name.as_str() {
            "me" => ceilings::me_beside_ceilings(&mut report, &client, &base, &token, load, args.rounds).await?,
            "login" => {
                seed_accounts(&client, &base, "signer", load.concurrency).await?;
                let login = Login { base: base.clone(), username: "signer".into(), accounts: load.concurrency };
                let (m, ceiling, share) =
                    ceilings::beside_hash_ceiling(&client, Arc::new(login), load, hash_concurrency, args.rounds).await;
                report.add_compared("login", m, ("hash ceiling", Some(ceiling)), Some(share));
            }
            "register" => {
                let run = uuid::Uuid::now_v7().simple().to_string()[..8].to_owned();
                let register = Arc::new(Register { base: base.clone(), run, next: 0.into() });
                let (m, ceiling, share) =
                    ceilings::beside_hash_ceiling(&client, register, load, hash_concurrency, args.rounds).await;
                report.add_compared("register", m, ("hash ceiling", Some(ceiling)), Some(share));
            }
            "refresh" => {
                let db = (config.database_url.as_str(), config.pool_size());
                let f = refresh::run(&client, &base, db, load, args.rounds).await?;
                if report.backend == "sqlite" {
                    // The loop writes one rotation per transaction where tessera batches them:
                    // a reference, not a ceiling, so no ratio.
                    report.add("refresh", f.measured);
                } else {
                    report.add_compared("refresh", f.measured, ("pgbench", f.ceiling_per_second), f.share_of_ceiling);
                }
                if let Some(c) = f.ceiling_per_second {
                    report.notes.push(format!(
                        "refresh: its statements, one refresh at a time, in the database's own tool: {c:.0} /s"
                    ));
                }
            }
            "mixed" => {
                let per_second = args.rate.unwrap_or(MIXED_HASH_LOAD * hash_ceiling / mixed::HASHES_PER_REQUEST);
                report.notes.push(format!("mixed: {per_second:.0} requests/s, open loop"));
                let mix = Arc::new(mixed::Mix::seed(&client, &base).await?);
                let rate = Rate { per_second, warmup: load.warmup, duration: load.duration };
                let mib = |server: &Server| server.memory_kib().0 as f64 / 1024.0;
                let after_warmup = async {
                    tokio::time::sleep(load.warmup).await;
                    mib(&server)
                };
                let (measured, warm) = tokio::join!(drive_at_rate(&client, mix, rate), after_warmup);
                report.mixed_rss_mib = Some((warm, mib(&server)));
                for (kind, m) in measured {
                    report.add(&format!("mixed: {kind}"), m);
                }
            }
            "login-flood" => {
                flood::login_flood(&mut report, &client, &base, load, hash_concurrency).await?;
                flood::login_flood_limited(&mut report, &client, config, load).await?;
            }
            other => anyhow::bail!("unknown scenario {other}; known: {}", SCENARIOS.join(", ")),
        }
    }

    eprintln!("measuring peak memory under 256 connections…");
    let wide = Load { concurrency: 256, warmup: Duration::from_secs(1), duration: Duration::from_secs(3) };
    let m = drive(&client, Arc::new(Me { base: base.clone(), token: token.clone() }), wide).await;
    report.add("me (c=256)", m);
    report.peak_rss_mib = Some(server.memory_kib().1 as f64 / 1024.0);
    server.stop().await?;

    eprintln!("measuring start-up on the existing database…");
    let mut startups = Vec::new();
    for _ in 0..3 {
        let (server, ready_after) = Server::start(config).await?;
        startups.push(ready_after.as_secs_f64() * 1000.0);
        server.stop().await?;
    }
    startups.sort_by(f64::total_cmp);
    report.startup_ms = startups.get(1).copied();

    judge::judge(&mut report, hash_concurrency);
    report.print();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
