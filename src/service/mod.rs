//! The operations: what a request asks for, decided under the model's rules and run in one
//! transaction through storage, with its audit event and its mail. Nothing here knows HTTP.

pub mod abuse;
pub mod accounts;
pub mod administration;
pub mod auth;
pub mod background;
pub mod booking;
pub mod cleanup;
pub mod cursor;
pub mod error;
pub mod hashing;
pub mod health;
pub mod holds;
pub mod import;
pub mod notices;
pub mod profile;
pub mod recovery;
pub mod sealing;
pub mod second_factors;
pub mod transfer_batch;
pub mod transfers;
pub mod wallets;

pub use error::Error;
