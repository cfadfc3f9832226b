//! Parser fuzzing on the stable toolchain: coverage-free, seeded mutation loops over the four
//! parsers that take bytes from outside (access tokens, page cursors, import lines, stored
//! password hashes). Each input is a valid example bent by random edits (bit flips, byte and
//! character insertions, deletions, duplications, splices of two examples, truncation) or
//! plain random text. The properties: nothing panics, and anything a parser accepts from a
//! signed input is exactly what was signed.
//!
//! `cargo test --test fuzz` runs a short pass (CI runs it). A long one:
//! `TESSERA_FUZZ_ITERATIONS=2000000 cargo test --release --test fuzz -- --nocapture`, and
//! `TESSERA_FUZZ_SEED=N` repeats a run (the seed is printed on failure).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera::domain::jwt::{AccessClaims, KeyMaterial, KeyRing};
use tessera::domain::time::Timestamp;
use tessera::service::cursor::Cursors;
use tessera::service::hashing::{StoredHash, needs_rehash};
use tessera::service::import::record::{Allowances, UserRecord};

/// Iterations per parser in the short pass.
const SHORT: u64 = 5_000;

/// splitmix64: small, fast, and the same sequence for the same seed on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes worth inserting: structure characters of the formats, and troublemakers.
const INTERESTING: &[&[u8]] = &[
    b".",
    b"$",
    b"=",
    b"\"",
    b",",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"\\",
    b"\0",
    b"\n",
    b"\r",
    b"-",
    b"_",
    b"+",
    b"/",
    b"%",
    b"null",
    b"true",
    b"1e999",
    b"-1",
    b"99999999999999999999",
    "é".as_bytes(),
    "\u{202e}".as_bytes(),
    "\u{ffff}".as_bytes(),
    b"\xff",
    b"\xc3",
    b"==",
    b"AAAA",
];

/// One input: an example bent by a few edits, or random text.
fn mutate(rng: &mut Rng, examples: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(20) == 0 {
        return (0..rng.below(200)).map(|_| rng.next() as u8).collect();
    }
    let mut input = examples[rng.below(examples.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(8) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(at, rng.next() as u8),
            2 if at < input.len() => {
                let end = (at + 1 + rng.below(8)).min(input.len());
                input.drain(at..end);
            }
            3 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                input.splice(at..at, piece.iter().copied());
            }
            4 if at < input.len() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                let copy = input[at..end].to_vec();
                input.splice(at..at, copy);
            }
            5 => {
                let other = &examples[rng.below(examples.len())];
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            6 => input.truncate(at),
            _ if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] = input[i].wrapping_add(1);
            }
            _ => {}
        }
    }
    input
}

/// Runs `check` on `iterations` inputs made from `examples`; a panic fails the test with the
/// seed and the input that caused it.
fn fuzz(name: &str, examples: &[Vec<u8>], mut check: impl FnMut(&[u8])) {
    let iterations = std::env::var("TESSERA_FUZZ_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(SHORT);
    let seed = std::env::var("TESSERA_FUZZ_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(0x07E5_5E8A);
    let mut rng = Rng(seed ^ name.bytes().fold(0_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
    for n in 0..iterations {
        let input = mutate(&mut rng, examples);
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            panic!(
                "{name}: iteration {n} (TESSERA_FUZZ_SEED={seed}) panicked on {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
    println!("{name}: {iterations} inputs, no panic");
}

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "https://id.example".into(),
        aud: "app".into(),
        sub: "019a0000-0000-7000-8000-000000000001".into(),
        sid: "019a0000-0000-7000-8000-000000000002".into(),
        role: "user".into(),
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: "019a0000-0000-7000-8000-000000000003".into(),
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
        scope: None,
    }
}

#[test]
fn access_tokens_never_panic_and_only_the_signed_claims_verify() {
    let now = 1_800_000_000;
    let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let ring = KeyRing::new(
        ("k1".into(), KeyMaterial::Ed25519(signing)),
        [("k0".into(), KeyMaterial::Hmac(b"a shared secret of thirty-two bytes!".to_vec()))],
    );
    let signed = claims(now);
    let token = ring.sign(&signed).unwrap();
    let other = ring.sign(&AccessClaims { role: "owner".into(), ..claims(now) }).unwrap();
    let examples = vec![token.into_bytes(), other.into_bytes(), b"e30.e30.".to_vec()];
    fuzz("access token", &examples, |input| {
        let Ok(text) = std::str::from_utf8(input) else { return };
        if let Ok(verified) = ring.verify(text, "https://id.example", "app", now) {
            let owner = AccessClaims { role: "owner".into(), ..claims(now) };
            assert!(verified == signed || verified == owner, "a bent token verified as {verified:?}");
        }
    });
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Position {
    c: i64,
    id: String,
}

#[test]
fn cursors_never_panic_and_only_the_signed_position_decodes() {
    let cursors = Cursors::new(SecretString::from("a cursor key of some length"));
    let position = Position { c: 1_700_000_000_000_000, id: "019a0000-0000-7000-8000-000000000001".into() };
    let examples = vec![cursors.encode(&position).into_bytes(), cursors.encode(&json!({"q": "ada"})).into_bytes()];
    fuzz("cursor", &examples, |input| {
        let Ok(text) = std::str::from_utf8(input) else { return };
        if let Ok(decoded) = cursors.decode::<Position>(text) {
            assert_eq!(decoded, position, "a bent cursor decoded");
        }
        let _ = cursors.decode::<Value>(text);
    });
}

#[test]
fn import_lines_never_panic() {
    let examples: Vec<Vec<u8>> = [
        json!({"username": "ann", "email": "ann@example.com", "email_verified": true, "first_name": "Ann",
               "metadata": {"plan": "pro"}, "created_at": "2021-03-04T05:06:07.123456Z",
               "password_hash": "$2b$04$vqfJ6dMJ1575O/L1hrNSXeaQXLmyX48KFfu.iS6THUQA53nQ8lMj."}),
        json!({"id": "019a0000-0000-7000-8000-000000000001", "username": "bob", "password": "correct horse battery",
               "role": "admin", "status": "disabled", "phone": "+44 20 7946 0958", "last_login_at": "2024-01-01 00:00:00"}),
        json!({"email": "cat@example.com", "email_verified": "t", "email_verified_at": "2020-01-01T00:00:00+02:00",
               "password_hash": "pbkdf2:sha256:600000$salt$0123456789abcdef", "pending_email": "new@example.com"}),
    ]
    .iter()
    .map(|line| line.to_string().into_bytes())
    .collect();
    let allow = Allowances { legacy_digests: true, ..Allowances::default() };
    let now = Timestamp::from_micros(1_700_000_000_000_000);
    fuzz("import line", &examples, |input| {
        if let Ok(record) = serde_json::from_slice::<UserRecord>(input) {
            let _ = record.into_account(&allow, now);
        }
    });
}

#[test]
fn stored_password_hashes_never_panic() {
    let vectors = include_str!("../data/password_hashes.jsonl");
    let examples: Vec<Vec<u8>> = vectors
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|vector| vector["password_hash"].as_str().map(|hash| hash.as_bytes().to_vec()))
        .filter(|hash| !hash.is_empty())
        .collect();
    assert!(examples.len() >= 40, "{} examples", examples.len());
    fuzz("stored hash", &examples, |input| {
        let Ok(text) = std::str::from_utf8(input) else { return };
        if let Ok(parsed) = StoredHash::parse(text) {
            let _ = parsed.scheme();
        }
        let _ = needs_rehash(text);
    });
}
