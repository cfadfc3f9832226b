//! Password hashing on a bounded pool.
//!
//! Argon2id at m=19 MiB, t=2 costs about 19 ms of one core and 19 MiB of memory per call. Run
//! on the async workers it would stall every other request; run unbounded, a login flood would
//! exhaust memory. So each call waits for one of `concurrency` permits and then runs on the
//! blocking pool, and no more than [`PasswordHasher::MAX_WAITING`] calls may wait at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::error::Error;

/// Memory cost in KiB (19 MiB), time cost and parallelism: OWASP's first Argon2id choice.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// A well-formed hash with today's parameters that no password is known to match. A login that
/// names no account is verified against it, so that the answer costs the same as a wrong password.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$y0t/AGQW2aVt+Lp4eQkExDtz8Q3mS5K7M4Q7mNe0Mzo";

/// Runs Argon2id hashing and verification with bounded concurrency and a bounded queue.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Semaphore,
    concurrency: usize,
    waiting: AtomicUsize,
}

impl PasswordHasher {
    /// How many calls may wait for a permit before new ones are refused as overload.
    pub const MAX_WAITING: usize = 1024;

    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            inner: Arc::new(Inner { permits: Semaphore::new(concurrency), concurrency, waiting: AtomicUsize::new(0) }),
        }
    }

    /// Calls waiting for a permit right now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Calls running right now.
    pub fn busy(&self) -> usize {
        self.inner.concurrency - self.inner.permits.available_permits()
    }

    /// The pool's size.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, Error> {
        self.run(move || hash_now(&password)).await?
    }

    /// Checks a password against a stored PHC string; with `None` (no such account) it checks
    /// against a dummy hash and answers `false`, at the same cost.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> Result<bool, Error> {
        self.run(move || {
            let known = stored.is_some();
            let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
            verify_now(&password, &hash) && known
        })
        .await
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
        let inner = &self.inner;
        if inner.waiting.fetch_add(1, Ordering::SeqCst) >= Self::MAX_WAITING {
            inner.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Overloaded);
        }
        let permit = inner.permits.acquire().await;
        inner.waiting.fetch_sub(1, Ordering::SeqCst);
        let _permit = permit.map_err(|_| Error::Internal("hash pool closed".into()))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(work))
            .instrument(tracing::Span::current())
            .await
            .map_err(|e| Error::Internal(format!("hash task failed: {e}")))
    }
}

fn argon2() -> Result<Argon2<'static>, Error> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes on the current thread; for the pool and for commands that run outside a server.
pub fn hash_now(password: &SecretString) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(format!("argon2 hash: {e}")))
}

/// Verifies on the current thread; any unreadable hash is a mismatch.
fn verify_now(password: &SecretString, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    // The parameters come from the stored string, so older hashes keep verifying.
    Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok()
}

/// Whether a stored hash was made with other parameters than today's and should be
/// replaced at the next successful login.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    let current = Params::try_from(&parsed).ok();
    parsed.algorithm.as_str() != "argon2id"
        || current.is_none_or(|p| p.m_cost() != MEMORY_KIB || p.t_cost() != ITERATIONS || p.p_cost() != PARALLELISM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_current_argon2id_hash() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!needs_rehash(DUMMY_HASH));
    }

    #[tokio::test]
    async fn hashes_verify_and_mismatches_do_not() {
        let hasher = PasswordHasher::new(1);
        let hash = hasher.hash(SecretString::from("correct horse")).await;
        let hash = hash.unwrap_or_default();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let ok = hasher.verify(SecretString::from("correct horse"), Some(hash.clone())).await;
        assert!(matches!(ok, Ok(true)));
        let bad = hasher.verify(SecretString::from("wrong horse"), Some(hash)).await;
        assert!(matches!(bad, Ok(false)));
        let unknown = hasher.verify(SecretString::from("x"), None).await;
        assert!(matches!(unknown, Ok(false)));
    }

    #[test]
    fn weaker_parameters_need_a_rehash() {
        let weak = "$argon2id$v=19$m=4096,t=1,p=1$bm90LWEtcmVhbC1zYWx0$y0t/AGQW2aVt+Lp4eQkExDtz8Q3mS5K7M4Q7mNe0Mzo";
        assert!(needs_rehash(weak));
        assert!(needs_rehash("plain"));
    }
}
