//! tessera-bench: drives the release `tessera` binary over loopback and sets every figure
//! beside a ceiling measured in the same run on the same machine.
//!
//! `cargo build --release --workspace && cargo run --release -p tessera-bench -- --scenario all`

mod ceilings;
mod import;
mod layout;
mod ledger_ceiling;
mod listing;
mod load;
mod report;
mod scenarios;
mod scratch;
mod server;
mod transfers;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

use load::{Load, drive};
use report::Report;
use scenarios::{Healthz, Login, Me, Refresh, Register, seed_accounts, seed_user, sign_in};
use server::{Server, ServerConfig};

const SCENARIOS: &[&str] = &["me", "login", "register", "refresh", "login-flood"];

#[derive(Parser, Debug)]
#[command(name = "tessera-bench", about = "Load tests tessera against this machine's own ceilings")]
struct Args {
    /// Scenarios, comma-separated: me, login, register, refresh, login-flood, or all. Or
    /// `list-users` alone: `GET /v1/users` on freshly seeded databases of each `--sizes`. Or
    /// `transfers` alone: transfers on a hot pair and among 1,000 wallets beside the
    /// database's own ceiling (SQLite or PostgreSQL). Or `import` alone: `tessera users
    /// import` of `--import-users` accounts with pre-hashed passwords, then an export.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Concurrent connections [default: 64; 32 for transfers].
    #[arg(short = 'c', long)]
    concurrency: Option<usize>,
    /// Alternating rounds (ceiling, tessera) per layout for `transfers`; figures are medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
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
        ..Report::default()
    };

    eprintln!("measuring the hash ceiling…");
    report.hash_ceiling_per_second =
        Some(ceilings::hashes_per_second(hash_concurrency, load.duration.min(Duration::from_secs(5))).await);
    let (server, _) = Server::start(config).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let base = server.base.clone();
    report.idle_rss_mib = Some(server.memory_kib().0 as f64 / 1024.0);
    let seeded = seed_user(&client, &base, "bench").await?;

    eprintln!("measuring the HTTP ceiling…");
    let http = drive(&client, Arc::new(Healthz { base: base.clone() }), load).await;
    let http_ceiling = http.per_second;
    report.http_ceiling = Some(http);
    let hash_ceiling = report.hash_ceiling_per_second.unwrap_or(0.0);
    let token = seeded["access_token"].as_str().context("no access token")?.to_owned();

    for name in scenarios {
        eprintln!("running {name}…");
        match name.as_str() {
            "me" => {
                let m = drive(&client, Arc::new(Me { base: base.clone(), token: token.clone() }), load).await;
                report.add("me", m, Some(http_ceiling));
            }
            "login" => {
                seed_accounts(&client, &base, "signer", load.concurrency).await?;
                let login = Login { base: base.clone(), username: "signer".into(), accounts: load.concurrency };
                let m = drive(&client, Arc::new(login), load).await;
                report.add("login", m, Some(hash_ceiling));
            }
            "register" => {
                let run = uuid::Uuid::now_v7().simple().to_string()[..8].to_owned();
                let m = drive(&client, Arc::new(Register { base: base.clone(), run, next: 0.into() }), load).await;
                report.add("register", m, Some(hash_ceiling));
            }
            "refresh" => {
                let mut chains = Vec::new();
                for _ in 0..load.concurrency {
                    let body = sign_in(&client, &base, "bench").await?;
                    chains.push(Mutex::new(body["refresh_token"].as_str().unwrap_or_default().to_owned()));
                }
                let m = drive(&client, Arc::new(Refresh { base: base.clone(), chains }), load).await;
                report.add("refresh", m, None);
            }
            "login-flood" => {
                login_flood(&mut report, &client, &base, load, hash_concurrency).await?;
                login_flood_limited(&mut report, &client, config, load).await?;
            }
            other => anyhow::bail!("unknown scenario {other}; known: {}", SCENARIOS.join(", ")),
        }
    }

    eprintln!("measuring peak memory under 256 connections…");
    let wide = Load { concurrency: 256, warmup: Duration::from_secs(1), duration: Duration::from_secs(3) };
    let m = drive(&client, Arc::new(Me { base: base.clone(), token: token.clone() }), wide).await;
    report.add("me (c=256)", m, Some(http_ceiling));
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

    judge(&mut report, hash_concurrency);
    report.print();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// p99 of `/v1/me` alone, then while logins keep the hash pool saturated.
