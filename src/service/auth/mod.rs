//! Signing in and recognising signed-in requests: sign-in here, refresh, sign-out and the
//! session list beside it, and the signing keys, token issuing and per-node cache below.

pub mod cache;
pub mod keys;
mod passkey;
mod refresh;
mod second_step;
mod sessions;

pub use sessions::live_sessions;
pub mod tokens;

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use webauthn_rs::prelude::PublicKeyCredential;

use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::ids::{new_id, parse_id};
use crate::domain::jwt::LEEWAY_SECS;
use crate::domain::password::is_oversized;
use crate::domain::second_factor::{ENROLMENT_SESSION, MfaPolicy};
use crate::domain::secrets;
use crate::domain::session::{Session, SessionState, SignInProof};
use crate::domain::time::Timestamp;
use crate::domain::user::LoginName;
use crate::domain::user::{Role, User, UserStatus};
use crate::service::abuse::lockout::{Charge, Lockout, Subject};
use crate::service::cursor::Cursors;
use crate::service::error::Error;
use crate::service::hashing::{PasswordHasher, StoredHash, needs_rehash};
use crate::service::second_factors::{Proof, Purpose, SecondFactors};
use crate::storage::rotations::RotationBatcher;
use crate::storage::{self, Backend, Store, StoreError, audit, refresh_tokens, second_factors, users};
use cache::{AuthCache, VerifiedToken};
use tokens::{IssuedTokens, Tokens};

/// The caller behind a verified access token whose session is live, with the session and
/// user as read (at most the cache's time-to-live ago).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
    pub state: Arc<SessionState>,
}

/// A password's new hash, to replace the old one in the sign-in's transaction.
struct HashUpgrade {
    old: String,
    new: String,
    /// The old hash's format, for the audit trail.
    scheme: &'static str,
}

/// How a session is being opened: by a password (with its hash's upgrade, if one is due), or
/// by the second factor after one (`mfa_token` is the digest of the token the password earned).
enum Opening<'a> {
    Password(Option<HashUpgrade>),
    /// A password on an account that must add a second factor first: a short session that may
    /// only do that.
    EnrolmentOnly(Option<HashUpgrade>),
    SecondFactor {
        mfa_token: &'a str,
        proof: &'a Proof,
    },
    /// A discoverable passkey alone, verified before (no password, so nothing to lock out);
    /// its credential, to check it is still registered.
    Passkey(&'a PublicKeyCredential),
}

/// Sign-in, token refresh, sign-out and session checks.
#[derive(Clone)]
pub struct Auth {
    store: Store,
    hasher: PasswordHasher,
    tokens: Tokens,
    cache: Arc<AuthCache>,
    cursors: Cursors,
    lockout: Lockout,
    factors: SecondFactors,
    require_verification: bool,
    require_mfa: MfaPolicy,
    /// SQLite only: refresh rotations written in batches (see `storage::rotations`).
    rotations: Option<RotationBatcher>,
}

/// What sign-in is built from besides the store: hashing, tokens, the cache, cursors and the lockout.
pub struct AuthParts {
    pub hasher: PasswordHasher,
    pub tokens: Tokens,
    pub cache: Arc<AuthCache>,
    pub cursors: Cursors,
    pub lockout: Lockout,
    pub factors: SecondFactors,
    /// Accounts whose address is unverified cannot sign in.
    pub require_verification: bool,
    /// Accounts that must add a second factor first.
    pub require_mfa: MfaPolicy,
}

