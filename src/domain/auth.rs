//! Signing in and recognising signed-in requests.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use uuid::Uuid;

use super::error::Error;
use super::hashing::{PasswordHasher, needs_rehash};
use super::ids::{new_id, parse_id};
use super::jwt::{AccessClaims, KeyRing};
use super::password::is_oversized;
use super::secrets;
use super::session::Session;
use super::time::Timestamp;
use super::user::{Role, User, UserStatus};
use crate::storage::users::LoginName;
use crate::storage::{Store, StoreError, sessions, users};

/// Token lifetimes and the names tokens carry.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss`: the service's public URL.
    pub issuer: String,
    /// `aud`: who the access tokens are for.
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub session_max_age: Duration,
}

/// Where a sign-in came from, kept on the session for the user to recognise it.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What a successful sign-in hands out.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: SecretString,
    pub refresh_expires_in: u64,
    pub user: User,
}

/// The caller behind a verified access token whose session is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
}

/// Sign-in and token checks.
#[derive(Clone)]
pub struct Auth {
    store: Store,
    hasher: PasswordHasher,
    keys: Arc<KeyRing>,
    settings: Arc<TokenSettings>,
}

impl Auth {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        keys: KeyRing,
        settings: TokenSettings,
    ) -> Self {
        Self {
            store,
            hasher,
            keys: Arc::new(keys),
            settings: Arc::new(settings),
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Checks the password and opens a session. An unknown account and a wrong password give
    /// the same answer at the same cost; a disabled account is told so only after a correct
    /// password.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn login(
        &self,
        name: LoginName<'_>,
        password: SecretString,
        client: ClientInfo,
    ) -> Result<IssuedTokens, Error> {
        if is_oversized(&password) {
            return Err(Error::InvalidCredentials);
        }
        let user = {
            let mut conn = self.store.conn().await?;
            users::find_by_login(&mut conn, name).await?
        };
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self.hasher.verify(password.clone(), stored_hash).await?;
        let Some(mut user) = user.filter(|_| verified) else {
            tracing::info!("sign-in refused: invalid credentials");
            return Err(Error::InvalidCredentials);
        };
        if user.status != UserStatus::Active {
            return Err(Error::AccountDisabled);
        }
        if needs_rehash(&user.password_hash) {
            self.upgrade_hash(&user, password).await;
        }
        let now = Timestamp::now();
        let tokens = self.open_session(&user, client, now).await?;
        user.last_login_at = Some(now);
        tracing::info!(user_id = %user.id, "signed in");
        Ok(IssuedTokens { user, ..tokens })
    }

    /// Replaces a hash made with older parameters; a failure only delays the upgrade.
    async fn upgrade_hash(&self, user: &User, password: SecretString) {
        let outcome = async {
            let hash = self.hasher.hash(password).await?;
            let mut conn = self.store.conn().await?;
            users::set_password_hash(&mut conn, user.id, &hash, Timestamp::now()).await?;
            Ok::<_, Error>(())
        };
        if let Err(error) = outcome.await {
            tracing::warn!(user_id = %user.id, %error, "could not upgrade a password hash");
        }
    }

    async fn open_session(
        &self,
        user: &User,
        client: ClientInfo,
        now: Timestamp,
    ) -> Result<IssuedTokens, Error> {
        let s = &self.settings;
        let max_expires_at = now.plus(s.session_max_age);
        let session = Session {
            id: new_id(),
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            expires_at: now.plus(s.refresh_ttl).min(max_expires_at),
            max_expires_at,
            revoked_at: None,
            user_agent: client.user_agent,
            ip: client.ip,
        };
        let refresh_token = secrets::new_token();
        let mut tx = self.store.begin().await?;
        sessions::insert(&mut tx, &session).await?;
        sessions::insert_refresh_token(
            &mut tx,
            &secrets::digest(&refresh_token),
            session.id,
            now,
            session.expires_at,
        )
        .await?;
        users::record_login(&mut tx, user.id, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(IssuedTokens {
            access_token: self.sign_access(user, session.id, now)?,
            expires_in: s.access_ttl.as_secs(),
            refresh_token,
            refresh_expires_in: session
                .expires_at
                .as_secs()
                .saturating_sub(now.as_secs())
                .unsigned_abs(),
            user: user.clone(),
        })
    }

    fn sign_access(&self, user: &User, session_id: Uuid, now: Timestamp) -> Result<String, Error> {
        let s = &self.settings;
        let claims = AccessClaims {
            iss: s.issuer.clone(),
            aud: s.audience.clone(),
            sub: user.id.to_string(),
            sid: session_id.to_string(),
            role: user.role.as_str().to_owned(),
            iat: now.as_secs(),
            nbf: now.as_secs(),
            exp: now.plus(s.access_ttl).as_secs(),
            jti: new_id().to_string(),
        };
        self.keys
            .sign(&claims)
            .map_err(|e| Error::Internal(format!("signing an access token: {e}")))
    }

    /// The caller behind a bearer token: the signature and claims must verify and the session
    /// must be live, its user active. Any failure is `Unauthenticated`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, Error> {
        let now = Timestamp::now();
        let s = &self.settings;
        let claims = self
            .keys
            .verify(token, &s.issuer, &s.audience, now.as_secs())
            .map_err(|reason| {
                tracing::debug!(%reason, "bearer token refused");
                Error::Unauthenticated
            })?;
        let (Some(user_id), Some(session_id)) = (parse_id(&claims.sub), parse_id(&claims.sid))
        else {
            return Err(Error::Unauthenticated);
        };
        let mut conn = self.store.conn().await?;
        let state = sessions::state(&mut conn, session_id).await?;
        match state {
            Some(state) if state.user_id == user_id && state.is_live(now) => Ok(Principal {
                user_id,
                session_id,
                role: state.role,
            }),
            _ => Err(Error::Unauthenticated),
        }
    }
}