async fn login_flood(
    report: &mut Report,
    client: &reqwest::Client,
    base: &str,
    load: Load,
    hash_concurrency: usize,
) -> anyhow::Result<()> {
    let probe = probe_token(client, base).await?;
    let me = Arc::new(Me { base: base.to_owned(), token: probe });
    let probes = Load { concurrency: (load.concurrency / 4).max(1), ..load };
    let alone = drive(client, me.clone(), probes).await;
    report.add("me alone (flood ref.)", alone, None);
    let flood = Load { concurrency: hash_concurrency * 8, ..load };
    seed_accounts(client, base, "flooder", flood.concurrency).await?;
    let login = Arc::new(Login { base: base.to_owned(), username: "flooder".into(), accounts: flood.concurrency });
    let (under, logins) = tokio::join!(drive(client, me, probes), drive(client, login, flood));
    report.add("me under login flood", under, None);
    report.add("login (the flood)", logins, None);
    Ok(())
}

/// An access token of an account of its own, so that no sign-in of a scenario's ends its
/// session (each account keeps its newest `TESSERA_MAX_SESSIONS_PER_USER` sessions).
async fn probe_token(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let seeded = seed_user(client, base, "probe").await?;
    Ok(seeded["access_token"].as_str().context("no access token")?.to_owned())
}

/// The login flood again, on a server of its own with the rate limiter on (30 a minute, the
/// default): the flood is answered `429` from the limiter, and `/v1/me` must not notice.
async fn login_flood_limited(
    report: &mut Report,
    client: &reqwest::Client,
    config: &ServerConfig,
    load: Load,
) -> anyhow::Result<()> {
    let mut limited = config.clone();
    limited.env.push(("TESSERA_RATE_LIMIT".into(), "30".into()));
    let (server, _) = Server::start(&limited).await?;
    let base = server.base.clone();
    let me = Arc::new(Me { base: base.clone(), token: probe_token(client, &base).await? });
    let probes = Load { concurrency: (load.concurrency / 4).max(1), ..load };
    let flood = Load { concurrency: config.hash_concurrency * 8, ..load };
    // Sign-ins of one account from one client: the limiter answers all but a minute's worth.
    seed_user(client, &base, "flooder").await?;
    let login = Arc::new(Login { base, username: "flooder".into(), accounts: 0 });
    let (under, logins) = tokio::join!(drive(client, me, probes), drive(client, login, flood));
    report.add("me under login flood, limiter on", under, None);
    report.add("login flood, limiter on", logins, None);
    server.stop().await
}

fn judge(report: &mut Report, hash_concurrency: usize) {
    let share = |report: &Report, name: &str| report.scenario(name).and_then(|s| s.share_of_ceiling);
    if let Some(v) = share(report, "me") {
        report.judge("me ≥ 50 % of the HTTP ceiling", format!("{:.0} %", v * 100.0), v >= 0.5);
    }
    for name in ["login", "register"] {
        if let Some(v) = share(report, name) {
            report.judge(&format!("{name} ≥ 85 % of the hash ceiling"), format!("{:.0} %", v * 100.0), v >= 0.85);
        }
    }
    let p99 =
        |report: &Report, name: &str| report.scenario(name).map(|s| (s.measured.p99_ms, s.measured.error_count()));
    let flood =
        (p99(report, "me alone (flood ref.)"), p99(report, "me under login flood"), p99(report, "login (the flood)"));
    if let (Some((alone, _)), Some((under, errors)), Some((_, flood_errors))) = flood {
        let ratio = under / alone.max(0.001);
        report.judge(
            "login-flood: p99 of /v1/me ≤ 3 × alone, no errors",
            format!("{under:.2} ms vs {alone:.2} ms ({ratio:.1} ×), {} errors", errors + flood_errors),
            ratio <= 3.0 && errors + flood_errors == 0,
        );
    }
    let limited = (p99(report, "me under login flood, limiter on"), report.scenario("login flood, limiter on"));
    if let (Some((alone, _)), Some((under, errors)), Some(flood)) = (flood.0, limited.0, limited.1) {
        let ratio = under / alone.max(0.001);
        let flood_errors = flood.measured.error_count_except(429);
        report.judge(
            "login-flood, limiter on: p99 of /v1/me ≤ 3 × alone, no errors but the flood's 429s",
            format!("{under:.2} ms vs {alone:.2} ms ({ratio:.1} ×), {} errors", errors + flood_errors),
            ratio <= 3.0 && errors + flood_errors == 0,
        );
    }
    if let Some(idle) = report.idle_rss_mib {
        report.judge("idle RSS ≤ 20 MiB", format!("{idle:.1} MiB"), idle <= 20.0);
    }
    if let Some(peak) = report.peak_rss_mib {
        let budget = 64.0 + hash_concurrency as f64 * 19.0;
        report.judge(
            &format!("peak RSS ≤ {budget:.0} MiB (64 + {hash_concurrency} × 19)"),
            format!("{peak:.1} MiB"),
            peak <= budget,
        );
    }
    if let Some(ms) = report.startup_ms {
        report.judge("start-up to /readyz ≤ 200 ms", format!("{ms:.0} ms"), ms <= 200.0);
    }
}
