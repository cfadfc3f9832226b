//! The database a run uses: made fresh for it and removed afterwards, whatever the outcome.

use anyhow::Context as _;
use tessera_scratch::ScratchDb;

/// A fresh SQLite file, or a fresh database on the PostgreSQL or MySQL server `server_url` names.
pub async fn create(server_url: Option<&str>) -> anyhow::Result<ScratchDb> {
    ScratchDb::create(server_url, "tessera_bench").await.context("creating the benchmark database")
}

/// Removes the database; a failure is reported, not fatal.
pub async fn remove(db: &ScratchDb) {
    if let Err(error) = db.remove().await {
        eprintln!("could not remove the benchmark database {}: {error}", db.name);
    }
}