impl Auth {
    pub fn new(store: Store, parts: AuthParts) -> Self {
        let AuthParts { hasher, tokens, cache, cursors, lockout, factors, require_verification, require_mfa } = parts;
        let rotations = (store.backend() == Backend::Sqlite)
            .then(|| RotationBatcher::start(store.clone(), tokens.settings().refresh_ttl));
        Self { store, hasher, tokens, cache, cursors, lockout, factors, require_verification, require_mfa, rotations }
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Checks the password and opens a session. An unknown account and a wrong password give
    /// the same answer at the same cost, and are locked out alike; a disabled account is told so
    /// only after a correct password.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn login(
        &self,
        name: LoginName,
        password: SecretString,
        client: ClientInfo,
    ) -> Result<IssuedTokens, Error> {
        if is_oversized(&password) {
            return Err(Error::InvalidCredentials);
        }
        let user = {
            let mut conn = self.store.conn().await?;
            users::find_by_login(&mut conn, &name).await?
        };
        let subject = match &user {
            Some(user) => Subject::account(user.id, &client),
            None => Subject::unknown(&name.key(), &client),
        };
        let charge = self.lockout.charge(&subject).await?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let check = self.hasher.verify(password.clone(), stored_hash);
        let verified = self.lockout.checked(&subject, charge, check).await?;
        let target = user.as_ref().map(|u| u.id);
        let Some(mut user) = user.filter(|_| verified) else {
            tracing::info!("sign-in refused: invalid credentials");
            self.record_failure(target, &client, if target.is_some() { "wrong_password" } else { "unknown_account" })
                .await;
            self.lockout.failed(&subject, charge, &client).await?;
            return Err(Error::InvalidCredentials);
        };
        if user.status != UserStatus::Active {
            self.lockout.succeeded(&subject, charge).await;
            self.record_failure(Some(user.id), &client, "account_disabled").await;
            return Err(Error::AccountDisabled);
        }
        if self.require_verification && user.email_verified_at.is_none() {
            self.lockout.succeeded(&subject, charge).await;
            self.record_failure(Some(user.id), &client, "email_unverified").await;
            return Err(Error::EmailUnverified);
        }
        let upgrade = self.upgraded_hash(&user, password).await;
        let methods = self.factors.methods(user.id).await?;
        if !methods.is_empty() {
            // The password is right but proves nothing alone: its failures stay counted.
            self.lockout.deferred(&subject, charge).await;
            if let Some(upgrade) = upgrade {
                self.store_upgrade(user.id, &upgrade).await;
            }
            let mfa_token = self.await_second_factor(user.id).await?;
            tracing::info!(user_id = %user.id, "password right; second factor required");
            return Err(Error::MfaRequired { mfa_token, methods });
        }
        let now = Timestamp::now();
        user.last_login_at = Some(now);
        let opening = if self.require_mfa.covers(user.role) {
            Opening::EnrolmentOnly(upgrade)
        } else {
            Opening::Password(upgrade)
        };
        let issued = self.open_session(user, client, now, (&subject, charge), opening).await?;
        self.cache.forget_user(issued.user.id);
        tracing::info!(user_id = %issued.user.id, "signed in");
        Ok(issued)
    }

    /// Records a refused sign-in. Nothing else changes, so it has a statement of its own; if it
    /// cannot be written the refusal still stands, and the failure is logged.
    async fn record_failure(&self, user_id: Option<Uuid>, client: &ClientInfo, reason: &str) {
        let event = AuditEvent::new(EventType::LoginFailed, None, user_id, client, json!({ "reason": reason }));
        let outcome = self.store.write(async |conn| audit::insert(conn, &event).await);
        if let Err(error) = outcome.await {
            tracing::warn!(%error, "could not record a refused sign-in");
        }
    }

    /// A new hash of the password just verified, when the stored one is in another format or
    /// made with other parameters than today's: the session's transaction writes it in place
    /// of the old. If the pool is too busy the upgrade waits for the next sign-in.
    async fn upgraded_hash(&self, user: &User, password: SecretString) -> Option<HashUpgrade> {
        if !needs_rehash(&user.password_hash) {
            return None;
        }
        let scheme = StoredHash::parse(&user.password_hash).map_or("unknown", |stored| stored.scheme());
        match self.hasher.hash(password).await {
            Ok(hash) => Some(HashUpgrade { old: user.password_hash.clone(), new: hash, scheme }),
            Err(error) => {
                tracing::warn!(user_id = %user.id, %error, "could not upgrade a password hash");
                None
            }
        }
    }

