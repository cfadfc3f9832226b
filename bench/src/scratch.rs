//! The database a run uses: made fresh for it and removed afterwards, whatever the outcome.

use std::path::PathBuf;

use anyhow::Context as _;
use sqlx::{AnyConnection, Connection as _, Executor as _};

/// Where a run's data lives.
pub enum Scratch {
    Sqlite(PathBuf),
    Server { server_url: String, name: String },
}

impl Scratch {
    /// A fresh SQLite file, or a fresh database on the PostgreSQL or MySQL server `server_url`
    /// names; answers it and the URL the server under test should use.
    pub async fn create(server_url: Option<&str>) -> anyhow::Result<(Self, String)> {
        let name = format!("tessera_bench_{}", uuid::Uuid::now_v7().simple());
        let Some(server_url) = server_url else {
            let file = std::env::temp_dir().join(format!("{name}.db"));
            let url = format!("sqlite://{}?mode=rwc", file.display());
            return Ok((Self::Sqlite(file), url));
        };
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(server_url).await.context("connecting to the database server")?;
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await?;
        conn.close().await?;
        let (base, query) = server_url.split_once('?').map_or((server_url, None), |(b, q)| (b, Some(q)));
        let authority = base.find("://").map_or(0, |i| i + 3);
        let path = base[authority..].find('/').map_or(base.len(), |i| authority + i);
        let url = format!("{}/{name}{}", &base[..path], query.map(|q| format!("?{q}")).unwrap_or_default());
        Ok((Self::Server { server_url: server_url.to_owned(), name }, url))
    }

    /// Removes the database; a failure is reported, not fatal.
    pub async fn remove(self) {
        let outcome = match self {
            Self::Sqlite(file) => {
                for suffix in ["", "-wal", "-shm"] {
                    std::fs::remove_file(format!("{}{suffix}", file.display())).ok();
                }
                Ok(())
            }
            Self::Server { server_url, name } => drop_database(&server_url, &name).await,
        };
        if let Err(error) = outcome {
            eprintln!("could not remove the benchmark database: {error:#}");
        }
    }
}

async fn drop_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = AnyConnection::connect(server_url).await?;
    let force = if server_url.starts_with("postgres") { " WITH (FORCE)" } else { "" };
    conn.execute(format!("DROP DATABASE IF EXISTS {name}{force}").as_str()).await?;
    conn.close().await?;
    Ok(())
}
