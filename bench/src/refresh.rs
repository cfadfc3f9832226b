//! The refresh scenario: `POST /v1/auth/refresh` along chains of rotated tokens, beside the
//! database's own ceiling for the same statements (pgbench with `scripts/refresh.pgbench` on
//! PostgreSQL, the `sqlite3` shell looping `scripts/refresh.sqlite.sql` on SQLite), in
//! alternating rounds. Driven by wrk with `scripts/refresh.lua` when wrk is installed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use sqlx::{AnyConnection, Connection as _, Executor as _, Row as _};

use crate::db_tools::{self, CeilingRun, TempScript};
use crate::load::{Load, Measured, drive};
use crate::report::{median, middle};
use crate::scenarios::{Refresh, seed_user, sign_in};
use crate::wrk;

const LUA: &str = include_str!("../scripts/refresh.lua");
const PGBENCH_SCRIPT: &str = include_str!("../scripts/refresh.pgbench");
const SQLITE_SCRIPT: &str = include_str!("../scripts/refresh.sqlite.sql");
/// Chains per account: each account keeps its newest `TESSERA_MAX_SESSIONS_PER_USER` (100)
/// sessions, and every round signs in anew.
const CHAINS_PER_ACCOUNT: usize = 40;
/// Chains beyond one per connection: wrk sometimes asks for a request before the answer that
/// frees a chain has been read.
const SPARE_CHAINS: usize = 16;
/// Refreshes in the first SQLite ceiling run, which sets the size of the later ones.
const SQLITE_CALIBRATION: usize = 2_000;

#[derive(Serialize)]
pub struct RefreshFigures {
    /// The round with the median rate.
    pub measured: Measured,
    pub ceiling_per_second: Option<f64>,
    /// The median of the rounds' ratios (tessera ÷ the ceiling measured just before it).
    pub share_of_ceiling: Option<f64>,
    pub driver: &'static str,
}

/// Runs `rounds` rounds of (ceiling, tessera) on the server at `base` over `database_url`.
pub async fn run(
    client: &reqwest::Client,
    base: &str,
    (database_url, pool): (&str, usize),
    load: Load,
    rounds: usize,
) -> anyhow::Result<RefreshFigures> {
    let mut ceiling = Ceiling::prepare(database_url, client, base, (pool, load.concurrency)).await?;
    let use_wrk = wrk::available();
    let mut runs = Vec::new();
    let mut ratios = Vec::new();
    let mut ceilings = Vec::new();
    for round in 0..rounds.max(1) {
        eprintln!("  refresh round {}: the database's ceiling…", round + 1);
        let limit = ceiling.run(load.concurrency, load.duration).await?;
        eprintln!("  refresh round {}: tessera…", round + 1);
        let measured = tessera(client, base, load, use_wrk).await?;
        if let Some(limit) = limit {
            ratios.push(measured.per_second / limit.per_second.max(0.001));
            ceilings.push(limit.per_second);
        }
        runs.push(measured);
    }
    let measured = middle(runs);
    let (ceiling_per_second, share_of_ceiling) =
        if ratios.is_empty() { (None, None) } else { (Some(median(ceilings)), Some(median(ratios))) };
    Ok(RefreshFigures {
        measured,
        ceiling_per_second,
        share_of_ceiling,
        driver: if use_wrk { "wrk" } else { "in-process" },
    })
}

