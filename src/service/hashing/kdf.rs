//! bcrypt, PBKDF2 and scrypt hashes in the forms Werkzeug, Django and passlib write them.
//! The primitives are RustCrypto's (`pbkdf2`, `scrypt`) and the `bcrypt` crate; only the
//! strings around them are read here.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest as _, Sha256, Sha512};
use subtle::ConstantTimeEq as _;

use super::refusal::Refusal;

// Every wrong password against an imported hash costs its full price, so each format's cost is
// bounded to about a second of one core: what the applications tessera replaces use by default
// fits, and a few accounts with absurd parameters cannot pin the hashing threads.

/// bcrypt cost 14 is about a second (cost 12, the common default, a quarter of that).
const MAX_BCRYPT_COST: u32 = 14;
/// PBKDF2 blocks times iterations: Werkzeug's and Django's 1,000,000-1,200,000 iterations of
/// one block fit, about 0.4 s.
const MAX_PBKDF2_WORK: u64 = 2_000_000;
/// Fewer iterations than this are no better than the salted digests refused as unsafe.
const MIN_PBKDF2_ITERATIONS: u32 = 1_000;
/// scrypt's memory, 128·r·N bytes: 128 MiB at most (Werkzeug's default is 32 MiB)…
const MAX_SCRYPT_BYTES: u128 = 128 << 20;
/// …and its work, memory times lanes: 256 MiB (Django's default, 16 MiB × 5 lanes, fits).
const MAX_SCRYPT_WORK: u128 = 256 << 20;

/// `text` split at `separator` into exactly `N` parts.
pub(super) fn fields<const N: usize>(text: &str, separator: char) -> Option<[&str; N]> {
    let parts: Vec<&str> = text.split(separator).collect();
    parts.try_into().ok()
}

/// passlib's "adapted base64" (`.` for `+`, no padding), which also reads standard PHC base64.
fn ab64(text: &str) -> Result<Vec<u8>, Refusal> {
    STANDARD_NO_PAD.decode(text.replace('.', "+")).map_err(|_| Refusal::Malformed("unreadable base64"))
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, Refusal> {
    text.parse().map_err(|_| Refusal::Malformed("unreadable number"))
}

fn checked_output(expected: Vec<u8>) -> Result<Vec<u8>, Refusal> {
    if (16..=64).contains(&expected.len()) { Ok(expected) } else { Err(Refusal::Malformed("hash of an odd length")) }
}

/// `$2a$`, `$2b$` or `$2y$` (one algorithm under three names), optionally behind Django's
/// `bcrypt$` or `bcrypt_sha256$` (which hashes the SHA-256 hex digest of the password instead,
/// to escape bcrypt's 72-byte limit).
pub struct Bcrypt<'a> {
    hash: &'a str,
    sha256_first: bool,
}

impl<'a> Bcrypt<'a> {
    pub(super) fn parse(hash: &'a str, sha256_first: bool) -> Result<Self, Refusal> {
        let [empty, ident, cost, rest] = fields::<4>(hash, '$').ok_or(Refusal::Malformed("not a bcrypt hash"))?;
        let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
        if !empty.is_empty() || !matches!(ident, "2a" | "2b" | "2y") || cost.len() != 2 || rest.len() != 53 {
            return Err(Refusal::Malformed("not a $2a$, $2b$ or $2y$ bcrypt hash"));
        }
        if !rest.bytes().all(alphabet) {
            return Err(Refusal::Malformed("bcrypt hash with characters outside its alphabet"));
        }
        let cost: u32 = number(cost)?;
        if !(4..=31).contains(&cost) {
            return Err(Refusal::Malformed("bcrypt cost outside 4..=31"));
        }
        if cost > MAX_BCRYPT_COST {
            return Err(Refusal::TooCostly(format!("bcrypt cost {cost} is over the limit {MAX_BCRYPT_COST}")));
        }
        Ok(Self { hash, sha256_first })
    }

    pub(super) fn scheme(&self) -> &'static str {
        if self.sha256_first { "django-bcrypt-sha256" } else { "bcrypt" }
    }

    /// bcrypt reads at most 72 bytes of the password, as every implementation that made these
    /// hashes did; the comparison inside the crate is constant-time.
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        if self.sha256_first {
            let digest = hex::encode(Sha256::digest(password));
            bcrypt::verify(digest.as_bytes(), self.hash).unwrap_or(false)
        } else {
            bcrypt::verify(password, self.hash).unwrap_or(false)
        }
    }
}

#[derive(Clone, Copy)]
enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

impl Prf {
    /// The digest's length: one PBKDF2 block.
    fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    fn named(name: &str) -> Result<Self, Refusal> {
        match name {
            "sha1" => Ok(Self::Sha1),
            "sha256" => Ok(Self::Sha256),
            "sha512" => Ok(Self::Sha512),
            _ => Err(Refusal::Malformed("PBKDF2 with a digest other than SHA-1, SHA-256 or SHA-512")),
        }
    }
}

