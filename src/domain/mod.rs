//! The model: what an account, a password, a session, a token and an audit event are, and the
//! rules a value must pass to be one. Pure: no storage, no HTTP, no configuration. The edge
//! parses requests into these types, the service decides with them and storage persists them.

pub mod audit;
pub mod error;
pub mod fields;
pub mod ids;
pub mod jwt;
pub mod limits;
pub mod listing;
pub mod lockout;
pub mod money;
pub mod passkey;
pub mod password;
pub mod ranks;
pub mod second_factor;
pub mod secrets;
pub mod session;
pub mod time;
pub mod user;
pub mod wallet;

pub use error::{FieldError, Invalid};
