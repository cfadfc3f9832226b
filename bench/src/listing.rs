//! `--scenario list-users`: latency of `GET /v1/users` at each size, on a database seeded with
//! `tessera admin seed`, to show that a list at a million accounts costs what it costs at ten
//! thousand (target: within 1.5 ×).
//!
//! Each size gets its own fresh database. The queries: the first page, a page half-way down
//! the list (reached by following cursors), a narrow prefix (100 accounts at every size) and a
//! broad one (one account in sixteen: sorted at 10k, a walk of the sort index at 1M).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::load::{Load, Measured, Request, drive, status_of};
use crate::scenarios::sign_in;
use crate::scratch;
use crate::server::{Server, ServerConfig, create_admin, tessera};

/// `GET /v1/users?{query}` as an administrator.
struct ListUsers {
    base: String,
    token: String,
    query: String,
}

impl Request for ListUsers {
    async fn send(&self, _: usize, client: &reqwest::Client) -> u16 {
        let url = format!("{}/v1/users?{}", self.base, self.query);
        status_of(client.get(url).bearer_auth(&self.token).send().await).await
    }
}

/// One query at one size.
#[derive(Serialize)]
pub struct ListFigure {
    pub users: u64,
    pub query: String,
    pub seed_seconds: f64,
    #[serde(flatten)]
    pub measured: Measured,
}

/// Seeds each size in turn, measures every query, prints the table and answers the figures.
pub async fn run(
    sizes: &[u64],
    server_db: Option<&str>,
    base_config: &ServerConfig,
    load: Load,
) -> anyhow::Result<Vec<ListFigure>> {
    let mut figures = Vec::new();
    for &users in sizes {
        let db = scratch::create(server_db).await?;
        let config = ServerConfig { database_url: db.url.clone(), ..base_config.clone() };
        let outcome = measure_size(&config, users, load).await;
        scratch::remove(&db).await;
        figures.extend(outcome?);
    }
    print(&figures, sizes);
    Ok(figures)
}

async fn measure_size(config: &ServerConfig, users: u64, load: Load) -> anyhow::Result<Vec<ListFigure>> {
    eprintln!("seeding {users} accounts…");
    let started = Instant::now();
    tessera(config, &["admin", "seed", "--users", &users.to_string()], None)?;
    let seed_seconds = started.elapsed().as_secs_f64();
    create_admin(config)?;
    let (server, _) = Server::start(config).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let token = sign_in(&client, &server.base, "bench-admin").await?["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned();
    let deep = cursor_half_way(&client, &server.base, &token, users).await?;
    let queries = [
        ("first page".to_owned(), "limit=50".to_owned()),
        ("half-way page".to_owned(), format!("limit=50&cursor={deep}")),
        ("q=user00012 (100 matches)".to_owned(), "limit=50&q=user00012".to_owned()),
        ("q=ada (1 in 16)".to_owned(), "limit=50&q=ada".to_owned()),
        ("-username, first page".to_owned(), "limit=50&sort=-username".to_owned()),
    ];
    let mut figures = Vec::new();
    for (name, query) in queries {
        eprintln!("  {name}…");
        let request = Arc::new(ListUsers { base: server.base.clone(), token: token.clone(), query });
        let measured = drive(&client, request, load).await;
        figures.push(ListFigure { users, query: name, seed_seconds, measured });
    }
    server.stop().await?;
    Ok(figures)
}

/// The cursor of the page that starts half-way down the default order, by following
/// `next_cursor` with the largest pages.
async fn cursor_half_way(client: &reqwest::Client, base: &str, token: &str, users: u64) -> anyhow::Result<String> {
    let mut cursor = String::new();
    let mut listed = 0;
    while listed < users / 2 {
        let url = format!(
            "{base}/v1/users?limit=200{}",
            if cursor.is_empty() { String::new() } else { format!("&cursor={cursor}") }
        );
        let page: Value = client.get(url).bearer_auth(token).send().await?.error_for_status()?.json().await?;
        listed += page["items"].as_array().map_or(0, Vec::len) as u64;
        cursor = page["next_cursor"].as_str().context("the list ended before half-way")?.to_owned();
    }
    Ok(cursor)
}

fn print(figures: &[ListFigure], sizes: &[u64]) {
    let (Some(&small), Some(&large)) = (sizes.first(), sizes.last()) else { return };
    println!("\nGET /v1/users, p50 / p99 in ms ({small} → {large} accounts)");
    println!("{:<28} {:>16} {:>16} {:>10} {:>10}", "query", small, large, "p50 ratio", "p99 ratio");
    let at = |users: u64, query: &str| figures.iter().find(|f| f.users == users && f.query == query);
    for figure in figures.iter().filter(|f| f.users == small) {
        let Some(big) = at(large, &figure.query) else { continue };
        let (a, b) = (&figure.measured, &big.measured);
        println!(
            "{:<28} {:>7.2} / {:>6.2} {:>7.2} / {:>6.2} {:>9.2}× {:>9.2}× {}",
            figure.query,
            a.p50_ms,
            a.p99_ms,
            b.p50_ms,
            b.p99_ms,
            b.p50_ms / a.p50_ms.max(0.001),
            b.p99_ms / a.p99_ms.max(0.001),
            if a.error_count() + b.error_count() > 0 { "ERRORS" } else { "" }
        );
    }
    for &users in sizes {
        if let Some(f) = figures.iter().find(|f| f.users == users) {
            println!("seeding {users} accounts took {:.1} s", f.seed_seconds);
        }
    }
}
