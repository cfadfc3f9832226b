//! Password hashing on a bounded pool of dedicated threads.
//!
//! Argon2id at m=19 MiB, t=2 costs about 19 ms of one core and 19 MiB of memory per call. Run
//! on the async workers it would stall every other request; run unbounded, a login flood would
//! exhaust memory. So hashing runs on `concurrency` threads of its own, each reusing one 19 MiB
//! buffer for every hash (no allocation, no page faults, no allocator arenas growing per thread),
//! fed by a queue of at most [`PasswordHasher::WAITING_PER_THREAD`] calls per thread (about
//! 0.6 s of work); beyond that a call is refused as overload (`503` with `Retry-After` for the
//! route that asked, while every route that hashes nothing goes on as before). Memory is
//! therefore bounded by `concurrency × 19 MiB`, allocated on first use, and for the moment an
//! imported hash with a larger cost is verified, by that cost (at most 128 MiB).
//!
//! Hashing always makes today's Argon2id; verifying reads every format in [`formats`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::Block;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, oneshot};

use super::error::Error;
use argon::DUMMY_HASH;
pub use argon::{hash_into, hash_now, new_memory};
pub use firebase::FirebaseParams;
pub use formats::{StoredHash, needs_rehash};
pub use legacy::Digest;
pub use refusal::Refusal;

mod argon;
mod firebase;
mod formats;
mod kdf;
mod legacy;
mod refusal;

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

    /// The stored form of an unsafe digest: its hex hashed with today's Argon2id.
    pub async fn wrap(&self, digest: &Digest<'_>) -> Result<String, Error> {
        let inner = self.hash(SecretString::from(digest.hex().to_owned())).await?;
        Ok(digest.wrapped(&inner))
    }

    /// Checks a password against a stored hash in any format [`StoredHash`] reads; with `None`
    /// (no such account) it checks against a dummy hash and answers `false`, at the same cost.
    /// A hash no format reads never matches.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> Result<bool, Error> {
        self.run(move |memory| {
            let password = password.expose_secret().as_bytes();
            // No account, or one whose hash no format reads (an account without a password):
            // the dummy is verified all the same, so the answer costs what a wrong password costs.
            let matches = match stored.as_deref().map(StoredHash::parse) {
                Some(Ok(stored)) => stored.verify(password, memory),
                _ => {
                    if let Ok(dummy) = StoredHash::parse(DUMMY_HASH) {
                        dummy.verify(password, memory);
                    }
                    false
                }
            };
            argon::shrink(memory);
            matches
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
            // Nobody waits for this answer any more (the request was dropped: its client went
            // away, or it timed out in the queue): a flood that hangs up costs no hashing.
            if reply.is_closed() {
                return;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn a_call_dropped_while_it_waits_is_never_run() {
        let hasher = PasswordHasher::new(1);
        let (go_on, wait) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.run(move |_| wait.recv().is_ok()).await }
        });
        while hasher.busy() == 0 {
            tokio::task::yield_now().await;
        }
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let abandoned = tokio::spawn({
            let (hasher, ran) = (hasher.clone(), ran.clone());
            async move { hasher.run(move |_| ran.store(true, Ordering::SeqCst)).await }
        });
        while hasher.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        assert!(abandoned.await.is_err_and(|e| e.is_cancelled()));
        go_on.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        // The pool's one thread takes the abandoned call before this one.
        assert!(hasher.run(|_| true).await.unwrap());
        assert!(!ran.load(Ordering::SeqCst), "the abandoned call was run");
    }

    #[test]
    fn the_dummy_hash_is_a_current_argon2id_hash() {
        assert!(matches!(StoredHash::parse(DUMMY_HASH), Ok(StoredHash::Argon2(_))));
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
        use argon2::password_hash::PasswordHash;
        use argon2::{Argon2, PasswordVerifier as _};
        let hash = hash_now(&SecretString::from("correct horse")).unwrap_or_default();
        let parsed = PasswordHash::new(&hash);
        assert!(parsed.is_ok_and(|p| Argon2::default().verify_password(b"correct horse", &p).is_ok()));
        assert!(!needs_rehash(&hash));
    }

    #[tokio::test]
    async fn a_wrapped_digest_verifies_through_the_pool_and_the_bare_digest_never_does() {
        let hasher = PasswordHasher::new(1);
        let bare = "md5$salt$".to_owned() + &hex::encode(<md5::Md5 as sha2::Digest>::digest(b"saltold secret"));
        let wrapped = match StoredHash::parse(&bare) {
            Ok(StoredHash::Digest(digest)) => hasher.wrap(&digest).await.unwrap_or_default(),
            _ => String::new(),
        };
        assert!(wrapped.starts_with("legacy-md5$salt$$argon2id$"), "{wrapped}");
        assert!(!wrapped.contains(&bare[9..]), "the digest itself is not kept");
        let check =
            |password: &'static str, stored: &str| hasher.verify(SecretString::from(password), Some(stored.to_owned()));
        assert!(matches!(check("old secret", &wrapped).await, Ok(true)));
        assert!(matches!(check("new secret", &wrapped).await, Ok(false)));
        assert!(matches!(check("old secret", &bare).await, Ok(false)));
        assert!(needs_rehash(&wrapped));
    }
}
