//! The rules of the service: what an account, a password, a token and a session are, and the
//! operations on them. No HTTP and no SQL here: the edge parses requests into these types and
//! the storage layer persists what the operations decide.

pub mod accounts;
pub mod administration;
pub mod audit;
pub mod auth;
pub mod auth_cache;
pub mod cleanup;
pub mod cursor;
pub mod error;
pub mod fields;
pub mod hashing;
pub mod ids;
pub mod jwt;
pub mod keys;
pub mod notices;
pub mod password;
pub mod ranks;
pub mod recovery;
pub mod refresh;
pub mod secrets;
pub mod session;
pub mod sessions;
pub mod time;
pub mod tokens;
pub mod user;

pub use error::{Error, FieldError, Invalid};
