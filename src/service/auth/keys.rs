//! The signing keys: stored in the database, shared by every node, rotated without downtime.
//!
//! Each node holds a [`Keys`]: the current ring, reloaded from the database every
//! [`Keys::RELOAD_INTERVAL`] and at once (at most once a second) when a token names a key the
//! node does not know, so a key rotated by another node or by `tessera keys rotate` is
//! honoured everywhere without restarts. With an HMAC secret configured, tokens are signed
//! HS256 and stored Ed25519 keys only verify tokens issued before the switch.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest, Sha256};

use crate::domain::jwt::{AccessClaims, KeyMaterial, KeyRing, TokenError};
use crate::domain::secrets::random_bytes;
use crate::domain::time::Timestamp;
use crate::service::error::Error;
use crate::service::sealing::Sealer;
use crate::storage::Store;
use crate::storage::signing_keys::{self, StoredKey};

/// The node's keys, reloadable while requests use them.
pub struct Keys {
    store: Store,
    sealer: Sealer,
    hmac_secret: Option<SecretString>,
    ring: RwLock<Arc<KeyRing>>,
    /// When a token with an unknown `kid` last caused a reload.
    last_on_demand: Mutex<Option<Instant>>,
}

impl Keys {
    /// How often a node re-reads the keys on its own.
    pub const RELOAD_INTERVAL: Duration = Duration::from_secs(30);
    /// The least time between reloads caused by unknown key ids (a flood of forged `kid`s
    /// must not become a flood of queries).
    const MIN_RELOAD_GAP: Duration = Duration::from_secs(1);

    /// Loads the keys, creating the first Ed25519 key on a fresh database.
    pub async fn load(store: Store, sealer: Sealer, hmac_secret: Option<SecretString>) -> Result<Self, Error> {
        let ring = build_ring(&store, &sealer, hmac_secret.as_ref()).await?;
        Ok(Self { store, sealer, hmac_secret, ring: RwLock::new(Arc::new(ring)), last_on_demand: Mutex::new(None) })
    }

    /// The ring in use now.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().map_or_else(|poisoned| poisoned.into_inner().clone(), |ring| ring.clone())
    }

    /// Re-reads the keys from the database.
    pub async fn reload(&self) -> Result<(), Error> {
        let ring = build_ring(&self.store, &self.sealer, self.hmac_secret.as_ref()).await?;
        if let Ok(mut slot) = self.ring.write() {
            *slot = Arc::new(ring);
        }
        Ok(())
    }

    /// Verifies an access token; a token naming an unknown key triggers one reload first.
    pub async fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: i64,
    ) -> Result<AccessClaims, TokenError> {
        match self.ring().verify(token, issuer, audience, now) {
            Err(TokenError::UnknownKey) if self.may_reload() => {
                if let Err(error) = self.reload().await {
                    tracing::warn!(%error, "could not reload signing keys");
                }
                self.ring().verify(token, issuer, audience, now)
            }
            outcome => outcome,
        }
    }

    /// Whether an unknown `kid` may cause a reload now; claims the slot when it may.
    fn may_reload(&self) -> bool {
        let Ok(mut last) = self.last_on_demand.lock() else {
            return false;
        };
        if last.is_some_and(|at| at.elapsed() < Self::MIN_RELOAD_GAP) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// The JWKS document: every Ed25519 public key still verifying (none in HMAC mode).
    pub fn jwks(&self) -> serde_json::Value {
        if self.hmac_secret.is_some() {
            return serde_json::json!({ "keys": [] });
        }
        let ring = self.ring();
        let mut keys: Vec<_> = ring
            .public_keys()
            .map(|(kid, public)| {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(public), "kid": kid, "alg": "EdDSA", "use": "sig"})
            })
            .collect();
        keys.sort_by(|a, b| a["kid"].as_str().cmp(&b["kid"].as_str()));
        serde_json::json!({ "keys": keys })
    }
}

