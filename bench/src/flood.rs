//! The login flood: `/v1/me` must not notice sign-ins that keep the hash pool saturated,
//! with the rate limiter off and on.

use std::sync::Arc;

use anyhow::Context as _;

use crate::load::{Load, drive};
use crate::report::Report;
use crate::scenarios::{Login, Me, seed_accounts, seed_user};
use crate::server::{Server, ServerConfig};

/// p99 of `/v1/me` alone, then while logins keep the hash pool saturated.
pub async fn login_flood(
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
    report.add("me alone (flood ref.)", alone);
    let flood = Load { concurrency: hash_concurrency * 8, ..load };
    seed_accounts(client, base, "flooder", flood.concurrency).await?;
    let login = Arc::new(Login { base: base.to_owned(), username: "flooder".into(), accounts: flood.concurrency });
    let (under, logins) = tokio::join!(drive(client, me, probes), drive(client, login, flood));
    report.add("me under login flood", under);
    report.add("login (the flood)", logins);
    Ok(())
}

/// An access token of an account of its own, so that no sign-in of a scenario's ends its
/// session (each account keeps its newest `TESSERA_MAX_SESSIONS_PER_USER` sessions).
pub async fn probe_token(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let seeded = seed_user(client, base, "probe").await?;
    Ok(seeded["access_token"].as_str().context("no access token")?.to_owned())
}

/// The login flood again, on a server of its own with the rate limiter on (30 a minute, the
/// default): the flood is answered `429` from the limiter, and `/v1/me` must not notice.
pub async fn login_flood_limited(
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
    report.add("me under login flood, limiter on", under);
    report.add("login flood, limiter on", logins);
    server.stop().await
}
