//! Opaque, tamper-evident page cursors: the position as base64url JSON, then an HMAC of it
//! under a secret every node shares. A forged or garbled cursor is refused, so a client can
//! neither read past its filters nor make the server parse input it did not produce.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use super::error::Error;
use super::sealing::{Sealer, shared_secret};
use crate::storage::Store;

/// Bytes of the MAC kept in a cursor.
const TAG_BYTES: usize = 16;

/// One page of a list, and the cursor to the next one (`None` on the last page).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Signs and checks cursors.
#[derive(Clone)]
pub struct Cursors {
    key: Arc<SecretString>,
}

impl Cursors {
    /// Loads the shared cursor key (creating it on a fresh database).
    pub async fn load(store: &Store, sealer: &Sealer) -> Result<Self, Error> {
        Ok(Self::new(shared_secret(store, sealer, "cursor").await?))
    }

    /// Cursors signed with `key`.
    pub fn new(key: SecretString) -> Self {
        Self { key: Arc::new(key) }
    }

    /// Ends a page fetched with one row more than `limit`: the extra row tells that another
    /// page follows, whose cursor holds `position` of this page's last row.
    pub fn page<T, P: Serialize>(&self, mut rows: Vec<T>, limit: u32, position: impl Fn(&T) -> P) -> Page<T> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more { rows.last().map(|row| self.encode(&position(row))) } else { None };
        Page { items: rows, next_cursor }
    }

    pub fn encode<T: Serialize>(&self, position: &T) -> String {
        let body = B64.encode(serde_json::to_vec(position).unwrap_or_default());
        format!("{body}.{}", B64.encode(self.tag(body.as_bytes())))
    }

    /// The position a cursor holds; `BadCursor` unless this service made it.
    pub fn decode<T: DeserializeOwned>(&self, cursor: &str) -> Result<T, Error> {
        let (body, tag) = cursor.split_once('.').ok_or(Error::BadCursor)?;
        let tag = B64.decode(tag).map_err(|_| Error::BadCursor)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_truncated_left(&tag).map_err(|_| Error::BadCursor)?;
        let json = B64.decode(body).map_err(|_| Error::BadCursor)?;
        serde_json::from_slice(&json).map_err(|_| Error::BadCursor)
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(self.key.expose_secret().as_bytes())
            .unwrap_or_else(|_| <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default()))
    }

    fn tag(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(body);
        mac.finalize().into_bytes()[..TAG_BYTES].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursors(key: &str) -> Cursors {
        Cursors { key: Arc::new(SecretString::from(key)) }
    }

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let c = cursors("k1");
        let token = c.encode(&("2026", "id-1"));
        assert_eq!(c.decode::<(String, String)>(&token).ok(), Some(("2026".into(), "id-1".into())));
        let (body, tag) = token.split_once('.').unwrap_or_default();
        let forged_body = B64.encode(serde_json::to_vec(&("2027", "id-9")).unwrap_or_default());
        assert!(c.decode::<(String, String)>(&format!("{forged_body}.{tag}")).is_err());
        assert!(c.decode::<(String, String)>(&format!("{body}.AAAA")).is_err());
        assert!(c.decode::<(String, String)>("garbage").is_err());
        assert!(cursors("k2").decode::<(String, String)>(&token).is_err(), "another service's cursor");
    }
}
