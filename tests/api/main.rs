//! HTTP-level tests: the real router on a random port, the same cases on every backend.
//! PostgreSQL and MySQL run when `TESSERA_TEST_POSTGRES_URL` / `TESSERA_TEST_MYSQL_URL` are set;
//! with PostgreSQL, every test also runs through a PgBouncer in transaction pooling mode when
//! Debian's `pgbouncer` is installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod helpers;

mod account_races;
mod audit;
mod bad_bytes;
mod binary;
mod browser;
mod cli;
mod concurrency;
mod crash;
mod edge;
mod errors;
mod import;
mod limits;
mod lockout;
mod login;
mod mail;
mod mail_limits;
mod me;
mod mfa;
mod ops;
mod outbox_bounds;
mod passkeys;
mod pgbouncer;
mod proxy;
mod refresh;
mod register;
mod scale_out;
mod sealing;
mod session_limits;
mod sessions;
mod smtp;
mod tokens;
mod user_list;
mod users;
mod wallets;
