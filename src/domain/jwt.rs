//! Access tokens: compact JWS (RFC 7515) with the algorithm pinned by the key, not the token.
//!
//! A token names its key by `kid`; the verifier looks that key up and accepts only the one
//! algorithm the key was made for, so `alg: none`, HS256 signed with a public key and every
//! other confusion fail before any signature maths. Access tokens carry `typ: at+jwt`
//! (RFC 9068), which the verifier requires, so no other kind of token can stand in for one.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, Verifier as _};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The `typ` header of access tokens.
const ACCESS_TYP: &str = "at+jwt";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// The claims of an access token (API.md, "TokenResponse").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub role: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// How the session's sign-in proved who it was (RFC 8176).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// `mfa_enrolment` on a token that may only add a second factor: a verifier must refuse it
    /// for anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Secret key material, one variant per supported algorithm.
#[derive(Clone)]
pub enum KeyMaterial {
    /// EdDSA over Ed25519 (the default).
    Ed25519(ed25519_dalek::SigningKey),
    /// HS256 with a shared secret of at least 32 bytes.
    Hmac(Vec<u8>),
}

impl KeyMaterial {
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "EdDSA",
            Self::Hmac(_) => "HS256",
        }
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyMaterial({}, redacted)", self.algorithm())
    }
}

/// Why a token was refused. The caller sees only `401`; the reason is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("unknown key id")]
    UnknownKey,
    #[error("algorithm does not match the key")]
    WrongAlgorithm,
    #[error("not an access token")]
    WrongType,
    #[error("bad signature")]
    BadSignature,
    #[error("wrong issuer or audience")]
    WrongIssuerOrAudience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// The keys a node signs and verifies with: one current signing key and every key whose
/// tokens may still be alive.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current_kid: String,
    keys: HashMap<String, KeyMaterial>,
}

impl KeyRing {
    /// A ring that signs with `current` and also verifies with `others`.
    pub fn new(current: (String, KeyMaterial), others: impl IntoIterator<Item = (String, KeyMaterial)>) -> Self {
        let mut keys: HashMap<_, _> = others.into_iter().collect();
        let current_kid = current.0.clone();
        keys.insert(current.0, current.1);
        Self { current_kid, keys }
    }

    pub fn current_kid(&self) -> &str {
        &self.current_kid
    }

    /// The Ed25519 public keys, for JWKS; shared HMAC secrets are never published.
    pub fn public_keys(&self) -> impl Iterator<Item = (&str, [u8; 32])> {
        self.keys.iter().filter_map(|(kid, key)| match key {
            KeyMaterial::Ed25519(signing) => Some((kid.as_str(), signing.verifying_key().to_bytes())),
            KeyMaterial::Hmac(_) => None,
        })
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, serde_json::Error> {
        let Some(key) = self.keys.get(&self.current_kid) else {
            return Err(serde::ser::Error::custom("current key missing from ring"));
        };
        let header = Header {
            alg: key.algorithm().to_owned(),
            typ: Some(ACCESS_TYP.to_owned()),
            kid: Some(self.current_kid.clone()),
        };
        let signing_input =
            format!("{}.{}", B64.encode(serde_json::to_vec(&header)?), B64.encode(serde_json::to_vec(claims)?));
        let signature = match key {
            KeyMaterial::Ed25519(signing) => signing.sign(signing_input.as_bytes()).to_bytes().to_vec(),
            KeyMaterial::Hmac(secret) => hmac_sha256(secret, signing_input.as_bytes()),
        };
        Ok(format!("{signing_input}.{}", B64.encode(signature)))
    }

    /// Verifies signature, type, issuer, audience and validity window at `now` (seconds).
    pub fn verify(&self, token: &str, issuer: &str, audience: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = decode_json(header_b64)?;
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = self.keys.get(kid).ok_or(TokenError::UnknownKey)?;
        if header.alg != key.algorithm() {
            return Err(TokenError::WrongAlgorithm);
        }
        if header.typ.as_deref() != Some(ACCESS_TYP) {
            return Err(TokenError::WrongType);
        }
        let signature = B64.decode(signature_b64).map_err(|_| TokenError::Malformed)?;
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        verify_signature(key, signing_input.as_bytes(), &signature)?;
        let claims: AccessClaims = decode_json(claims_b64)?;
        if claims.iss != issuer || claims.aud != audience {
            return Err(TokenError::WrongIssuerOrAudience);
        }
        if claims.exp + LEEWAY_SECS <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf - LEEWAY_SECS > now {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = B64.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

fn verify_signature(key: &KeyMaterial, input: &[u8], signature: &[u8]) -> Result<(), TokenError> {
    match key {
        KeyMaterial::Ed25519(signing) => {
            let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|_| TokenError::BadSignature)?;
            signing.verifying_key().verify(input, &signature).map_err(|_| TokenError::BadSignature)
        }
        KeyMaterial::Hmac(secret) => {
            // verify_slice compares in constant time.
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| TokenError::BadSignature)?;
            mac.update(input);
            mac.verify_slice(signature).map_err(|_| TokenError::BadSignature)
        }
    }
}

fn hmac_sha256(secret: &[u8], input: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail here.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
