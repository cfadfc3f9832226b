//! Loading the signing keys, creating the first one on a fresh database.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::error::Error;
use super::jwt::{KeyMaterial, KeyRing};
use sha2::{Digest, Sha256};

use super::secrets::random_bytes;
use super::time::Timestamp;
use crate::storage::Store;
use crate::storage::signing_keys::{self, StoredKey};

/// The ring for this node: the newest unretired Ed25519 key signs, every other stored key
/// still verifies. A fresh database gets a new key; when several nodes race to create it,
/// each re-reads the table afterwards, so all of them sign with the same newest key.
pub async fn load_or_create(store: &Store) -> Result<KeyRing, Error> {
    let mut conn = store.conn().await?;
    let mut stored = signing_keys::list(&mut conn).await?;
    if !stored.iter().any(is_current_candidate) {
        signing_keys::insert(&mut conn, &generate()).await?;
        stored = signing_keys::list(&mut conn).await?;
    }
    let mut keys = stored
        .iter()
        .filter_map(|key| Some((key.clone(), material(key)?)));
    let current = keys
        .by_ref()
        .find(|(key, _)| is_current_candidate(key))
        .ok_or_else(|| Error::Internal("no usable signing key".into()))?;
    let others: Vec<_> = keys.map(|(key, material)| (key.kid, material)).collect();
    Ok(KeyRing::new((current.0.kid, current.1), others))
}

fn is_current_candidate(key: &StoredKey) -> bool {
    key.algorithm == "EdDSA" && key.retired_at.is_none()
}

/// A new Ed25519 key whose `kid` is its RFC 7638 JWK thumbprint.
fn generate() -> StoredKey {
    let secret = random_bytes();
    let public = ed25519_dalek::SigningKey::from_bytes(&secret)
        .verifying_key()
        .to_bytes();
    StoredKey {
        kid: thumbprint(&public),
        algorithm: "EdDSA".into(),
        secret_key: B64.encode(secret),
        created_at: Timestamp::now(),
        retired_at: None,
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key, base64url.
pub fn thumbprint(public: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        B64.encode(public)
    );
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

fn material(key: &StoredKey) -> Option<KeyMaterial> {
    let bytes = B64.decode(&key.secret_key).ok()?;
    match key.algorithm.as_str() {
        "EdDSA" => {
            let seed: [u8; 32] = bytes.try_into().ok()?;
            Some(KeyMaterial::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                &seed,
            )))
        }
        _ => {
            tracing::warn!(kid = %key.kid, algorithm = %key.algorithm, "ignoring a signing key of unknown algorithm");
            None
        }
    }
}
