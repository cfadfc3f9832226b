//! `--scenario transfers`: transfers per second between two hot wallets (half the clients
//! each way) and among 1,000 wallets, each beside the database's own ceiling for the same
//! statements ([`crate::ledger_ceiling`]). Runs alternate (ceiling, tessera, ceiling, …) and
//! each figure is the median of its rounds, as is each round's ratio, so a noisy moment cannot
//! tilt a ratio. Targets: ≥ 70 % of the ceiling among 1,000 wallets, ≥ 50 % on the hot pair.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::layout::{BenchWallet, Layout, Owner, mix};
use crate::ledger_ceiling::Ceiling;
use crate::load::{Load, Measured, Request, drive, status_of};
use crate::report::median;
use crate::scenarios::{seed_user, sign_in};
use crate::scratch;
use crate::server::{Server, ServerConfig, create_admin};

/// Wallets in the spread layout.
const SPREAD_WALLETS: usize = 1_000;
/// What each wallet starts with: far more than the run can move.
const FUNDING: i64 = 1_000_000_000_000;

/// `POST /v1/transfers` with a fresh idempotency key each time.
struct MakeTransfer {
    base: String,
    layout: Arc<Layout>,
    run: String,
    next: AtomicU64,
}

impl Request for MakeTransfer {
    async fn send(&self, worker: usize, client: &reqwest::Client) -> u16 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let pick = self.layout.pick(worker, mix(n));
        let (from, to) = (&self.layout.wallets[pick.from], &self.layout.wallets[pick.to]);
        let body = json!({"from_wallet_id": from.id, "to_wallet_id": to.id, "amount": pick.amount});
        let request = client
            .post(format!("{}/v1/transfers", self.base))
            .bearer_auth(&self.layout.owners[from.owner].token)
            .header("Idempotency-Key", format!("{}-{n}", self.run))
            .json(&body);
        status_of(request.send().await).await
    }

    fn expected(&self) -> u16 {
        201
    }
}

/// One round of one layout.
#[derive(Serialize)]
pub struct TransferRound {
    pub layout: &'static str,
    pub round: usize,
    pub ceiling_per_second: f64,
    pub ceiling_retried: u64,
    #[serde(flatten)]
    pub measured: Measured,
    /// Transactions tessera ran again (`tessera_ledger_retries_total` over the round).
    pub retries: u64,
    pub share_of_ceiling: f64,
}

/// Seeds the layouts, runs `rounds` alternating rounds of each, prints the table and the
/// verdicts, and answers every round.
pub async fn run(
    server_db: Option<&str>,
    base_config: &ServerConfig,
    load: Load,
    rounds: usize,
) -> anyhow::Result<Vec<TransferRound>> {
    let db = scratch::create(server_db).await?;
    let config = ServerConfig { database_url: db.url.clone(), ..base_config.clone() };
    let outcome = measure(&config, load, rounds).await;
    scratch::remove(&db).await;
    let figures = outcome?;
    print(&figures, &config.database_url, load);
    Ok(figures)
}

async fn measure(config: &ServerConfig, load: Load, rounds: usize) -> anyhow::Result<Vec<TransferRound>> {
    create_admin(config)?;
    let (server, _) = Server::start(config).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let base = server.base.clone();
    eprintln!("seeding {} owners and {} wallets…", load.concurrency, SPREAD_WALLETS + 2);
    let admin = token_of(&sign_in(&client, &base, "bench-admin").await?)?;
    let owners = seed_owners(&client, &base, load.concurrency.max(2)).await?;
    let mut hot = Vec::new();
    for (owner, who) in owners.iter().enumerate().take(2) {
        hot.push(BenchWallet { id: open_wallet(&client, &base, who, &admin).await?, owner });
    }
    let mut spread = Vec::new();
    for n in 0..SPREAD_WALLETS {
        let owner = n % owners.len();
        spread.push(BenchWallet { id: open_wallet(&client, &base, &owners[owner], &admin).await?, owner });
    }
    let layouts = [Layout::new("hot", owners[..2].to_vec(), hot), Layout::new("spread", owners, spread)];
    let mut ceiling = Ceiling::prepare(&config.database_url, &[&layouts[0], &layouts[1]], config.pool_size()).await?;
    let mut figures = Vec::new();
    for layout in layouts {
        let layout = Arc::new(layout);
        for round in 1..=rounds {
            eprintln!("{} wallets, round {round} of {rounds}: the ceiling…", layout.name);
            let limit = ceiling.run(&layout, load.concurrency, load.duration)?;
            eprintln!("{} wallets, round {round} of {rounds}: tessera…", layout.name);
            let retries_before = retries(&client, &base).await?;
            let request = MakeTransfer {
                base: base.clone(),
                layout: layout.clone(),
                run: format!("{}{round}", layout.name),
                next: AtomicU64::new(0),
            };
            let measured = drive(&client, Arc::new(request), load).await;
            let retries = retries(&client, &base).await? - retries_before;
            let share = measured.per_second / limit.per_second.max(f64::MIN_POSITIVE);
            figures.push(TransferRound {
                layout: layout.name,
                round,
                ceiling_per_second: limit.per_second,
                ceiling_retried: limit.retried,
                measured,
                retries,
                share_of_ceiling: share,
            });
        }
    }
    drop(ceiling);
    server.stop().await?;
    Ok(figures)
}