/// Makes a new Ed25519 key current and retires the others; keys retired longer ago than
/// `keep_retired` (the longest any token they signed can live) are deleted. Answers the new kid.
pub async fn rotate(store: &Store, sealer: &Sealer, keep_retired: Duration) -> Result<String, Error> {
    if !sealer.is_sealing() {
        let stored = signing_keys::list(&mut *store.conn().await?).await?;
        if stored.iter().any(|key| Sealer::is_sealed(&key.secret_key)) {
            return Err(Error::Internal(
                "the stored keys are sealed: set TESSERA_MASTER_KEY, or the new key would be stored in clear".into(),
            ));
        }
    }
    let key = generate(sealer)?;
    let now = Timestamp::now();
    let mut tx = store.begin().await?;
    signing_keys::lock_current(&mut tx).await?;
    signing_keys::insert(&mut tx, &key).await?;
    signing_keys::retire_all_except(&mut tx, &key.kid, now).await?;
    tx.commit().await.map_err(crate::storage::StoreError::from)?;
    prune(store, keep_retired).await?;
    Ok(key.kid)
}

/// Deletes keys retired more than `keep_retired` ago.
pub async fn prune(store: &Store, keep_retired: Duration) -> Result<u64, Error> {
    let before = Timestamp::now().minus(keep_retired);
    Ok(store.write(async |conn| signing_keys::delete_retired_before(conn, before).await).await?)
}

async fn build_ring(store: &Store, sealer: &Sealer, hmac_secret: Option<&SecretString>) -> Result<KeyRing, Error> {
    let mut stored = signing_keys::list(&mut *store.conn().await?).await?;
    if hmac_secret.is_none() && !stored.iter().any(is_current_candidate) {
        let mut tx = store.begin().await?;
        signing_keys::lock_current(&mut tx).await?;
        // Read again under the lock: a node that started beside this one may have made it.
        stored = signing_keys::list(&mut tx).await?;
        if !stored.iter().any(is_current_candidate) {
            signing_keys::insert(&mut tx, &generate(sealer)?).await?;
            stored = signing_keys::list(&mut tx).await?;
        }
        tx.commit().await.map_err(crate::storage::StoreError::from)?;
    }
    let opened = stored
        .into_iter()
        .map(|key| {
            let secret = sealer.open(&key.secret_key, &format!("signing_key:{}", key.kid))?;
            Ok((key, secret))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let mut keys = opened.iter().filter_map(|(key, secret)| Some((key.clone(), material(key, secret)?)));
    let current = match hmac_secret {
        Some(secret) => (hmac_kid(secret), KeyMaterial::Hmac(secret.expose_secret().as_bytes().to_vec())),
        None => {
            let (key, material) = keys
                .by_ref()
                .find(|(key, _)| is_current_candidate(key))
                .ok_or_else(|| Error::Internal("no usable signing key".into()))?;
            (key.kid, material)
        }
    };
    let others: Vec<_> = keys.map(|(key, material)| (key.kid, material)).collect();
    Ok(KeyRing::new(current, others))
}

fn is_current_candidate(key: &StoredKey) -> bool {
    key.algorithm == "EdDSA" && key.retired_at.is_none()
}

/// A `kid` for an HMAC secret that reveals nothing about it.
fn hmac_kid(secret: &SecretString) -> String {
    let digest = Sha256::digest([b"tessera-hs256-kid:", secret.expose_secret().as_bytes()].concat());
    format!("hs256-{}", B64.encode(&digest[..12]))
}

/// A new Ed25519 key whose `kid` is its RFC 7638 JWK thumbprint, its secret sealed for storage.
fn generate(sealer: &Sealer) -> Result<StoredKey, Error> {
    let secret = random_bytes();
    let public = ed25519_dalek::SigningKey::from_bytes(&secret).verifying_key().to_bytes();
    let kid = thumbprint(&public);
    let secret_key = sealer.seal(&B64.encode(secret), &format!("signing_key:{kid}"))?;
    Ok(StoredKey { kid, algorithm: "EdDSA".into(), secret_key, created_at: Timestamp::now(), retired_at: None })
}

/// RFC 7638 thumbprint of an Ed25519 public key, base64url.
pub fn thumbprint(public: &[u8; 32]) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, B64.encode(public));
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

fn material(key: &StoredKey, secret: &SecretString) -> Option<KeyMaterial> {
    let bytes = B64.decode(secret.expose_secret()).ok()?;
    match key.algorithm.as_str() {
        "EdDSA" => {
            let seed: [u8; 32] = bytes.try_into().ok()?;
            Some(KeyMaterial::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed)))
        }
        _ => {
            tracing::warn!(kid = %key.kid, algorithm = %key.algorithm, "ignoring a signing key of unknown algorithm");
            None
        }
    }
}
