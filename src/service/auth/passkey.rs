//! Signing in with a passkey: alone (a discoverable credential names its account), or as the
//! second step after a right password.

use secrecy::SecretString;

use super::tokens::IssuedTokens;
use super::{Auth, Opening};
use crate::domain::audit::ClientInfo;
use crate::domain::passkey::CeremonyPurpose;
use crate::domain::secrets;
use crate::domain::time::Timestamp;
use crate::domain::user::UserStatus;
use crate::service::abuse::lockout::{Charge, Subject};
use crate::service::error::Error;
use crate::service::second_factors::{Ceremony, PasskeyAssertion, Proof};
use crate::storage::{StoreError, passkeys, second_factors, users};

impl Auth {
    /// Begins a passkey sign-in: with the `mfa_token` a right password earned, for that
    /// account's passkeys; without, for any discoverable passkey of this site.
    pub async fn start_passkey_sign_in(&self, mfa_token: Option<SecretString>) -> Result<Ceremony, Error> {
        let Some(token) = mfa_token else { return self.factors.challenge_discoverable().await };
        let digest = secrets::digest(&token);
        let user_id = second_factors::mfa_token_user(&mut *self.store.conn().await?, &digest, Timestamp::now())
            .await?
            .ok_or(Error::InvalidToken)?;
        self.factors.challenge_passkey(user_id, Some(digest)).await
    }

    /// Finishes a passkey sign-in begun by [`Self::start_passkey_sign_in`].
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn finish_passkey_sign_in(
        &self,
        assertion: PasskeyAssertion,
        client: ClientInfo,
    ) -> Result<IssuedTokens, Error> {
        let digest = secrets::digest(&assertion.challenge_id);
        let challenge = passkeys::peek_challenge(&mut *self.store.conn().await?, &digest, Timestamp::now()).await?;
        match challenge {
            Some(challenge) if challenge.purpose == CeremonyPurpose::SecondStep => {
                let token = challenge.mfa_token_hash.ok_or(Error::InvalidCode)?;
                self.second_step(&token, Proof::Passkey(Box::new(assertion)), client).await
            }
            Some(challenge) if challenge.purpose == CeremonyPurpose::SignIn => {
                self.discoverable_sign_in(assertion, client).await
            }
            _ => Err(Error::InvalidCode),
        }
    }

    /// A sign-in by a discoverable passkey alone. The challenge is used up first, whatever
    /// follows, so an answer tells nothing about the account it names unless it verifies; the
    /// answer is checked with the account's row locked, and the session's transaction checks
    /// again that the passkey is still there (a reset or a removal may have come between).
    async fn discoverable_sign_in(
        &self,
        assertion: PasskeyAssertion,
        client: ClientInfo,
    ) -> Result<IssuedTokens, Error> {
        let Some((challenge, user_id)) = self.factors.take_sign_in(&assertion).await? else {
            return Err(Error::InvalidCode);
        };
        let user = users::find_by_id(&mut *self.store.conn().await?, user_id).await?;
        let Some(mut user) = user else { return Err(Error::InvalidCode) };
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        let verified = self.factors.verify_sign_in(&mut tx, user.id, &challenge, &assertion.credential).await?;
        tx.commit().await.map_err(StoreError::from)?;
        if !verified {
            self.record_failure(Some(user.id), &client, "wrong_passkey").await;
            return Err(Error::InvalidCode);
        }
        if user.status != UserStatus::Active {
            self.record_failure(Some(user.id), &client, "account_disabled").await;
            return Err(Error::AccountDisabled);
        }
        if self.require_verification && user.email_verified_at.is_none() {
            self.record_failure(Some(user.id), &client, "email_unverified").await;
            return Err(Error::EmailUnverified);
        }
        let now = Timestamp::now();
        user.last_login_at = Some(now);
        let subject = Subject::account(user.id, &client);
        let opening = Opening::Passkey(&assertion.credential);
        let issued = self.open_session(user, client, now, (&subject, Charge::none()), opening).await?;
        self.cache.forget_user(issued.user.id);
        tracing::info!(user_id = %issued.user.id, "signed in with a passkey");
        Ok(issued)
    }
}
