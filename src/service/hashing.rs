//! Password hashing on a bounded pool of dedicated threads.
//!
//! Argon2id at m=19 MiB, t=2 costs about 19 ms of one core and 19 MiB of memory per call. Run
//! on the async workers it would stall every other request; run unbounded, a login flood would
//! exhaust memory. So hashing runs on `concurrency` threads of its own, each reusing one 19 MiB
//! buffer for every hash (no allocation, no page faults, no allocator arenas growing per thread),
//! fed by a queue of at most [`PasswordHasher::WAITING_PER_THREAD`] calls per thread (about
//! 0.6 s of work); beyond that a call is refused as overload (`503` with `Retry-After` for the
//! route that asked, while every route that hashes nothing goes on as before). Memory is therefore bounded by `concurrency × 19 MiB`, allocated on
//! first use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHash;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as PHC_B64;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq as _;
use tokio::sync::{mpsc, oneshot};

use super::error::Error;

/// Memory cost in KiB (19 MiB), time cost and parallelism: OWASP's first Argon2id choice.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;
const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

/// A well-formed hash with today's parameters that no password is known to match. A login that
/// names no account is verified against it, so that the answer costs the same as a wrong password.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$y0t/AGQW2aVt+Lp4eQkExDtz8Q3mS5K7M4Q7mNe0Mzo";

/// Work for a hashing thread, given that thread's reusable memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Runs Argon2id hashing and verification with bounded concurrency and a bounded queue.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: mpsc::Sender<Job>,
    concurrency: usize,
    busy: Arc<AtomicUsize>,
}

impl PasswordHasher {
    /// How many calls may wait per thread before new ones are refused as overload: a call
    /// that waits longer than a fraction of a second is better answered "try again" at once.
    pub const WAITING_PER_THREAD: usize = 32;

    /// Starts `concurrency` hashing threads; they end when the last clone is dropped.
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        let (jobs, receiver) = mpsc::channel::<Job>(concurrency * Self::WAITING_PER_THREAD);
        let receiver = Arc::new(Mutex::new(receiver));
        let busy = Arc::new(AtomicUsize::new(0));
        for n in 0..concurrency {
            let (receiver, busy) = (receiver.clone(), busy.clone());
            let spawned =
                std::thread::Builder::new().name(format!("tessera-hash-{n}")).spawn(move || work(&receiver, &busy));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password hashing thread");
            }
        }
        Self { inner: Arc::new(Inner { jobs, concurrency, busy }) }
    }

    /// Calls waiting for a thread right now.
    pub fn waiting(&self) -> usize {
        self.inner.jobs.max_capacity() - self.inner.jobs.capacity()
    }

    /// Calls running right now.
    pub fn busy(&self) -> usize {
        self.inner.busy.load(Ordering::Relaxed)
    }

    /// The pool's size.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, Error> {
        self.run(move |memory| hash_into(&password, memory)).await?
    }

    /// Checks a password against a stored PHC string; with `None` (no such account) it checks
    /// against a dummy hash and answers `false`, at the same cost.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> Result<bool, Error> {
        self.run(move |memory| {
            let known = stored.is_some();
            let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
            verify_with(&password, &hash, memory) && known
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |memory| {
            let outcome = span.in_scope(|| work(memory));
            let _ = reply.send(outcome);
        });
        self.inner.jobs.try_send(job).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => Error::Overloaded,
            mpsc::error::TrySendError::Closed(_) => Error::Internal("hash pool stopped".into()),
        })?;
        answer.await.map_err(|_| Error::Internal("a hashing thread failed".into()))
    }
}

