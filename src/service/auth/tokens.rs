//! Issuing tokens: signed access tokens and opaque refresh tokens.
//!
//! A refresh token is 256 random bits at sign-in. When it is rotated, its successor is not
//! random but `HMAC(server secret, presented token)`: only the holder of the presented token
//! and the server can compute it, it is stored only as a digest like every other, and a
//! duplicate refresh of the same token inside the grace period yields the very same successor
//! — and, since EdDSA and HMAC signatures are deterministic, the very same access token.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;
use uuid::Uuid;

use super::keys::Keys;
use crate::domain::jwt::{AccessClaims, TokenError};
use crate::domain::secrets::random_bytes;
use crate::domain::session::Session;
use crate::domain::time::Timestamp;
use crate::domain::user::User;
use crate::service::error::Error;
use crate::service::sealing::{Sealer, shared_secret};
use crate::storage::Store;

/// Token lifetimes and the names tokens carry.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss`: the service's public URL.
    pub issuer: String,
    /// `aud`: who the access tokens are for.
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub session_max_age: Duration,
    /// How long a just-rotated refresh token still answers with its successor pair.
    pub refresh_reuse_grace: Duration,
    /// Live sessions an account may have; a sign-in beyond it ends the oldest.
    pub max_sessions_per_user: u32,
}

/// What a sign-in or a refresh hands out.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: SecretString,
    pub refresh_expires_in: u64,
    pub user: User,
}

/// Signs and derives tokens for one node.
#[derive(Clone)]
pub struct Tokens {
    keys: Arc<Keys>,
    settings: Arc<TokenSettings>,
    successor_secret: Arc<SecretString>,
}

impl Tokens {
    /// Loads the shared successor secret (creating it on a fresh database).
    pub async fn load(store: &Store, sealer: &Sealer, keys: Arc<Keys>, settings: TokenSettings) -> Result<Self, Error> {
        let secret = shared_secret(store, sealer, "refresh_successor").await?;
        Ok(Self { keys, settings: Arc::new(settings), successor_secret: Arc::new(secret) })
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// An access token for `user` in `session`, issued at `at`: it ends with its TTL, or with
    /// the session's absolute end if that comes first.
    pub fn access_token(&self, user: &User, session: &Session, at: Timestamp, jti: Uuid) -> Result<String, Error> {
        let s = &self.settings;
        let claims = AccessClaims {
            iss: s.issuer.clone(),
            aud: s.audience.clone(),
            sub: user.id.to_string(),
            sid: session.id.to_string(),
            role: user.role.as_str().to_owned(),
            iat: at.as_secs(),
            nbf: at.as_secs(),
            exp: at.plus(s.access_ttl).min(session.max_expires_at).as_secs(),
            jti: jti.to_string(),
            amr: session.proof.methods().iter().map(|method| (*method).to_owned()).collect(),
            scope: session.proof.scope().map(str::to_owned),
        };
        self.keys.ring().sign(&claims).map_err(|e| Error::Internal(format!("signing an access token: {e}")))
    }

    /// The successor of a presented refresh token, and the `jti` of the access token issued
    /// beside it: both derived, so a repeated rotation reproduces them exactly.
    pub fn successor(&self, presented: &SecretString) -> (SecretString, Uuid) {
        let derive = |label: &[u8]| -> [u8; 32] {
            match Hmac::<Sha256>::new_from_slice(self.successor_secret.expose_secret().as_bytes()) {
                Ok(mut mac) => {
                    mac.update(label);
                    mac.update(presented.expose_secret().as_bytes());
                    mac.finalize().into_bytes().into()
                }
                Err(_) => random_bytes(),
            }
        };
        let token = SecretString::from(B64.encode(derive(b"refresh:")));
        let jti_bytes = derive(b"jti:");
        let mut jti = [0_u8; 16];
        jti.copy_from_slice(&jti_bytes[..16]);
        (token, uuid::Builder::from_random_bytes(jti).into_uuid())
    }

    /// Verifies an access token's signature and claims (not its session).
    pub async fn verify(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        let s = &self.settings;
        self.keys.verify(token, &s.issuer, &s.audience, now.as_secs()).await
    }

    /// Seconds from `now` until `until`, never negative.
    pub fn seconds_between(now: Timestamp, until: Timestamp) -> u64 {
        until.as_secs().saturating_sub(now.as_secs()).max(0).unsigned_abs()
    }
}
