//! The database's own ceiling for transfers: the statements of one transfer as tessera runs
//! them, driven with no HTTP and no Rust in between. On PostgreSQL, pgbench with
//! `scripts/transfer.pgbench`, the better of as many clients as the scenario has and as many as
//! tessera's pool has connections (fewer sessions queueing on a hot row's lock can do more); on
//! SQLite, the `sqlite3`
//! shell running `scripts/transfer.sqlite.sql` over and over on one connection (SQLite has one
//! writer at a time, so one tight loop is its ceiling).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use sqlx::{AnyConnection, Connection as _, Executor as _};
use uuid::Uuid;

use crate::db_tools;
pub use crate::db_tools::CeilingRun;
use crate::layout::{Layout, mix};

const PGBENCH_SCRIPT: &str = include_str!("../scripts/transfer.pgbench");
const SQLITE_SCRIPT: &str = include_str!("../scripts/transfer.sqlite.sql");
/// Transfers in the first SQLite run, which sets the size of the later ones.
const SQLITE_CALIBRATION: usize = 2_000;

/// A ceiling, ready to run against the scenario's database.
pub enum Ceiling {
    Postgres { url: String, script: PathBuf, pool: usize },
    Sqlite { file: PathBuf, last_rate: Option<f64> },
}

impl Ceiling {
    /// Prepares the ceiling for `layouts` on the database at `url`: on PostgreSQL a table of
    /// their wallets for the script to pick from, on SQLite nothing.
    /// `pool`: the connections tessera's pool has.
    pub async fn prepare(url: &str, layouts: &[&Layout], pool: usize) -> anyhow::Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let file = PathBuf::from(path.split('?').next().unwrap_or(path));
            return Ok(Self::Sqlite { file, last_rate: None });
        }
        if !url.starts_with("postgres") {
            bail!("the transfer ceiling runs on SQLite and PostgreSQL only");
        }
        let mut conn = AnyConnection::connect(url).await?;
        conn.execute(
            "CREATE TABLE bench_wallets (layout VARCHAR(16), n INTEGER, id VARCHAR(36), owner_id VARCHAR(36), \
             PRIMARY KEY (layout, n))",
        )
        .await?;
        for layout in layouts {
            for (n, wallet) in layout.wallets.iter().enumerate() {
                sqlx::query("INSERT INTO bench_wallets (layout, n, id, owner_id) VALUES ($1, $2, $3, $4)")
                    .bind(layout.name)
                    .bind(i32::try_from(n + 1)?)
                    .bind(&wallet.id)
                    .bind(&layout.owners[wallet.owner].user_id)
                    .execute(&mut conn)
                    .await?;
            }
        }
        conn.close().await?;
        let script = std::env::temp_dir().join(format!("tessera-bench-transfer-{}.pgbench", Uuid::now_v7().simple()));
        std::fs::write(&script, PGBENCH_SCRIPT)?;
        Ok(Self::Postgres { url: url.to_owned(), script, pool })
    }

    /// Runs transfers on `layout` for about `duration` and answers the rate.
    pub fn run(&mut self, layout: &Layout, clients: usize, duration: Duration) -> anyhow::Result<CeilingRun> {
        match self {
            Self::Postgres { url, script, pool } => {
                let fewer = pgbench_transfers(url, script, layout, (*pool).min(clients), duration)?;
                if *pool >= clients {
                    return Ok(fewer);
                }
                let all = pgbench_transfers(url, script, layout, clients, duration)?;
                Ok(if fewer.per_second > all.per_second { fewer } else { all })
            }
            Self::Sqlite { file, last_rate } => {
                // Enough transfers for the duration, at the rate the last run showed.
                let count = last_rate.map_or(SQLITE_CALIBRATION, |rate| (rate * duration.as_secs_f64()) as usize);
                let run = sqlite_loop(file, layout, count.max(SQLITE_CALIBRATION))?;
                *last_rate = Some(run.per_second);
                Ok(run)
            }
        }
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        if let Self::Postgres { script, .. } = self {
            std::fs::remove_file(script).ok();
        }
    }
}

/// Transfers among `layout`'s wallets through pgbench.
fn pgbench_transfers(
    url: &str,
    script: &Path,
    layout: &Layout,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<CeilingRun> {
    let defines = [("layout", layout.name.to_owned()), ("wallets", layout.wallets.len().to_string())];
    db_tools::pgbench(url, script, clients, duration, &defines)
}

/// `count` transfers among `layout`'s wallets, one after another in the `sqlite3` shell.
fn sqlite_loop(file: &Path, layout: &Layout, count: usize) -> anyhow::Result<CeilingRun> {
    let body = db_tools::without_comments(SQLITE_SCRIPT);
    let now = db_tools::now_micros()?.to_string();
    db_tools::sqlite_loop(file, count, |n| {
        let pick = layout.pick(n, mix(n as u64));
        let (src, dst) = (&layout.wallets[pick.from].id, &layout.wallets[pick.to].id);
        let id = || Uuid::now_v7().to_string();
        body.replace("{actor}", &layout.owners[layout.wallets[pick.from].owner].user_id)
            .replace("{idem}", &id())
            .replace("{now}", &now)
            .replace("{src}", src)
            .replace("{dst}", dst)
            .replace("{amount}", &pick.amount.to_string())
            .replace("{tid}", &id())
            .replace("{e1}", &id())
            .replace("{e2}", &id())
            .replace("{ev}", &id())
    })
}
