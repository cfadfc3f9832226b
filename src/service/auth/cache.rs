//! A per-node cache that lets an authenticated request skip the signature check and the
//! session query when nothing can have changed.
//!
//! * Verified tokens, keyed by the SHA-256 of the whole token and kept until the token
//!   expires. Only a token that passed verification is ever stored, so a forged or altered
//!   token is always a miss and is verified in full.
//! * Session snapshots (the session and its user), kept for `ttl`. Every change made on this
//!   node (sign-out, revocation, refresh, profile or password change, deletion) drops the
//!   affected entries at once; a change made on another node is seen within `ttl`, which is
//!   therefore the cross-node revocation bound. A `ttl` of zero turns snapshots off.
//!
//! Both maps are bounded: when one is full it is emptied, which costs only cache misses.
//! Their keys are digests of verified tokens, and session and user ids that no network client
//! chooses (an operator's import file may set user ids), so they are hashed with foldhash (a few
//! instructions, seeded per process but not from the OS) rather than SipHash. Never key a
//! foldhash map on what a client sends: an address, a name, a header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use uuid::Uuid;

use crate::domain::session::SessionState;

/// Entries kept per map before it is emptied.
const MAX_ENTRIES: usize = 100_000;

/// What a verified token said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// Seconds since the epoch after which the token is refused (its `exp` plus leeway).
    pub valid_until: i64,
}

struct Snapshot {
    state: Arc<SessionState>,
    loaded: Instant,
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<Uuid, Snapshot, RandomState>,
    by_user: HashMap<Uuid, Vec<Uuid>, RandomState>,
}

/// The cache; shared by every request of a node.
pub struct AuthCache {
    ttl: Duration,
    tokens: Mutex<HashMap<[u8; 32], VerifiedToken, RandomState>>,
    sessions: Mutex<Sessions>,
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self { ttl, tokens: Mutex::default(), sessions: Mutex::default() })
    }

    /// The cross-node bound: how stale a snapshot may be.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn verified(&self, digest: &[u8; 32], now: i64) -> Option<VerifiedToken> {
        lock(&self.tokens).get(digest).copied().filter(|t| now < t.valid_until)
    }

    pub fn remember_token(&self, digest: [u8; 32], token: VerifiedToken) {
        let mut tokens = lock(&self.tokens);
        if tokens.len() >= MAX_ENTRIES {
            tokens.clear();
        }
        tokens.insert(digest, token);
    }

    /// A snapshot of the session loaded less than `ttl` ago.
    pub fn session(&self, session_id: Uuid) -> Option<Arc<SessionState>> {
        let sessions = lock(&self.sessions);
        let snapshot = sessions.by_id.get(&session_id)?;
        (snapshot.loaded.elapsed() < self.ttl).then(|| snapshot.state.clone())
    }

    pub fn remember_session(&self, session_id: Uuid, state: Arc<SessionState>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut sessions = lock(&self.sessions);
        if sessions.by_id.len() >= MAX_ENTRIES {
            *sessions = Sessions::default();
        }
        let user_id = state.user.id;
        sessions.by_id.insert(session_id, Snapshot { state, loaded: Instant::now() });
        let of_user = sessions.by_user.entry(user_id).or_default();
        if !of_user.contains(&session_id) {
            of_user.push(session_id);
        }
    }

    /// Drops what is known about one session.
    pub fn forget_session(&self, session_id: Uuid) {
        lock(&self.sessions).by_id.remove(&session_id);
    }

    /// Drops what is known about every session of a user.
    pub fn forget_user(&self, user_id: Uuid) {
        let mut sessions = lock(&self.sessions);
        for session_id in sessions.by_user.remove(&user_id).unwrap_or_default() {
            sessions.by_id.remove(&session_id);
        }
    }
}

/// A poisoned lock only means another request panicked mid-update of a cache: keep going.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fields::Metadata;
    use crate::domain::session::SignInProof;
    use crate::domain::time::Timestamp;
    use crate::domain::user::{Profile, Role, User, UserStatus};

    fn state(user_id: Uuid) -> Arc<SessionState> {
        let now = Timestamp::now();
        let user = User {
            id: user_id,
            profile: Profile { username: Some("ada".into()), metadata: Metadata::default(), ..Profile::default() },
            email_verified_at: None,
            role: Role::User,
            status: UserStatus::Active,
            password_hash: String::new(),
            created_at: now,
            updated_at: now,
            last_login_at: None,
            pending_email: None,
        };
        Arc::new(SessionState { user, proof: SignInProof::Password, expires_at: now, revoked_at: None })
    }

    #[test]
    fn tokens_are_found_only_by_their_exact_digest_and_only_until_they_expire() {
        let cache = AuthCache::new(Duration::from_secs(2));
        let token = VerifiedToken { user_id: Uuid::now_v7(), session_id: Uuid::now_v7(), valid_until: 100 };
        cache.remember_token([1; 32], token);
        assert_eq!(cache.verified(&[1; 32], 99), Some(token));
        assert_eq!(cache.verified(&[1; 32], 100), None, "expired");
        assert_eq!(cache.verified(&[2; 32], 99), None, "another token, however similar, is a miss");
    }

    #[test]
    fn snapshots_are_dropped_by_session_and_by_user() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let (ada, grace) = (Uuid::now_v7(), Uuid::now_v7());
        let (s1, s2, s3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        cache.remember_session(s1, state(ada));
        cache.remember_session(s2, state(ada));
        cache.remember_session(s3, state(grace));
        cache.forget_session(s1);
        assert!(cache.session(s1).is_none() && cache.session(s2).is_some());
        cache.forget_user(ada);
        assert!(cache.session(s2).is_none());
        assert!(cache.session(s3).is_some(), "other users keep theirs");
    }

    #[test]
    fn snapshots_expire_and_a_zero_ttl_keeps_none() {
        let cache = AuthCache::new(Duration::from_millis(1));
        let session = Uuid::now_v7();
        cache.remember_session(session, state(Uuid::now_v7()));
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.session(session).is_none());
        let off = AuthCache::new(Duration::ZERO);
        off.remember_session(session, state(Uuid::now_v7()));
        assert!(off.session(session).is_none());
    }
}
