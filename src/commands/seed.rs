//! `tessera admin seed`: fill a database with synthetic accounts, for benchmarks and trials of
//! the administration list at scale.
//!
//! Accounts go in a thousand at a time, one transaction and two multi-row statements per
//! batch, all sharing one password hash computed once (Argon2 for each would take hours). The
//! password is random unless given on standard input, so seeded accounts cannot be signed
//! into by anyone who did not choose it.

use std::io::BufRead as _;
use std::time::Instant;

use anyhow::Context as _;
use secrecy::SecretString;

use crate::cli::SeedArgs;
use crate::config::Config;
use crate::domain::fields::{Metadata, Username};
use crate::domain::ids::new_id;
use crate::domain::secrets::new_token;
use crate::domain::time::Timestamp;
use crate::domain::user::{Profile, Role, User, UserStatus};
use crate::service::hashing::hash_now;
use crate::storage::{Store, StoreError, users};

/// Accounts per transaction.
const BATCH: u64 = 1_000;
/// How often progress is printed.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

const FIRST_NAMES: [&str; 16] = [
    "Ada",
    "Alan",
    "Barbara",
    "Claude",
    "Dennis",
    "Edsger",
    "Frances",
    "Grace",
    "Hedy",
    "John",
    "Katherine",
    "Ken",
    "Linus",
    "Margaret",
    "Niklaus",
    "Radia",
];
const LAST_NAMES: [&str; 16] = [
    "Lovelace", "Turing", "Liskov", "Shannon", "Ritchie", "Dijkstra", "Allen", "Hopper", "Lamarr", "McCarthy",
    "Johnson", "Thompson", "Torvalds", "Hamilton", "Wirth", "Perlman",
];

pub async fn run(config: &Config, args: SeedArgs) -> anyhow::Result<()> {
    let longest = format!("{}{:07}", args.prefix, args.users.saturating_sub(1));
    Username::parse(&longest).map_err(|e| anyhow::anyhow!("--prefix: {longest} is not a username: {}", e.message))?;
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
        SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        new_token()
    };
    let hash = hash_now(&password)?;
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    let outcome = seed(&store, &args, &hash).await;
    store.close().await;
    outcome
}

async fn seed(store: &Store, args: &SeedArgs, hash: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_report = started;
    // Creation instants one microsecond apart, ending now, so the oldest come first.
    let first_instant = Timestamp::now().as_micros() - i64::try_from(args.users).unwrap_or(i64::MAX);
    let mut done = 0;
    while done < args.users {
        let batch: Vec<User> = (done..args.users.min(done + BATCH))
            .map(|n| synthetic_user(&args.prefix, n, first_instant + n as i64, hash))
            .collect();
        insert_batch(store, &batch).await.with_context(|| format!("inserting accounts {done}.."))?;
        done += batch.len() as u64;
        if last_report.elapsed() >= PROGRESS_EVERY || done == args.users {
            last_report = Instant::now();
            let rate = done as f64 / started.elapsed().as_secs_f64();
            eprintln!("seeded {done} of {} accounts ({rate:.0}/s)", args.users);
        }
    }
    eprintln!("updating the planner's statistics…");
    users::after_bulk_load(store).await?;
    println!("seeded {} accounts in {:.1} s", args.users, started.elapsed().as_secs_f64());
    Ok(())
}

async fn insert_batch(store: &Store, batch: &[User]) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    users::insert_many(&mut tx, batch).await?;
    tx.commit().await?;
    Ok(())
}

/// Account `n`: `{prefix}0000042`, `{prefix}0000042@example.test`, a name from two short
/// lists, one in ten with a verified address.
fn synthetic_user(prefix: &str, n: u64, created_at: i64, hash: &str) -> User {
    let username = format!("{prefix}{n:07}");
    let first = FIRST_NAMES[(n % 16) as usize];
    let last = LAST_NAMES[(n / 16 % 16) as usize];
    let created_at = Timestamp::from_micros(created_at);
    User {
        id: new_id(),
        profile: Profile {
            email: Some(format!("{username}@example.test")),
            username: Some(username),
            phone: None,
            first_name: Some(first.to_owned()),
            last_name: Some(last.to_owned()),
            display_name: Some(format!("{first} {last}")),
            metadata: Metadata::default(),
        },
        email_verified_at: (n % 10 == 0).then_some(created_at),
        role: Role::User,
        status: UserStatus::Active,
        password_hash: hash.to_owned(),
        created_at,
        updated_at: created_at,
        last_login_at: None,
        pending_email: None,
    }
}