/// One measured run against tessera, on chains signed in for it (a run's last tokens stay in
/// its driver).
async fn tessera(client: &reqwest::Client, base: &str, load: Load, use_wrk: bool) -> anyhow::Result<Measured> {
    let chains = chains(client, base, load.concurrency + SPARE_CHAINS).await?;
    if !use_wrk {
        let chains = chains.into_iter().map(Mutex::new).collect();
        return Ok(drive(client, Arc::new(Refresh { base: base.to_owned(), chains }), load).await);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(load.concurrency).max(1);
    let mut args = vec![threads.to_string()];
    args.extend(chains);
    let run = wrk::Run { url: base, headers: Vec::new(), script: Some((LUA, args)) };
    // No warm-up run: it would spend the chains. The first second is not discounted.
    run.run_for(load.concurrency, load.duration).await
}

/// Signs in `count` times, spread over accounts `refresher{n}`; answers the refresh tokens.
async fn chains(client: &reqwest::Client, base: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(count);
    for n in 0..count {
        let account = format!("refresher{}", n / CHAINS_PER_ACCOUNT);
        if n % CHAINS_PER_ACCOUNT == 0 {
            seed_user(client, base, &account).await?;
        }
        let body = sign_in(client, base, &account).await?;
        tokens.push(body["refresh_token"].as_str().context("no refresh token")?.to_owned());
    }
    Ok(tokens)
}

/// Runs the pgbench script with `clients` and checks that each transaction it counts rotated a
/// token: that as many tokens were inserted on the ceiling's sessions.
async fn rotations(
    url: &str,
    script: &TempScript,
    sessions: usize,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<CeilingRun> {
    anyhow::ensure!(clients <= sessions, "the refresh ceiling has {sessions} sessions for {clients} clients");
    let mut conn = AnyConnection::connect(url).await?;
    let tokens = "SELECT COUNT(*) AS n FROM refresh_tokens WHERE session_id IN (SELECT session_id FROM bench_sessions)";
    let before: i64 = sqlx::query(tokens).fetch_one(&mut conn).await?.try_get("n")?;
    let defines = [("sessions", sessions.to_string()), ("started", "0".to_owned())];
    let run = db_tools::pgbench(url, &script.0, clients, duration, &defines)?;
    let after: i64 = sqlx::query(tokens).fetch_one(&mut conn).await?.try_get("n")?;
    conn.close().await?;
    let inserted = u64::try_from(after - before)?;
    anyhow::ensure!(
        inserted == run.transactions,
        "the refresh ceiling's pgbench counted {} transactions but rotated {inserted} tokens: its script is out of \
         step with the schema or its chains",
        run.transactions
    );
    Ok(run)
}

/// The database's ceiling for a refresh.
enum Ceiling {
    /// `pool`: the connections tessera's pool has.
    Postgres {
        url: String,
        script: TempScript,
        sessions: usize,
        pool: usize,
    },
    Sqlite {
        file: PathBuf,
        session: (String, String),
        last_rate: Option<f64>,
    },
    None,
}

impl Ceiling {
    /// On PostgreSQL, a table `bench_sessions` of live sessions for the script's clients to
    /// follow, one each (pgbench runs as many as tessera's `pool`, or as the scenario's
    /// `concurrency`); on SQLite, one session of a signed-in account.
    async fn prepare(
        url: &str,
        client: &reqwest::Client,
        base: &str,
        (pool, concurrency): (usize, usize),
    ) -> anyhow::Result<Self> {
        if url.starts_with("mysql") || url.starts_with("mariadb") {
            return Ok(Self::None);
        }
        seed_user(client, base, "refresh-ceiling").await?;
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(url).await?;
        let session = sqlx::query(
            "SELECT s.id, s.user_id FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE u.username = 'refresh-ceiling' AND s.revoked_at IS NULL",
        )
        .fetch_one(&mut conn)
        .await?;
        let (sid, uid): (String, String) = (session.try_get("id")?, session.try_get("user_id")?);
        if let Some(path) = url.strip_prefix("sqlite://") {
            conn.close().await?;
            let file = PathBuf::from(path.split('?').next().unwrap_or(path));
            return Ok(Self::Sqlite { file, session: (sid, uid), last_rate: None });
        }
        // One session per pgbench client, as each chain of the scenario has its own.
        conn.execute(
            "CREATE TABLE bench_sessions (n INTEGER PRIMARY KEY, session_id VARCHAR(36), user_id VARCHAR(36))",
        )
        .await?;
        for n in 0..pool.max(concurrency) {
            let account = format!("refresher-ceiling{}", n / CHAINS_PER_ACCOUNT);
            if n % CHAINS_PER_ACCOUNT == 0 {
                seed_user(client, base, &account).await?;
            } else {
                sign_in(client, base, &account).await?;
            }
        }
        conn.execute(
            "INSERT INTO bench_sessions (n, session_id, user_id) \
             SELECT (row_number() OVER (ORDER BY s.id)) - 1, s.id, s.user_id \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE u.username LIKE 'refresher-ceiling%' AND s.revoked_at IS NULL",
        )
        .await?;
        let sessions: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM bench_sessions").fetch_one(&mut conn).await?.try_get("n")?;
        conn.close().await?;
        let script = TempScript::write("refresh.pgbench", PGBENCH_SCRIPT)?;
        Ok(Self::Postgres { url: url.to_owned(), script, sessions: usize::try_from(sessions)?.max(1), pool })
    }

    /// Runs the statements for about `duration`; `None` on a database without a ceiling here.
    async fn run(&mut self, clients: usize, duration: Duration) -> anyhow::Result<Option<CeilingRun>> {
        match self {
            Self::Postgres { url, script, sessions, pool } => {
                // The better of as many clients as the scenario has connections and as many
                // as tessera's pool has: fewer sessions can do more.
                let fewer = rotations(url, script, *sessions, (*pool).min(clients), duration).await?;
                if *pool >= clients {
                    return Ok(Some(fewer));
                }
                let all = rotations(url, script, *sessions, clients, duration).await?;
                Ok(Some(if fewer.per_second > all.per_second { fewer } else { all }))
            }
            Self::Sqlite { file, session: (sid, uid), last_rate } => {
                let count = last_rate.map_or(SQLITE_CALIBRATION, |rate| (rate * duration.as_secs_f64()) as usize);
                let body = db_tools::without_comments(SQLITE_SCRIPT);
                let now = db_tools::now_micros()?.to_string();
                // Token digests of this run: 32 hex digits of its own, then 32 of a counter.
                let run = uuid::Uuid::now_v7().simple().to_string();
                let digest = |n: usize| format!("{run}{n:032x}");
                let run = db_tools::sqlite_loop(file, count.max(SQLITE_CALIBRATION), |n| {
                    body.replace("{prev}", &digest(n))
                        .replace("{next}", &digest(n + 1))
                        .replace("{sid}", sid)
                        .replace("{uid}", uid)
                        .replace("{now}", &now)
                })?;
                *last_rate = Some(run.per_second);
                Ok(Some(run))
            }
            Self::None => Ok(None),
        }
    }
}
