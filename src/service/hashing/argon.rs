//! Argon2: today's scheme (Argon2id, m=19 MiB, t=2, p=1) for every new hash, and any Argon2
//! PHC string made elsewhere (argon2-cffi, Django, other servers) for verification.

use argon2::password_hash::PasswordHash;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as PHC_B64;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq as _;

use super::refusal::Refusal;
use crate::service::error::Error;

/// Memory cost in KiB (19 MiB), time cost and parallelism: OWASP's first Argon2id choice.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;
const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

/// The most an imported Argon2 hash may cost to verify: 128 MiB (Django's default is 100 MiB),
/// 16 lanes, and 512 MiB of passes in all (argon2-cffi's 64 MiB × 3 and Django's 100 MiB × 2
/// fit): about half a second. A hash beyond it is refused at import, and never verified.
const MAX_MEMORY_KIB: u32 = 128 * 1024;
const MAX_WORK_KIB: u64 = 512 * 1024;
const MAX_LANES: u32 = 16;
/// The shortest salt the argon2 crate takes.
const MIN_SALT_BYTES: usize = 8;

/// A well-formed hash with today's parameters that no password is known to match. A login that
/// names no account is verified against it, so that the answer costs the same as a wrong password.
pub(super) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$y0t/AGQW2aVt+Lp4eQkExDtz8Q3mS5K7M4Q7mNe0Mzo";

/// Memory for one hash with today's parameters.
pub fn new_memory() -> Vec<Block> {
    vec![Block::default(); MEMORY_KIB as usize]
}

/// Gives back what a costlier imported hash made `memory` grow to, so that a hashing thread
/// holds today's 19 MiB between calls, not the largest hash it ever verified.
pub(super) fn shrink(memory: &mut Vec<Block>) {
    if memory.len() > MEMORY_KIB as usize {
        memory.truncate(MEMORY_KIB as usize);
        memory.shrink_to_fit();
    }
}

fn params(output: usize) -> Result<Params, Error> {
    Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, Some(output))
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))
}

/// Hashes with today's parameters into a PHC string, using (and growing if needed) `memory`.
pub fn hash_into(password: &SecretString, memory: &mut Vec<Block>) -> Result<String, Error> {
    let mut salt = [0_u8; SALT_BYTES];
    OsRng.fill_bytes(&mut salt);
    let params = params(OUTPUT_BYTES)?;
    ensure_capacity(memory, params.block_count());
    let mut output = [0_u8; OUTPUT_BYTES];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password.expose_secret().as_bytes(), &salt, &mut output, memory.as_mut_slice())
        .map_err(|e| Error::Internal(format!("argon2 hash: {e}")))?;
    Ok(format!(
        "$argon2id$v=19$m={MEMORY_KIB},t={ITERATIONS},p={PARALLELISM}${}${}",
        PHC_B64.encode(salt),
        PHC_B64.encode(output)
    ))
}

/// Hashes on the current thread with memory of its own (for commands and benchmarks).
pub fn hash_now(password: &SecretString) -> Result<String, Error> {
    hash_into(password, &mut Vec::new())
}

fn ensure_capacity(memory: &mut Vec<Block>, blocks: usize) {
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
}

/// An Argon2 PHC string, read and checked against the cost limits.
pub struct ArgonHash<'a> {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    expected: argon2::password_hash::Output,
    phc: PasswordHash<'a>,
}

impl<'a> ArgonHash<'a> {
    pub(super) fn parse(phc: &'a str) -> Result<Self, Refusal> {
        let parsed = PasswordHash::new(phc).map_err(|_| Refusal::Malformed("not a readable Argon2 PHC string"))?;
        let algorithm =
            Algorithm::try_from(parsed.algorithm).map_err(|_| Refusal::Malformed("unknown Argon2 variant"))?;
        let expected = parsed.hash.ok_or(Refusal::Malformed("no hash"))?;
        // A PHC string without `v=` predates version 1.3: the reference implementation reads it
        // as version 1.0 (0x10), and so must we.
        let version = parsed
            .version
            .map_or(Ok(Version::V0x10), Version::try_from)
            .map_err(|_| Refusal::Malformed("unknown Argon2 version"))?;
        let stored = Params::try_from(&parsed).map_err(|_| Refusal::Malformed("unreadable Argon2 parameters"))?;
        let work = u64::from(stored.m_cost()) * u64::from(stored.t_cost());
        if stored.m_cost() > MAX_MEMORY_KIB || work > MAX_WORK_KIB || stored.p_cost() > MAX_LANES {
            return Err(Refusal::TooCostly(format!(
                "Argon2 m={},t={},p={} is over the limit m≤{MAX_MEMORY_KIB}, m·t≤{MAX_WORK_KIB}, p≤{MAX_LANES}",
                stored.m_cost(),
                stored.t_cost(),
                stored.p_cost()
            )));
        }
        let params = Params::new(stored.m_cost(), stored.t_cost(), stored.p_cost(), Some(expected.len()))
            .map_err(|_| Refusal::Malformed("unusable Argon2 parameters"))?;
        let mut salt_buffer = [0_u8; 64];
        let salt = parsed.salt.ok_or(Refusal::Malformed("no salt"))?;
        let salt = salt.decode_b64(&mut salt_buffer).map_err(|_| Refusal::Malformed("unreadable salt"))?.to_vec();
        if salt.len() < MIN_SALT_BYTES {
            return Err(Refusal::Malformed("an Argon2 salt shorter than 8 bytes"));
        }
        Ok(Self { algorithm, version, params, salt, expected, phc: parsed })
    }

    /// Whether this is today's scheme with today's parameters.
    pub(super) fn is_current(&self) -> bool {
        self.algorithm == Algorithm::Argon2id
            && self.version == Version::V0x13
            && self.phc.algorithm.as_str() == "argon2id"
            && self.params.m_cost() == MEMORY_KIB
            && self.params.t_cost() == ITERATIONS
            && self.params.p_cost() == PARALLELISM
    }

    /// Constant-time comparison of `password`'s hash with the stored one.
    pub(super) fn verify(&self, password: &[u8], memory: &mut Vec<Block>) -> bool {
        ensure_capacity(memory, self.params.block_count());
        let mut output = vec![0_u8; self.expected.len()];
        let hashed = Argon2::new(self.algorithm, self.version, self.params.clone()).hash_password_into_with_memory(
            password,
            &self.salt,
            &mut output,
            memory.as_mut_slice(),
        );
        hashed.is_ok() && bool::from(output.as_slice().ct_eq(self.expected.as_bytes()))
    }
}