    async fn open_session(
        &self,
        user: User,
        client: ClientInfo,
        now: Timestamp,
        (subject, charge): (&Subject, Charge),
        opening: Opening<'_>,
    ) -> Result<IssuedTokens, Error> {
        let s = self.tokens.settings();
        let max_age = match opening {
            Opening::EnrolmentOnly(_) => s.session_max_age.min(ENROLMENT_SESSION),
            Opening::Password(_) | Opening::SecondFactor { .. } | Opening::Passkey(_) => s.session_max_age,
        };
        let max_expires_at = now.plus(max_age);
        let session = Session {
            id: new_id(),
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            expires_at: now.plus(s.refresh_ttl).min(max_expires_at),
            max_expires_at,
            revoked_at: None,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            proof: match opening {
                Opening::Password(_) => SignInProof::Password,
                Opening::EnrolmentOnly(_) => SignInProof::EnrolmentOnly,
                Opening::SecondFactor { proof: Proof::Passkey(_), .. } => SignInProof::PasswordAndPasskey,
                Opening::SecondFactor { .. } => SignInProof::PasswordAndCode,
                Opening::Passkey(_) => SignInProof::Passkey,
            },
        };
        let refresh_token = secrets::new_token();
        let mut detail = json!({ "session_id": session.id });
        let mut tx = self.store.begin().await?;
        // The user row is written first: inserting the session takes a shared lock on it for the
        // foreign key, and on MySQL two logins holding that lock and then both updating the row
        // would deadlock. Locking it for writing first makes concurrent logins queue instead.
        users::record_login(&mut tx, user.id, now).await?;
        match opening {
            Opening::Password(Some(upgrade)) | Opening::EnrolmentOnly(Some(upgrade)) => {
                // Only over the hash the password was checked against: a password changed meanwhile stays.
                if users::replace_password_hash(&mut tx, user.id, &upgrade.old, &upgrade.new).await? {
                    detail["password_hash_upgraded_from"] = upgrade.scheme.into();
                }
            }
            Opening::Password(None) | Opening::EnrolmentOnly(None) => {}
            Opening::Passkey(credential) => {
                if !self.factors.still_registered(&mut tx, user.id, credential).await? {
                    return Err(Error::InvalidCode);
                }
                detail["passkey"] = true.into();
            }
            Opening::SecondFactor { mfa_token, proof } => {
                if !second_factors::take_mfa_token(&mut tx, mfa_token, now).await? {
                    return Err(Error::InvalidToken);
                }
                if !self.factors.use_proof(&mut tx, &user, proof, Purpose::SignIn, &client, now).await? {
                    return Err(Error::InvalidCode);
                }
                detail["second_factor"] = proof.kind().into();
            }
        }
        let event = AuditEvent::new(EventType::LoginSucceeded, Some(user.id), Some(user.id), &client, detail);
        storage::sessions::insert(&mut tx, &session).await?;
        refresh_tokens::insert(&mut tx, &secrets::digest(&refresh_token), session.id, now, session.expires_at).await?;
        audit::insert(&mut tx, &event).await?;
        // Bounded per account: the oldest sessions beyond the limit end with this sign-in.
        let ended =
            storage::sessions::revoke_beyond(&mut tx, user.id, session.id, s.max_sessions_per_user, now).await?;
        if ended > 0 {
            let detail = json!({ "reason": "session_limit", "sessions_revoked": ended });
            audit::insert(&mut tx, &AuditEvent::by_self(EventType::SessionRevoked, user.id, &client, detail)).await?;
        }
        self.lockout.succeeded_in(&mut tx, subject, charge, true).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(IssuedTokens {
            access_token: self.tokens.access_token(&user, &session, now, new_id())?,
            expires_in: s.access_ttl.as_secs(),
            refresh_token,
            refresh_expires_in: Tokens::seconds_between(now, session.expires_at),
            user,
        })
    }

    /// Whether `principal` must add a second factor before anything else: its account is one
    /// `TESSERA_REQUIRE_MFA` covers and its session was not opened with one. Checked on every
    /// request, so an account promoted into the policy, or a session older than the policy,
    /// is held to it too.
    pub fn must_enrol(&self, principal: &Principal) -> bool {
        !principal.state.proof.is_multi_factor() && self.require_mfa.covers(principal.role)
    }

    /// The caller behind a bearer token: the signature and claims must verify and the session
    /// must be live, its user active. A token verified before is not verified again until it
    /// expires, and the session is read from the database unless this node read it less than
    /// the cache's time-to-live ago (see [`AuthCache`]). Any failure is `Unauthenticated`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, Error> {
        let now = Timestamp::now();
        let verified = self.verified(token, now).await?;
        let state = match self.cache.session(verified.session_id) {
            Some(state) => state,
            None => {
                let mut conn = self.store.conn().await?;
                let state = Arc::new(
                    storage::sessions::state(&mut conn, verified.session_id).await?.ok_or(Error::Unauthenticated)?,
                );
                self.cache.remember_session(verified.session_id, state.clone());
                state
            }
        };
        if state.user.id != verified.user_id || !state.is_live(now) {
            return Err(Error::Unauthenticated);
        }
        Ok(Principal { user_id: verified.user_id, session_id: verified.session_id, role: state.user.role, state })
    }

    /// The token's subject and session, from the cache or by full verification.
    async fn verified(&self, token: &str, now: Timestamp) -> Result<VerifiedToken, Error> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verified) = self.cache.verified(&digest, now.as_secs()) {
            return Ok(verified);
        }
        let claims = self.tokens.verify(token, now).await.map_err(|reason| {
            tracing::debug!(%reason, "bearer token refused");
            Error::Unauthenticated
        })?;
        let (Some(user_id), Some(session_id)) = (parse_id(&claims.sub), parse_id(&claims.sid)) else {
            return Err(Error::Unauthenticated);
        };
        let verified = VerifiedToken { user_id, session_id, valid_until: claims.exp + LEEWAY_SECS };
        self.cache.remember_token(digest, verified);
        Ok(verified)
    }
}
