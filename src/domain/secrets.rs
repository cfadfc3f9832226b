//! Opaque secrets handed to clients (refresh tokens, later verification and reset tokens):
//! 256 random bits, shown once, stored only as a SHA-256 digest.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A fresh random token, URL-safe base64 (43 characters).
pub fn new_token() -> SecretString {
    let mut bytes = [0_u8; 32];
    OsRng.fill_bytes(&mut bytes);
    SecretString::from(B64.encode(bytes))
}

/// The digest under which a token is stored and looked up (hex SHA-256). Looking up by
/// digest means the comparison happens on a value an attacker cannot choose byte by byte.
pub fn digest(token: &SecretString) -> String {
    sha256_hex(token.expose_secret().as_bytes())
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A master key as an operator writes it: 32 bytes in standard or URL-safe base64, padded or not.
pub fn decode_master_key(text: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::STANDARD;
    let text = text.trim();
    let bytes = STANDARD.decode(text).ok().or_else(|| B64.decode(text.trim_end_matches('=')).ok())?;
    bytes.try_into().ok()
}

/// 32 random bytes, for key material.
pub fn random_bytes() -> [u8; 32] {
    let mut bytes = [0_u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_digested() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.expose_secret().len(), 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(digest(&a).len(), 64);
        assert_eq!(digest(&a), digest(&a.clone()));
        assert_ne!(digest(&a), digest(&b));
    }
}
