//! Scratch databases: each test and each benchmark run gets a database of its own, made fresh
//! and removed afterwards, on SQLite (a temporary file) or on a PostgreSQL or MySQL server.

use std::path::PathBuf;

use sqlx::{AnyConnection, Connection as _, Executor as _};

/// A database made for one test or run.
#[derive(Debug)]
pub struct ScratchDb {
    /// The URL the service under test connects with.
    pub url: String,
    /// Its name: the file's stem, or the database's name on the server.
    pub name: String,
    place: Place,
}

#[derive(Debug, Clone)]
enum Place {
    File(PathBuf),
    Server(String),
}

impl ScratchDb {
    /// A fresh SQLite file when `server_url` is `None`; else a fresh database on the server
    /// `server_url` names (`postgres://…` or `mysql://…`). `prefix` starts its name.
    pub async fn create(server_url: Option<&str>, prefix: &str) -> Result<Self, sqlx::Error> {
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        let Some(server_url) = server_url else {
            let file = std::env::temp_dir().join(format!("{name}.db"));
            let url = format!("sqlite://{}?mode=rwc", file.display());
            return Ok(Self { url, name, place: Place::File(file) });
        };
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(server_url).await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await?;
        conn.close().await?;
        let url = with_database(server_url, &name)
            .ok_or_else(|| sqlx::Error::Configuration("the server URL has no host to name a database on".into()))?;
        Ok(Self { url, name, place: Place::Server(server_url.to_owned()) })
    }

    /// Removes the database and everything in it.
    pub async fn remove(&self) -> Result<(), sqlx::Error> {
        match &self.place {
            Place::File(file) => {
                for suffix in ["", "-wal", "-shm"] {
                    std::fs::remove_file(format!("{}{suffix}", file.display())).ok();
                }
                Ok(())
            }
            Place::Server(server_url) => {
                let mut conn = AnyConnection::connect(server_url).await?;
                let force = if server_url.starts_with("postgres") { " WITH (FORCE)" } else { "" };
                conn.execute(format!("DROP DATABASE IF EXISTS {}{force}", self.name).as_str()).await?;
                conn.close().await
            }
        }
    }

    /// [`remove`](Self::remove) from anywhere, also from inside an async runtime that cannot
    /// block on itself (a `Drop` in a test): on a thread of its own with a runtime of its own.
    pub fn remove_blocking(&self) -> Result<(), sqlx::Error> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime.block_on(self.remove())
                })
                .join()
                .unwrap_or_else(|_| Err(sqlx::Error::WorkerCrashed))
        })
    }
}

/// `server_url` with its database (the path) replaced by `name`, the query kept.
fn with_database(server_url: &str, name: &str) -> Option<String> {
    let mut url = url::Url::parse(server_url).ok()?;
    if url.cannot_be_a_base() {
        return None;
    }
    url.set_path(&format!("/{name}"));
    Some(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "t1").as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/t1?sslmode=disable")
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "t2").as_deref(),
            Some("mysql://root@127.0.0.1:3306/t2")
        );
    }
}