/// PBKDF2-HMAC as Werkzeug (`pbkdf2:sha256:N$salt$hex`), Django (`pbkdf2_sha256$N$salt$b64`)
/// and passlib (`$pbkdf2-sha256$N$ab64salt$ab64hash`) store it.
pub struct Pbkdf2 {
    scheme: &'static str,
    prf: Prf,
    iterations: u32,
    salt: Vec<u8>,
    expected: Vec<u8>,
}

impl Pbkdf2 {
    /// Werkzeug, after its `pbkdf2:`: `sha256:600000$salt$hex`. The salt is used as text.
    pub(super) fn werkzeug(rest: &str) -> Result<Self, Refusal> {
        let bad = Refusal::Malformed("not a Werkzeug pbkdf2 hash");
        let [method, salt, hash] = fields::<3>(rest, '$').ok_or(bad.clone())?;
        let [digest, iterations] = fields::<2>(method, ':').ok_or(bad)?;
        let expected = hex::decode(hash).map_err(|_| Refusal::Malformed("unreadable hex"))?;
        Self::new("werkzeug-pbkdf2", Prf::named(digest)?, number(iterations)?, salt.as_bytes().to_vec(), expected)
    }

    /// Django's `pbkdf2_sha256$N$salt$b64` or `pbkdf2_sha1$…`. The salt is used as text.
    pub(super) fn django(stored: &str) -> Result<Self, Refusal> {
        let [algorithm, iterations, salt, hash] =
            fields::<4>(stored, '$').ok_or(Refusal::Malformed("not a Django pbkdf2 hash"))?;
        let prf = Prf::named(algorithm.trim_start_matches("pbkdf2_"))?;
        let expected = STANDARD.decode(hash).map_err(|_| Refusal::Malformed("unreadable base64"))?;
        Self::new("django-pbkdf2", prf, number(iterations)?, salt.as_bytes().to_vec(), expected)
    }

    /// passlib's `$pbkdf2-sha256$N$salt$hash`, `$pbkdf2-sha512$…` and `$pbkdf2$…` (SHA-1).
    pub(super) fn passlib(stored: &str) -> Result<Self, Refusal> {
        let [empty, ident, iterations, salt, hash] =
            fields::<5>(stored, '$').ok_or(Refusal::Malformed("not a passlib pbkdf2 hash"))?;
        let prf = match ident {
            "pbkdf2" => Prf::Sha1,
            _ => Prf::named(ident.strip_prefix("pbkdf2-").unwrap_or(ident))?,
        };
        if !empty.is_empty() {
            return Err(Refusal::Malformed("not a passlib pbkdf2 hash"));
        }
        Self::new("passlib-pbkdf2", prf, number(iterations)?, ab64(salt)?, ab64(hash)?)
    }

    fn new(scheme: &'static str, prf: Prf, iterations: u32, salt: Vec<u8>, expected: Vec<u8>) -> Result<Self, Refusal> {
        if salt.is_empty() {
            return Err(Refusal::Malformed("PBKDF2 without a salt"));
        }
        if iterations < MIN_PBKDF2_ITERATIONS {
            return Err(Refusal::TooWeak(format!(
                "PBKDF2 with {iterations} iterations (at least {MIN_PBKDF2_ITERATIONS})"
            )));
        }
        let expected = checked_output(expected)?;
        let blocks = expected.len().div_ceil(prf.output_len()) as u64;
        if u64::from(iterations) * blocks > MAX_PBKDF2_WORK {
            return Err(Refusal::TooCostly(format!(
                "PBKDF2 with {iterations} iterations of {blocks} blocks is over the limit of {MAX_PBKDF2_WORK}"
            )));
        }
        Ok(Self { scheme, prf, iterations, salt, expected })
    }

    pub(super) fn scheme(&self) -> &'static str {
        self.scheme
    }

    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let mut output = vec![0_u8; self.expected.len()];
        let (salt, rounds) = (&self.salt, self.iterations);
        match self.prf {
            Prf::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, rounds, &mut output),
            Prf::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, rounds, &mut output),
            Prf::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, rounds, &mut output),
        }
        bool::from(output.as_slice().ct_eq(&self.expected))
    }
}

/// scrypt as Werkzeug (`scrypt:N:r:p$salt$hex`), Django (`scrypt$N$salt$r$p$b64`) and PHC
/// strings (`$scrypt$ln=16,r=8,p=1$salt$hash`, passlib's and RustCrypto's) store it.
pub struct Scrypt {
    scheme: &'static str,
    params: ScryptCost,
    salt: Vec<u8>,
    expected: Vec<u8>,
}

/// scrypt's cost: N = 2^log_n, block size r, lanes p.
#[derive(Clone, Copy)]
pub struct ScryptCost {
    pub(super) log_n: u8,
    pub(super) r: u32,
    pub(super) p: u32,
}

