//! `--scenario import`: `tessera users import` of a file of accounts with pre-hashed passwords
//! (bcrypt, Werkzeug and Django PBKDF2, argon2-cffi and Werkzeug scrypt hashes, as a Flask or
//! Django application stores them) into a fresh database, then `tessera users export` of them.
//! Target: 100,000 accounts imported in under 30 s.

use std::io::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::scratch;
use crate::server::{ServerConfig, tessera};

/// The reference hashes the tests use: real hashes in every format, in rotation.
const VECTORS: &str = include_str!("../../tests/data/password_hashes.jsonl");
const TARGET_SECONDS: f64 = 30.0;

pub async fn run(users: u64, server_db: Option<&str>, base: &ServerConfig) -> anyhow::Result<Value> {
    let hashes: Vec<String> = VECTORS
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["legacy"] == false && v.get("password_salt").is_none())
        .filter_map(|v| v["password_hash"].as_str().map(str::to_owned))
        .collect();
    let file = std::env::temp_dir().join(format!("tessera-bench-import-{}.jsonl", std::process::id()));
    write_accounts(&file, users, &hashes)?;
    let db = scratch::create(server_db).await?;
    let config = ServerConfig { database_url: db.url.clone(), ..base.clone() };
    let outcome = measure(&config, &file, users);
    scratch::remove(&db).await;
    let _ = std::fs::remove_file(&file);
    outcome
}

fn write_accounts(path: &std::path::Path, users: u64, hashes: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).context("creating the import file")?);
    for n in 0..users {
        let line = json!({
            "username": format!("moved{n:07}"),
            "email": format!("moved{n:07}@example.test"),
            "email_verified": n % 3 == 0,
            "first_name": "Ada",
            "last_name": format!("Lovelace {}", n % 1000),
            "created_at": "2021-03-04 05:06:07.123456",
            "metadata": {"plan": if n % 2 == 0 { "free" } else { "pro" }},
            "password_hash": hashes[n as usize % hashes.len()],
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

fn measure(config: &ServerConfig, file: &std::path::Path, users: u64) -> anyhow::Result<Value> {
    let path = file.to_str().context("the import file's path is not UTF-8")?;
    eprintln!("importing {users} accounts…");
    let started = Instant::now();
    tessera(config, &["users", "import", path], None)?;
    let import_seconds = started.elapsed().as_secs_f64();
    let export = std::env::temp_dir().join(format!("tessera-bench-export-{}.jsonl", std::process::id()));
    let export_path = export.to_str().context("the export file's path is not UTF-8")?;
    let started = Instant::now();
    tessera(config, &["users", "export", "--with-password-hashes", "--output", export_path], None)?;
    let export_seconds = started.elapsed().as_secs_f64();
    let exported = std::fs::read_to_string(&export).map(|text| text.lines().count()).unwrap_or(0);
    let _ = std::fs::remove_file(&export);
    anyhow::ensure!(exported as u64 == users, "exported {exported} accounts of {users} imported");
    let backend = config.database_url.split(':').next().unwrap_or("?");
    println!("| backend | accounts | import | accounts/s | export |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| {backend} | {users} | {import_seconds:.1} s | {:.0} | {export_seconds:.1} s |",
        users as f64 / import_seconds
    );
    let scaled = import_seconds * 100_000.0 / users.max(1) as f64;
    let pass = scaled < TARGET_SECONDS;
    println!(
        "{} 100,000 pre-hashed accounts imported in < {TARGET_SECONDS:.0} s — {scaled:.1} s{}",
        if pass { "PASS" } else { "FAIL" },
        if users == 100_000 { String::new() } else { format!(" (scaled from {users})") }
    );
    Ok(json!({
        "backend": backend, "users": users, "import_seconds": import_seconds,
        "export_seconds": export_seconds, "pass": pass,
    }))
}
