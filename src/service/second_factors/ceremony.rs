//! What registering and proving passkeys share: a ceremony handed to the browser, kept in the
//! database under the digest of its id, and webauthn-rs's state as JSON.

use secrecy::SecretString;
use serde_json::Value;
use webauthn_rs::prelude::Passkey;

use crate::domain::passkey::CHALLENGE_TTL;
use crate::domain::secrets;
use crate::domain::time::Timestamp;
use crate::service::error::Error;
use crate::storage::Connection;
use crate::storage::passkeys::{self as rows, Challenge, StoredPasskey};

/// A ceremony begun: the id to finish it with, and the options for the browser's
/// `navigator.credentials.create()` or `.get()` (`publicKey` inside).
pub struct Ceremony {
    pub challenge_id: SecretString,
    pub options: Value,
}

/// Stores a ceremony; answers its id.
pub(super) async fn store_challenge(
    conn: &mut Connection,
    challenge: &Challenge,
    now: Timestamp,
) -> Result<SecretString, Error> {
    let challenge_id = secrets::new_token();
    rows::insert_challenge(conn, &secrets::digest(&challenge_id), challenge, now, now.plus(CHALLENGE_TTL)).await?;
    Ok(challenge_id)
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("passkey state: {e}")))
}

pub(super) fn decode(stored: &StoredPasskey) -> Result<Passkey, Error> {
    serde_json::from_str(&stored.credential).map_err(|e| Error::Internal(format!("passkey {}: {e}", stored.id)))
}