impl ScryptCost {
    fn from_n(n: u64, r: u32, p: u32) -> Result<Self, Refusal> {
        if !n.is_power_of_two() || n < 2 {
            return Err(Refusal::Malformed("scrypt N must be a power of two"));
        }
        Self::checked(n.trailing_zeros() as u8, r, p)
    }

    /// Refuses costs beyond the limits, and any the `scrypt` crate would not run.
    pub(super) fn checked(log_n: u8, r: u32, p: u32) -> Result<Self, Refusal> {
        if log_n == 0 || log_n >= 32 || r == 0 || p == 0 {
            return Err(Refusal::Malformed("unusable scrypt parameters"));
        }
        let bytes = (128 * u128::from(r)) << log_n;
        if bytes > MAX_SCRYPT_BYTES || bytes * u128::from(p) > MAX_SCRYPT_WORK {
            return Err(Refusal::TooCostly(format!(
                "scrypt N=2^{log_n}, r={r}, p={p} is over the limit of 128 MiB, and 256 MiB times lanes"
            )));
        }
        scrypt::Params::new(log_n, r, p, scrypt::Params::RECOMMENDED_LEN)
            .map_err(|_| Refusal::Malformed("unusable scrypt parameters"))?;
        Ok(Self { log_n, r, p })
    }

    /// scrypt of `password` and `salt` into `output`.
    pub(super) fn derive(self, password: &[u8], salt: &[u8], output: &mut [u8]) -> bool {
        scrypt::Params::new(self.log_n, self.r, self.p, scrypt::Params::RECOMMENDED_LEN)
            .is_ok_and(|params| scrypt::scrypt(password, salt, &params, output).is_ok())
    }
}

impl Scrypt {
    /// Werkzeug, after its `scrypt:`: `32768:8:1$salt$hex`. The salt is used as text.
    pub(super) fn werkzeug(rest: &str) -> Result<Self, Refusal> {
        let bad = Refusal::Malformed("not a Werkzeug scrypt hash");
        let [cost, salt, hash] = fields::<3>(rest, '$').ok_or(bad.clone())?;
        let [n, r, p] = fields::<3>(cost, ':').ok_or(bad)?;
        let params = ScryptCost::from_n(number(n)?, number(r)?, number(p)?)?;
        let expected = hex::decode(hash).map_err(|_| Refusal::Malformed("unreadable hex"))?;
        Self::new("werkzeug-scrypt", params, salt.as_bytes().to_vec(), expected)
    }

    /// Django, after its `scrypt$`: `N$salt$r$p$b64`. The salt is used as text.
    pub(super) fn django(rest: &str) -> Result<Self, Refusal> {
        let [n, salt, r, p, hash] = fields::<5>(rest, '$').ok_or(Refusal::Malformed("not a Django scrypt hash"))?;
        let params = ScryptCost::from_n(number(n)?, number(r)?, number(p)?)?;
        let expected = STANDARD.decode(hash).map_err(|_| Refusal::Malformed("unreadable base64"))?;
        Self::new("django-scrypt", params, salt.as_bytes().to_vec(), expected)
    }

    /// A PHC string: `$scrypt$ln=16,r=8,p=1$salt$hash`, salt and hash in (adapted) base64.
    pub(super) fn phc(stored: &str) -> Result<Self, Refusal> {
        let bad = Refusal::Malformed("not a $scrypt$ PHC string");
        let [empty, ident, cost, salt, hash] = fields::<5>(stored, '$').ok_or(bad.clone())?;
        let [ln, r, p] = fields::<3>(cost, ',').ok_or(bad.clone())?;
        let value = |pair: &str, name: &str| pair.strip_prefix(name).ok_or(bad.clone()).and_then(number::<u32>);
        if !empty.is_empty() || ident != "scrypt" {
            return Err(bad);
        }
        let log_n = u8::try_from(value(ln, "ln=")?).map_err(|_| Refusal::Malformed("scrypt ln out of range"))?;
        let params = ScryptCost::checked(log_n, value(r, "r=")?, value(p, "p=")?)?;
        Self::new("phc-scrypt", params, ab64(salt)?, ab64(hash)?)
    }

    fn new(scheme: &'static str, params: ScryptCost, salt: Vec<u8>, expected: Vec<u8>) -> Result<Self, Refusal> {
        if salt.is_empty() {
            return Err(Refusal::Malformed("scrypt without a salt"));
        }
        Ok(Self { scheme, params, salt, expected: checked_output(expected)? })
    }

    pub(super) fn scheme(&self) -> &'static str {
        self.scheme
    }

    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let mut output = vec![0_u8; self.expected.len()];
        self.params.derive(password, &self.salt, &mut output) && bool::from(output.as_slice().ct_eq(&self.expected))
    }
}
