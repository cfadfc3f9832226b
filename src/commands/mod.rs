//! One module per subcommand, each with `pub async fn run`.

pub mod admin;
pub mod keys;
pub mod ledger;
pub mod mail;
pub mod migrate;
pub mod openapi;
pub mod progress;
pub mod seed;
pub mod serve;
mod user_files;
pub mod users;