fn token_of(body: &Value) -> anyhow::Result<String> {
    Ok(body["access_token"].as_str().context("no access token")?.to_owned())
}

/// Registers `count` owners at once (each costs two password hashes).
async fn seed_owners(client: &reqwest::Client, base: &str, count: usize) -> anyhow::Result<Vec<Owner>> {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        let (client, base) = (client.clone(), base.to_owned());
        tasks.spawn(async move {
            let username = format!("payer{n:03}");
            let body = seed_user(&client, &base, &username).await?;
            let user_id = body["user"]["id"].as_str().context("no user id")?.to_owned();
            anyhow::Ok((n, Owner { username, user_id, token: token_of(&body)? }))
        });
    }
    let mut owners: Vec<(usize, Owner)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        owners.push(joined??);
    }
    owners.sort_by_key(|(n, _)| *n);
    Ok(owners.into_iter().map(|(_, owner)| owner).collect())
}

/// Opens a USD wallet for `owner` and has the administrator fund it.
async fn open_wallet(client: &reqwest::Client, base: &str, owner: &Owner, admin: &str) -> anyhow::Result<String> {
    let created: Value = client
        .post(format!("{base}/v1/me/wallets"))
        .bearer_auth(&owner.token)
        .json(&json!({"currency": "USD"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().context("no wallet id")?.to_owned();
    let funded = client
        .post(format!("{base}/v1/users/{}/wallets/{id}/adjustments", owner.username))
        .bearer_auth(admin)
        .header("Idempotency-Key", format!("fund-{id}"))
        .json(&json!({"amount": FUNDING, "reason": "benchmark funding"}))
        .send()
        .await?;
    if funded.status().as_u16() != 201 {
        bail!("funding a wallet: {}", funded.status());
    }
    Ok(id)
}

/// The server's `tessera_ledger_retries_total`.
async fn retries(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let text = client.get(format!("{base}/metrics")).send().await?.error_for_status()?.text().await?;
    text.lines()
        .find_map(|line| line.strip_prefix("tessera_ledger_retries_total "))
        .and_then(|n| n.trim().parse().ok())
        .context("/metrics has no tessera_ledger_retries_total")
}

fn print(figures: &[TransferRound], url: &str, load: Load) {
    let backend = url.split(':').next().unwrap_or("?");
    println!(
        "\ntransfers on {backend}, c={}, {:.0} s per run, median of the rounds",
        load.concurrency,
        load.duration.as_secs_f64()
    );
    println!(
        "{:<8} {:>12} {:>8} {:>8} {:>8} {:>8} {:>14} {:>9} {:>8}",
        "wallets", "transfers/s", "p50 ms", "p99 ms", "retries", "errors", "ceiling tx/s", "retried", "share"
    );
    let mut verdicts = Vec::new();
    for (layout, target) in [("hot", 0.5), ("spread", 0.7)] {
        let rounds: Vec<&TransferRound> = figures.iter().filter(|f| f.layout == layout).collect();
        if rounds.is_empty() {
            continue;
        }
        let of = |f: fn(&TransferRound) -> f64| median(rounds.iter().map(|r| f(r)).collect());
        let share = of(|r| r.share_of_ceiling);
        let errors: u64 = rounds.iter().map(|r| r.measured.error_count()).sum();
        println!(
            "{:<8} {:>12.0} {:>8.2} {:>8.2} {:>8.0} {:>8} {:>14.0} {:>9.0} {:>7.0} %",
            layout,
            of(|r| r.measured.per_second),
            of(|r| r.measured.p50_ms),
            of(|r| r.measured.p99_ms),
            of(|r| r.retries as f64),
            errors,
            of(|r| r.ceiling_per_second),
            of(|r| r.ceiling_retried as f64),
            share * 100.0
        );
        let pass = share >= target && errors == 0;
        verdicts.push(format!(
            "{} {layout}: ≥ {:.0} % of the database's ceiling, no errors — {:.0} %, {errors} errors",
            if pass { "PASS" } else { "FAIL" },
            target * 100.0,
            share * 100.0
        ));
    }
    println!();
    for verdict in verdicts {
        println!("{verdict}");
    }
}
