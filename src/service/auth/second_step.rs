//! The second step of a sign-in on an account with a second factor: the token a right
//! password earns, and the code that finishes it.

use secrecy::SecretString;
use uuid::Uuid;

use super::tokens::IssuedTokens;
use super::{Auth, HashUpgrade, Opening};
use crate::domain::audit::ClientInfo;
use crate::domain::second_factor::MFA_TOKEN_TTL;
use crate::domain::secrets;
use crate::domain::time::Timestamp;
use crate::domain::user::UserStatus;
use crate::service::abuse::lockout::Subject;
use crate::service::error::Error;
use crate::service::second_factors::Proof;
use crate::storage::{second_factors, users};

impl Auth {
    /// Finishes a sign-in that [`Self::login`] answered with `mfa_required`: `proof` must be a
    /// current code of the account's. The token is used up only by a right code, in the
    /// transaction that opens the session; a wrong code counts toward the account's lockout.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn complete_mfa(
        &self,
        mfa_token: SecretString,
        proof: Proof,
        client: ClientInfo,
    ) -> Result<IssuedTokens, Error> {
        self.second_step(&secrets::digest(&mfa_token), proof, client).await
    }

    /// [`Self::complete_mfa`] by the token's digest (a passkey's second step keeps it with its
    /// challenge).
    pub(super) async fn second_step(
        &self,
        digest: &str,
        proof: Proof,
        client: ClientInfo,
    ) -> Result<IssuedTokens, Error> {
        let now = Timestamp::now();
        let user = {
            let mut conn = self.store.conn().await?;
            match second_factors::mfa_token_user(&mut conn, digest, now).await? {
                Some(user_id) => users::find_by_id(&mut conn, user_id).await?,
                None => None,
            }
        };
        let Some(mut user) = user else { return Err(Error::InvalidToken) };
        if user.status != UserStatus::Active {
            return Err(Error::AccountDisabled);
        }
        if self.require_verification && user.email_verified_at.is_none() {
            return Err(Error::EmailUnverified);
        }
        let subject = Subject::account(user.id, &client);
        let charge = self.lockout.charge(&subject).await?;
        user.last_login_at = Some(now);
        let user_id = user.id;
        let opening = Opening::SecondFactor { mfa_token: digest, proof: &proof };
        match self.open_session(user, client.clone(), now, (&subject, charge), opening).await {
            Ok(issued) => {
                self.factors.mail_queued();
                self.cache.forget_user(user_id);
                tracing::info!(%user_id, "signed in with a second factor");
                Ok(issued)
            }
            Err(Error::InvalidCode) => {
                self.record_failure(Some(user_id), &client, "wrong_code").await;
                self.lockout.failed(&subject, charge, &client).await?;
                Err(Error::InvalidCode)
            }
            Err(other) => {
                self.lockout.deferred(&subject, charge).await;
                Err(other)
            }
        }
    }

    /// A single-use token for the second step of `user_id`'s sign-in.
    pub(super) async fn await_second_factor(&self, user_id: Uuid) -> Result<SecretString, Error> {
        let token = secrets::new_token();
        let now = Timestamp::now();
        let digest = secrets::digest(&token);
        self.store
            .write(async |conn| {
                second_factors::insert_mfa_token(conn, &digest, user_id, now, now.plus(MFA_TOKEN_TTL)).await
            })
            .await?;
        Ok(token)
    }

    /// Writes a password's upgraded hash outside a sign-in (one that waits for a second factor).
    pub(super) async fn store_upgrade(&self, user_id: Uuid, upgrade: &HashUpgrade) {
        let outcome = self
            .store
            .write(async |conn| users::replace_password_hash(conn, user_id, &upgrade.old, &upgrade.new).await);
        if let Err(error) = outcome.await {
            tracing::warn!(%user_id, %error, "could not upgrade a password hash");
        }
    }
}