/// One hashing thread: takes jobs until the pool is dropped, reusing one buffer. It runs at a
/// lower scheduling priority (nice 10), so that under a login flood the threads answering
/// other requests are served first, while hashing still gets every cycle they leave.
fn work(receiver: &Mutex<mpsc::Receiver<Job>>, busy: &AtomicUsize) {
    lower_priority();
    let mut memory = Vec::new();
    loop {
        let job = match receiver.lock() {
            Ok(mut receiver) => receiver.blocking_recv(),
            Err(_) => None,
        };
        let Some(job) = job else { return };
        busy.fetch_add(1, Ordering::Relaxed);
        job(&mut memory);
        busy.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    // thread-priority maps 0..=99 onto nice values; 22 is nice 10 on Linux (a test checks it).
    let lowered = ThreadPriorityValue::try_from(22_u8)
        .map_err(|e| e.to_string())
        .and_then(|value| ThreadPriority::Crossplatform(value).set_for_current().map_err(|e| format!("{e:?}")));
    if let Err(error) = lowered {
        tracing::warn!(%error, "could not lower the priority of a hashing thread");
    }
}

/// Memory for one hash with today's parameters.
pub fn new_memory() -> Vec<Block> {
    vec![Block::default(); MEMORY_KIB as usize]
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

/// Verifies against any Argon2 PHC string (its own parameters); unreadable hashes mismatch.
/// The comparison is constant-time.
fn verify_with(password: &SecretString, stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Ok(algorithm), Some(expected)) = (Algorithm::try_from(parsed.algorithm), parsed.hash) else {
        return false;
    };
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from);
    let stored_params = Params::try_from(&parsed);
    let (Ok(version), Ok(stored_params)) = (version, stored_params) else { return false };
    let mut salt_buffer = [0_u8; 64];
    let Some(Ok(salt)) = parsed.salt.map(|s| s.decode_b64(&mut salt_buffer)) else { return false };
    let Ok(params) =
        Params::new(stored_params.m_cost(), stored_params.t_cost(), stored_params.p_cost(), Some(expected.len()))
    else {
        return false;
    };
    ensure_capacity(memory, params.block_count());
    let mut output = vec![0_u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.expose_secret().as_bytes(),
        salt,
        &mut output,
        memory.as_mut_slice(),
    );
    hashed.is_ok() && bool::from(output.as_slice().ct_eq(expected.as_bytes()))
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
    use argon2::password_hash::{PasswordHasher as _, SaltString};

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_nice_10() {
        let hasher = PasswordHasher::new(1);
        // The thread lowers its priority when it starts; one hash makes sure it has.
        let _ = hasher.hash(SecretString::from("warm up")).await;
        let nice_of_hash_threads: Vec<i64> = std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.starts_with("tessera-hash"))
            })
            .filter_map(|task| {
                let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                // Field 19 is the nice value; fields after the ")" that ends the name, counting from 3.
                stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
            })
            .collect();
        assert!(!nice_of_hash_threads.is_empty());
        assert!(nice_of_hash_threads.iter().all(|nice| *nice == 10), "{nice_of_hash_threads:?}");
    }

    #[test]
    fn the_dummy_hash_is_a_current_argon2id_hash() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!needs_rehash(DUMMY_HASH));
    }

    #[tokio::test]
    async fn hashes_verify_and_mismatches_do_not() {
        let hasher = PasswordHasher::new(1);
        let hash = hasher.hash(SecretString::from("correct horse")).await.unwrap_or_default();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let ok = hasher.verify(SecretString::from("correct horse"), Some(hash.clone())).await;
        assert!(matches!(ok, Ok(true)));
        let bad = hasher.verify(SecretString::from("wrong horse"), Some(hash)).await;
        assert!(matches!(bad, Ok(false)));
        let unknown = hasher.verify(SecretString::from("x"), None).await;
        assert!(matches!(unknown, Ok(false)));
    }

    #[test]
    fn our_hashes_are_standard_phc_strings_that_the_reference_verifier_accepts() {
        use argon2::PasswordVerifier as _;
        let hash = hash_now(&SecretString::from("correct horse")).unwrap_or_default();
        let parsed = PasswordHash::new(&hash);
        assert!(parsed.is_ok_and(|p| Argon2::default().verify_password(b"correct horse", &p).is_ok()));
    }

    #[test]
    fn hashes_made_elsewhere_with_other_parameters_verify() {
        let params = Params::new(4096, 1, 1, None).unwrap_or_default();
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap_or_else(|_| SaltString::generate(&mut OsRng));
        let other = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password(b"old secret", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default();
        let mut memory = Vec::new();
        assert!(verify_with(&SecretString::from("old secret"), &other, &mut memory));
        assert!(!verify_with(&SecretString::from("new secret"), &other, &mut memory));
        assert!(needs_rehash(&other));
        assert!(!verify_with(&SecretString::from("x"), "plain", &mut memory));
    }
}
