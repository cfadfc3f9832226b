//! Firebase Authentication's modified scrypt (github.com/firebase/scrypt): scrypt of the
//! password with the account's salt and the project's salt separator gives a key; AES-256-CTR
//! with that key (and a zero counter) over the project's signer key gives the stored hash.
//!
//! The project's parameters come from the import's command line and are kept inside each
//! stored hash, so that verifying needs nothing else: `firebase-scrypt$rounds$mem_cost$
//! separator$signer_key$salt$hash`, all binary parts in standard base64.

use aes::cipher::{KeyIvInit as _, StreamCipher as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq as _;

use super::kdf::{ScryptCost, fields};
use super::refusal::Refusal;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// The shortest signer key taken (Firebase's are 64 bytes): the stored hash is as long as the
/// key, and a short one would match wrong passwords by chance.
const MIN_KEY_BYTES: usize = 32;

/// A Firebase project's password hash parameters, as its console shows them.
#[derive(Debug, Clone)]
pub struct FirebaseParams {
    signer_key: String,
    salt_separator: String,
    /// scrypt's r.
    rounds: u32,
    /// log2 of scrypt's N.
    mem_cost: u8,
}

impl FirebaseParams {
    /// Checks the console's values: both keys base64, the cost within the scrypt limits.
    pub fn new(signer_key: &str, salt_separator: &str, rounds: u32, mem_cost: u8) -> Result<Self, String> {
        let key = STANDARD.decode(signer_key).map_err(|_| "the signer key is not base64".to_owned())?;
        if key.len() < MIN_KEY_BYTES {
            return Err(format!("the signer key is shorter than {MIN_KEY_BYTES} bytes (Firebase's are 64)"));
        }
        STANDARD.decode(salt_separator).map_err(|_| "the salt separator is not base64".to_owned())?;
        ScryptCost::checked(mem_cost, rounds, 1).map_err(|refusal| refusal.to_string())?;
        Ok(Self { signer_key: signer_key.to_owned(), salt_separator: salt_separator.to_owned(), rounds, mem_cost })
    }

    /// The stored form of one exported account's `passwordHash` and `salt` (both base64).
    pub fn stored_hash(&self, hash: &str, salt: &str) -> Result<String, Refusal> {
        let (rounds, mem_cost) = (self.rounds, self.mem_cost);
        let stored =
            format!("firebase-scrypt${rounds}${mem_cost}${}${}${salt}${hash}", self.salt_separator, self.signer_key);
        FirebaseHash::parse(stored.trim_start_matches("firebase-scrypt$"))?;
        Ok(stored)
    }
}

/// A stored Firebase scrypt hash, read.
pub struct FirebaseHash {
    cost: ScryptCost,
    salt_and_separator: Vec<u8>,
    signer_key: Vec<u8>,
    expected: Vec<u8>,
}

impl FirebaseHash {
    /// Reads what follows `firebase-scrypt$`.
    pub(super) fn parse(rest: &str) -> Result<Self, Refusal> {
        let [rounds, mem_cost, separator, signer_key, salt, hash] =
            fields::<6>(rest, '$').ok_or(Refusal::Malformed("not a Firebase scrypt hash"))?;
        let decode = |text: &str| STANDARD.decode(text).map_err(|_| Refusal::Malformed("unreadable base64"));
        let rounds = rounds.parse().map_err(|_| Refusal::Malformed("unreadable rounds"))?;
        let mem_cost = mem_cost.parse().map_err(|_| Refusal::Malformed("unreadable memory cost"))?;
        let cost = ScryptCost::checked(mem_cost, rounds, 1)?;
        let mut salt_and_separator = decode(salt)?;
        salt_and_separator.extend(decode(separator)?);
        let (signer_key, expected) = (decode(signer_key)?, decode(hash)?);
        if expected.len() != signer_key.len() || signer_key.len() < MIN_KEY_BYTES {
            return Err(Refusal::Malformed("a Firebase hash is as long as the signer key, at least 32 bytes"));
        }
        Ok(Self { cost, salt_and_separator, signer_key, expected })
    }

    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let mut derived = [0_u8; 64];
        if !self.cost.derive(password, &self.salt_and_separator, &mut derived) {
            return false;
        }
        let mut block = self.signer_key.clone();
        let (key, counter) = (&derived[..32], [0_u8; 16]);
        let Ok(mut cipher) = Aes256Ctr::new_from_slices(key, &counter) else { return false };
        cipher.apply_keystream(&mut block);
        bool::from(block.as_slice().ct_eq(&self.expected))
    }
}
