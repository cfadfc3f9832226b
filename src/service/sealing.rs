//! Secrets at rest. With an operator-held master key, the signing keys and the server secrets
//! (the refresh successor secret, the cursor key) are stored sealed with XChaCha20-Poly1305,
//! so a copy of the database alone can neither mint nor predict a token. Each sealed value is
//! bound to the row it belongs to (the associated data), so sealed values cannot be swapped
//! between rows either.
//!
//! Without a master key values are stored as they are, which is for development; values
//! sealed before stay readable only with the key. `tessera keys seal` seals what a database
//! holds in clear.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret as _, SecretString};

use super::error::Error;
use crate::domain::second_factor::seal_context;
use crate::domain::secrets::{decode_master_key, random_bytes};
use crate::storage::{Connection, Store, second_factors, server_secrets, signing_keys};

/// What every sealed value starts with; the version names the cipher and the layout.
const PREFIX: &str = "sealed:v1:";
const NONCE_BYTES: usize = 24;

/// Seals and opens stored secrets; without a master key it passes values through.
#[derive(Clone, Default)]
pub struct Sealer {
    cipher: Option<Arc<XChaCha20Poly1305>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("sealing", &self.is_sealing()).finish()
    }
}

impl Sealer {
    /// A sealer with `master_key` (32 bytes in base64), or one that seals nothing.
    pub fn new(master_key: Option<&SecretString>) -> Result<Self, Error> {
        let Some(master_key) = master_key else { return Ok(Self::default()) };
        let bytes = decode_master_key(master_key.expose_secret())
            .ok_or_else(|| Error::Internal("the master key is not 32 bytes in base64".into()))?;
        Ok(Self { cipher: Some(Arc::new(XChaCha20Poly1305::new(Key::from_slice(&bytes)))) })
    }

    /// Whether values are sealed on the way in.
    pub fn is_sealing(&self) -> bool {
        self.cipher.is_some()
    }

    /// `value` as it is to be stored for the row `context` names.
    pub fn seal(&self, value: &str, context: &str) -> Result<String, Error> {
        let Some(cipher) = &self.cipher else { return Ok(value.to_owned()) };
        let nonce_bytes = random_bytes();
        let nonce = XNonce::from_slice(&nonce_bytes[..NONCE_BYTES]);
        let sealed = cipher
            .encrypt(nonce, Payload { msg: value.as_bytes(), aad: context.as_bytes() })
            .map_err(|_| Error::Internal("sealing a secret failed".into()))?;
        Ok(format!("{PREFIX}{}", B64.encode([&nonce_bytes[..NONCE_BYTES], &sealed].concat())))
    }

    /// The value a stored one holds. A sealed value needs the master key it was sealed with;
    /// one stored in clear is answered as it is.
    pub fn open(&self, stored: &str, context: &str) -> Result<SecretString, Error> {
        let Some(sealed) = stored.strip_prefix(PREFIX) else { return Ok(SecretString::from(stored)) };
        let cipher = self.cipher.as_ref().ok_or_else(|| {
            Error::Internal(format!("{context} is sealed: set TESSERA_MASTER_KEY (or TESSERA_MASTER_KEY_FILE)"))
        })?;
        let unreadable =
            || Error::Internal(format!("{context} cannot be opened: wrong TESSERA_MASTER_KEY, or tampered"));
        let bytes = B64.decode(sealed).map_err(|_| unreadable())?;
        if bytes.len() < NONCE_BYTES {
            return Err(unreadable());
        }
        let (nonce, body) = bytes.split_at(NONCE_BYTES);
        let opened = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: context.as_bytes() })
            .map_err(|_| unreadable())?;
        String::from_utf8(opened).map(SecretString::from).map_err(|_| unreadable())
    }

    /// Whether `stored` is sealed.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

/// The shared secret called `name` (opened), made and stored sealed on a fresh database. When
/// nodes race, one insert wins and every node reads the winner's value.
pub async fn shared_secret(store: &Store, sealer: &Sealer, name: &str) -> Result<SecretString, Error> {
    let context = format!("server_secret:{name}");
    let fresh = sealer.seal(&B64.encode(random_bytes()), &context)?;
    let stored = store.write(async |conn| server_secrets::get_or_create(conn, name, &fresh).await).await?;
    sealer.open(&stored, &context)
}

/// What sealing a database changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    pub signing_keys: u64,
    pub server_secrets: u64,
    pub totp_secrets: u64,
}

/// Seals every signing key, server secret and TOTP secret stored in clear; sealed ones stay as they are.
/// Each row is replaced only if it still holds the value read, so a concurrent rotation is
/// never overwritten.
pub async fn seal_stored(store: &Store, sealer: &Sealer) -> Result<Resealed, Error> {
    if !sealer.is_sealing() {
        return Err(Error::Internal("sealing needs TESSERA_MASTER_KEY (or TESSERA_MASTER_KEY_FILE)".into()));
    }
    store.write(async |conn| seal_in(conn, sealer).await).await
}

async fn seal_in(conn: &mut Connection, sealer: &Sealer) -> Result<Resealed, Error> {
    let mut done = Resealed::default();
    for key in signing_keys::list(conn).await?.into_iter().filter(|k| !Sealer::is_sealed(&k.secret_key)) {
        let sealed = sealer.seal(&key.secret_key, &format!("signing_key:{}", key.kid))?;
        done.signing_keys += u64::from(signing_keys::replace_secret(conn, &key.kid, &key.secret_key, &sealed).await?);
    }
    for (name, secret) in server_secrets::list(conn).await?.into_iter().filter(|(_, s)| !Sealer::is_sealed(s)) {
        let sealed = sealer.seal(&secret, &format!("server_secret:{name}"))?;
        done.server_secrets += u64::from(server_secrets::replace(conn, &name, &secret, &sealed).await?);
    }
    let in_clear = second_factors::totp_secrets(conn).await?.into_iter().filter(|(_, s)| !Sealer::is_sealed(s));
    for (user_id, secret) in in_clear {
        let sealed = sealer.seal(&secret, &seal_context(user_id))?;
        done.totp_secrets += u64::from(second_factors::replace_totp_secret(conn, user_id, &secret, &sealed).await?);
    }
    Ok(done)
}

/// A fresh master key, for `tessera keys new-master-key`.
pub fn new_master_key() -> SecretString {
    SecretString::from(STANDARD.encode(random_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(Some(&new_master_key())).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_row() {
        let sealer = sealer();
        let sealed = sealer.seal("the secret", "server_secret:cursor").unwrap();
        assert!(Sealer::is_sealed(&sealed) && !sealed.contains("the secret"));
        assert_eq!(sealer.open(&sealed, "server_secret:cursor").unwrap().expose_secret(), "the secret");
        assert!(sealer.open(&sealed, "server_secret:refresh_successor").is_err(), "bound to its row");
        assert!(self::sealer().open(&sealed, "server_secret:cursor").is_err(), "another key cannot open it");
        assert!(Sealer::default().open(&sealed, "server_secret:cursor").is_err(), "no key cannot open it");
        assert_ne!(sealer.seal("the secret", "x").unwrap(), sealer.seal("the secret", "x").unwrap(), "fresh nonces");
    }

    #[test]
    fn without_a_key_values_pass_through_and_bad_keys_are_refused() {
        let plain = Sealer::default();
        assert_eq!(plain.seal("v", "c").unwrap(), "v");
        assert_eq!(plain.open("v", "c").unwrap().expose_secret(), "v");
        assert!(Sealer::new(Some(&SecretString::from("too short"))).is_err());
        assert!(decode_master_key(&B64.encode([7_u8; 32])).is_some());
    }
}
