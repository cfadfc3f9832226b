//! Unsafe digests: MD5 or SHA-1 of the password, unsalted or salted (bare hex, `md5$$hex`,
//! `sha1$$hex`, and `md5$salt$hex` / `sha1$salt$hex`, which Django made as the digest of salt
//! then password and Werkzeug before 2.3 as an HMAC keyed by the salt: the import is told
//! which). One of the apps tessera replaces stored these; a leaked table of them is cracked in
//! hours.
//!
//! They are imported only when the operator allows it, and never stored as they are: the hex
//! digest is hashed again with today's Argon2id ("wrapped"), as `legacy-md5$salt$<argon2 PHC>`
//! (or `legacy-hmac-md5$…` for Werkzeug's).
//! A login computes the digest of the presented password, verifies it against the Argon2 hash,
//! and on success the account gets an ordinary Argon2id hash of the password itself.

use hmac::{Hmac, Mac as _};
use md5::Md5;
use sha1::Sha1;
use sha2::Digest as _;

use super::argon::ArgonHash;
use super::refusal::Refusal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Sha1,
}

impl Algorithm {
    fn named(name: &str) -> Option<Self> {
        match name {
            "md5" => Some(Self::Md5),
            "sha1" => Some(Self::Sha1),
            _ => None,
        }
    }

    fn scheme(self, hmac: bool) -> &'static str {
        match (self, hmac) {
            (Self::Md5, false) => "legacy-md5",
            (Self::Sha1, false) => "legacy-sha1",
            (Self::Md5, true) => "legacy-hmac-md5",
            (Self::Sha1, true) => "legacy-hmac-sha1",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Md5 => 32,
            Self::Sha1 => 40,
        }
    }

    /// The lower-case hex digest of `salt` followed by `password`, or with `hmac` the HMAC of
    /// `password` keyed by `salt`.
    fn hex_digest(self, salt: &str, password: &[u8], hmac: bool) -> String {
        let key = salt.as_bytes();
        match (self, hmac) {
            (Self::Md5, false) => hex::encode(Md5::new().chain_update(salt).chain_update(password).finalize()),
            (Self::Sha1, false) => hex::encode(Sha1::new().chain_update(salt).chain_update(password).finalize()),
            (Self::Md5, true) => Hmac::<Md5>::new_from_slice(key)
                .map(|mac| hex::encode(mac.chain_update(password).finalize().into_bytes()))
                .unwrap_or_default(),
            (Self::Sha1, true) => Hmac::<Sha1>::new_from_slice(key)
                .map(|mac| hex::encode(mac.chain_update(password).finalize().into_bytes()))
                .unwrap_or_default(),
        }
    }
}

/// An unsafe digest as the old application stored it. Never verified as it is.
#[derive(Debug, Clone)]
pub struct Digest<'a> {
    algorithm: Algorithm,
    salt: &'a str,
    hex: String,
    /// Werkzeug's HMAC rather than Django's salt-then-password.
    hmac: bool,
}

impl<'a> Digest<'a> {
    /// Reads bare hex (32 digits: MD5, 40: SHA-1) or `md5$salt$hex` / `sha1$salt$hex`.
    pub(super) fn parse(stored: &'a str) -> Option<Self> {
        let (algorithm, salt, hex) = match stored.split('$').collect::<Vec<_>>().as_slice() {
            [hex] if hex.len() == 32 => (Algorithm::Md5, "", *hex),
            [hex] if hex.len() == 40 => (Algorithm::Sha1, "", *hex),
            [name, salt, hex] => (Algorithm::named(name)?, *salt, *hex),
            _ => return None,
        };
        let is_hex = hex.len() == algorithm.hex_len() && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let plain_salt = salt.len() <= 64 && !salt.contains(char::is_control);
        (is_hex && plain_salt).then(|| Self { algorithm, salt, hex: hex.to_ascii_lowercase(), hmac: false })
    }

    /// The format's name: `legacy-md5`, `legacy-hmac-sha1`, …
    pub fn scheme(&self) -> &'static str {
        self.algorithm.scheme(self.hmac)
    }

    /// Whether a salt went into it: then how (Django's way or Werkzeug's) must be said.
    pub fn is_salted(&self) -> bool {
        !self.salt.is_empty()
    }

    /// The same digest read as Werkzeug (before 2.3) made it: an HMAC keyed by the salt.
    pub fn made_by_werkzeug(self) -> Self {
        Self { hmac: true, ..self }
    }

    /// What gets hashed with Argon2id in its place: the hex digest.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The stored form, given the Argon2id PHC string of [`Digest::hex`].
    pub fn wrapped(&self, argon2_of_hex: &str) -> String {
        format!("{}${}${argon2_of_hex}", self.scheme(), self.salt)
    }
}

/// A wrapped digest, read from its stored form.
pub struct Wrapped<'a> {
    algorithm: Algorithm,
    salt: &'a str,
    hmac: bool,
    inner: ArgonHash<'a>,
}

impl<'a> Wrapped<'a> {
    /// Reads what follows `legacy-`: `md5$salt$<argon2 PHC>` or `hmac-md5$…`.
    pub(super) fn parse(rest: &'a str) -> Result<Self, Refusal> {
        let bad = Refusal::Malformed("not a wrapped legacy digest");
        let (hmac, rest) = rest.strip_prefix("hmac-").map_or((false, rest), |rest| (true, rest));
        let (name, rest) = rest.split_once('$').ok_or(bad.clone())?;
        let (salt, phc) = rest.split_once('$').ok_or(bad.clone())?;
        let algorithm = Algorithm::named(name).ok_or(bad)?;
        Ok(Self { algorithm, salt, hmac, inner: ArgonHash::parse(phc)? })
    }

    pub(super) fn scheme(&self) -> &'static str {
        self.algorithm.scheme(self.hmac)
    }

    pub(super) fn verify(&self, password: &[u8], memory: &mut Vec<argon2::Block>) -> bool {
        let digest = self.algorithm.hex_digest(self.salt, password, self.hmac);
        self.inner.verify(digest.as_bytes(), memory)
    }
}
