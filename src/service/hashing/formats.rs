//! Every stored password hash format tessera verifies, read from its string.
//!
//! | form | made by |
//! |---|---|
//! | `$argon2id$…`, `$argon2i$…`, `$argon2d$…` | tessera, argon2-cffi, any PHC writer |
//! | `$2a$…`, `$2b$…`, `$2y$…` | bcrypt (C, Python, PHP) |
//! | `pbkdf2:sha256:N$salt$hex`, `pbkdf2:sha512:…`, `scrypt:N:r:p$salt$hex` | Werkzeug |
//! | `pbkdf2_sha256$…`, `pbkdf2_sha1$…`, `argon2$…`, `bcrypt_sha256$…`, `bcrypt$…`, `scrypt$…` | Django |
//! | `$pbkdf2-sha256$…`, `$pbkdf2-sha512$…`, `$pbkdf2$…`, `$scrypt$…` | passlib, PHC writers |
//! | `firebase-scrypt$…` | tessera's import of Firebase accounts |
//! | `legacy-md5$…`, `legacy-sha1$…` | tessera's import of unsafe digests, wrapped |
//!
//! Unsafe digests as the old application stored them (bare MD5 or SHA-1 hex, Django's
//! `md5$salt$hex`) are read too, but only so that the import can wrap them: as they are,
//! they never verify.

use argon2::Block;

use super::argon::ArgonHash;
use super::firebase::FirebaseHash;
use super::kdf::{Bcrypt, Pbkdf2, Scrypt};
use super::legacy::{Digest, Wrapped};
use super::refusal::Refusal;

/// A stored password hash, read.
pub enum StoredHash<'a> {
    Argon2(ArgonHash<'a>),
    Bcrypt(Bcrypt<'a>),
    Pbkdf2(Pbkdf2),
    Scrypt(Scrypt),
    Firebase(FirebaseHash),
    Wrapped(Wrapped<'a>),
    /// An unsafe digest, not yet wrapped.
    Digest(Digest<'a>),
}

impl<'a> StoredHash<'a> {
    /// Reads `stored` in whichever format its prefix names; costs beyond the limits are refused.
    pub fn parse(stored: &'a str) -> Result<Self, Refusal> {
        let hash = if stored.starts_with("$argon2") {
            Self::Argon2(ArgonHash::parse(stored)?)
        } else if let Some(phc) = stored.strip_prefix("argon2").filter(|phc| phc.starts_with("$argon2")) {
            Self::Argon2(ArgonHash::parse(phc)?)
        } else if stored.starts_with("$2") {
            Self::Bcrypt(Bcrypt::parse(stored, false)?)
        } else if let Some(rest) = stored.strip_prefix("bcrypt_sha256$") {
            Self::Bcrypt(Bcrypt::parse(rest, true)?)
        } else if let Some(rest) = stored.strip_prefix("bcrypt$") {
            Self::Bcrypt(Bcrypt::parse(rest, false)?)
        } else if let Some(rest) = stored.strip_prefix("pbkdf2:") {
            Self::Pbkdf2(Pbkdf2::werkzeug(rest)?)
        } else if stored.starts_with("pbkdf2_") {
            Self::Pbkdf2(Pbkdf2::django(stored)?)
        } else if stored.starts_with("$pbkdf2") {
            Self::Pbkdf2(Pbkdf2::passlib(stored)?)
        } else if let Some(rest) = stored.strip_prefix("scrypt:") {
            Self::Scrypt(Scrypt::werkzeug(rest)?)
        } else if let Some(rest) = stored.strip_prefix("scrypt$") {
            Self::Scrypt(Scrypt::django(rest)?)
        } else if stored.starts_with("$scrypt$") {
            Self::Scrypt(Scrypt::phc(stored)?)
        } else if let Some(rest) = stored.strip_prefix("firebase-scrypt$") {
            Self::Firebase(FirebaseHash::parse(rest)?)
        } else if let Some(rest) = stored.strip_prefix("legacy-") {
            Self::Wrapped(Wrapped::parse(rest)?)
        } else {
            Self::Digest(Digest::parse(stored).ok_or(Refusal::Unknown)?)
        };
        Ok(hash)
    }

    /// The format's name, for the import's summary and the audit trail.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Argon2(_) => "argon2",
            Self::Bcrypt(hash) => hash.scheme(),
            Self::Pbkdf2(hash) => hash.scheme(),
            Self::Scrypt(hash) => hash.scheme(),
            Self::Firebase(_) => "firebase-scrypt",
            Self::Wrapped(hash) => hash.scheme(),
            Self::Digest(hash) => hash.scheme(),
        }
    }

    /// Whether `password` is the one this hash was made from, compared in constant time. An
    /// unwrapped digest never matches.
    pub fn verify(&self, password: &[u8], memory: &mut Vec<Block>) -> bool {
        match self {
            Self::Argon2(hash) => hash.verify(password, memory),
            Self::Bcrypt(hash) => hash.verify(password),
            Self::Pbkdf2(hash) => hash.verify(password),
            Self::Scrypt(hash) => hash.verify(password),
            Self::Firebase(hash) => hash.verify(password),
            Self::Wrapped(hash) => hash.verify(password, memory),
            Self::Digest(_) => false,
        }
    }
}

/// Whether a stored hash is anything but today's Argon2id with today's parameters, and should be
/// replaced at the next successful login.
pub fn needs_rehash(stored: &str) -> bool {
    let current = stored.starts_with("$argon2id$")
        && matches!(StoredHash::parse(stored), Ok(StoredHash::Argon2(hash)) if hash.is_current());
    !current
}

#[cfg(test)]
#[path = "formats_tests.rs"]
mod tests;
