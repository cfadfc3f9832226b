//! Proving a passkey: the ceremonies that ask for one (a sign-in's second step, a discoverable
//! sign-in, a signed-in account confirming a change) and the checks of its answers.
//!
//! Every ceremony's state is kept in the database under the digest of a random id, so any node
//! finishes what another began; it is single use and lives five minutes.

use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, PasskeyAuthentication, PublicKeyCredential, RequestChallengeResponse,
};

use super::ceremony::{Ceremony, decode, encode, store_challenge};
use super::{Purpose, SecondFactors};
use crate::domain::passkey::{CeremonyPurpose, credential_key};
use crate::domain::secrets;
use crate::domain::time::Timestamp;
use crate::service::error::Error;
use crate::storage::Connection;
use crate::storage::passkeys::{self as rows, Challenge};

/// A passkey's answer to a challenge.
#[derive(Debug, Clone)]
pub struct PasskeyAssertion {
    pub challenge_id: SecretString,
    pub credential: PublicKeyCredential,
}

impl SecondFactors {
    /// Begins proving one of `user_id`'s passkeys: the second step of a sign-in (`mfa_token_hash`
    /// given: the digest of the token its password earned) or a signed-in account confirming a
    /// change of its factors.
    pub async fn challenge_passkey(&self, user_id: Uuid, mfa_token_hash: Option<String>) -> Result<Ceremony, Error> {
        let stored = rows::of_user(&mut *self.store.conn().await?, user_id).await?;
        if stored.is_empty() {
            return Err(Error::FactorState("no_passkeys"));
        }
        let keys = stored.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .relying_party
            .start_passkey_authentication(&keys)
            .map_err(|e| Error::Internal(format!("passkey request options: {e}")))?;
        let purpose = if mfa_token_hash.is_some() { CeremonyPurpose::SecondStep } else { CeremonyPurpose::StepUp };
        let challenge = Challenge { purpose, user_id: Some(user_id), mfa_token_hash, state: encode(&state)? };
        let challenge_id =
            self.store.write(async |conn| store_challenge(conn, &challenge, Timestamp::now()).await).await?;
        Ok(Ceremony { challenge_id, options: request_options(options)? })
    }

    /// Begins a sign-in with a discoverable passkey: the browser offers the user the passkeys it
    /// holds for this site, and the one chosen names its account.
    pub async fn challenge_discoverable(&self) -> Result<Ceremony, Error> {
        let (options, state) = self
            .relying_party
            .start_discoverable_authentication()
            .map_err(|e| Error::Internal(format!("passkey request options: {e}")))?;
        let challenge =
            Challenge { purpose: CeremonyPurpose::SignIn, user_id: None, mfa_token_hash: None, state: encode(&state)? };
        let challenge_id =
            self.store.write(async |conn| store_challenge(conn, &challenge, Timestamp::now()).await).await?;
        Ok(Ceremony { challenge_id, options: request_options(options)? })
    }

    /// Uses a passkey's answer as `user_id`'s factor for `purpose` in `tx`; `false` when the
    /// challenge is unknown, used, expired or for something else, or the answer does not verify
    /// against one of the account's passkeys. The challenge is used up only with `tx`: a wrong
    /// answer leaves it for the right one until it expires (an answer cannot be guessed).
    pub(super) async fn use_passkey(
        &self,
        tx: &mut Connection,
        user_id: Uuid,
        assertion: &PasskeyAssertion,
        purpose: Purpose,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let Some(challenge) = rows::take_challenge(tx, &secrets::digest(&assertion.challenge_id), now).await? else {
            return Ok(false);
        };
        let expected = match purpose {
            Purpose::SignIn => CeremonyPurpose::SecondStep,
            _ => CeremonyPurpose::StepUp,
        };
        if challenge.purpose != expected || challenge.user_id != Some(user_id) {
            return Ok(false);
        }
        self.verify(tx, user_id, &challenge, &assertion.credential, now).await
    }

    /// Uses up a discoverable sign-in's challenge, whatever comes of it (so that what follows
    /// tells nothing to an answer that is not an account's), and answers the account its
    /// passkey names: `None` when the challenge is not a live sign-in's, or the answer names
    /// no account.
    pub async fn take_sign_in(&self, assertion: &PasskeyAssertion) -> Result<Option<(Challenge, Uuid)>, Error> {
        let digest = secrets::digest(&assertion.challenge_id);
        let taken = self.store.write(async |conn| rows::take_challenge(conn, &digest, Timestamp::now()).await).await?;
        let Some(challenge) = taken.filter(|c| c.purpose == CeremonyPurpose::SignIn) else { return Ok(None) };
        Ok(passkey_account(&assertion.credential).map(|user_id| (challenge, user_id)))
    }

    /// Verifies a discoverable sign-in's answer against `user_id`'s passkey, in `tx` (whose
    /// caller has locked the account); `false` when it is not that account's or does not verify.
    pub async fn verify_sign_in(
        &self,
        tx: &mut Connection,
        user_id: Uuid,
        challenge: &Challenge,
        credential: &PublicKeyCredential,
    ) -> Result<bool, Error> {
        // A discoverable passkey names its account by the user handle it was registered with.
        if credential.get_user_unique_id() != Some(user_id.as_bytes().as_slice()) {
            return Ok(false);
        }
        self.verify(tx, user_id, challenge, credential, Timestamp::now()).await
    }

    /// Whether the passkey that gave `credential` is still `user_id`'s (it may have been removed
    /// since it was verified).
    pub async fn still_registered(
        &self,
        tx: &mut Connection,
        user_id: Uuid,
        credential: &PublicKeyCredential,
    ) -> Result<bool, Error> {
        let key = credential_key(credential.get_credential_id());
        Ok(rows::by_credential(tx, &key).await?.is_some_and(|stored| stored.user_id == user_id))
    }

    /// Checks `credential` against the ceremony `challenge` and `user_id`'s passkey that made it,
    /// and records the use (its signature counter).
    async fn verify(
        &self,
        tx: &mut Connection,
        user_id: Uuid,
        challenge: &Challenge,
        credential: &PublicKeyCredential,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let key = credential_key(credential.get_credential_id());
        let Some(stored) = rows::by_credential(tx, &key).await?.filter(|stored| stored.user_id == user_id) else {
            return Ok(false);
        };
        let mut passkey = decode(&stored)?;
        let verified = if challenge.purpose == CeremonyPurpose::SignIn {
            let state: DiscoverableAuthentication = serde_json::from_str(&challenge.state)
                .map_err(|e| Error::Internal(format!("stored sign-in state: {e}")))?;
            self.relying_party.finish_discoverable_authentication(credential, state, &[DiscoverableKey::from(&passkey)])
        } else {
            let state: PasskeyAuthentication = serde_json::from_str(&challenge.state)
                .map_err(|e| Error::Internal(format!("stored sign-in state: {e}")))?;
            self.relying_party.finish_passkey_authentication(credential, &state)
        };
        let result = match verified {
            Ok(result) => result,
            Err(error) => {
                tracing::info!(%user_id, %error, "passkey answer refused");
                return Ok(false);
            }
        };
        passkey.update_credential(&result);
        Ok(rows::record_use(tx, user_id, &key, &encode(&passkey)?, now).await?)
    }
}

/// The account a discoverable passkey's answer names (its user handle), before anything is verified.
pub fn passkey_account(credential: &PublicKeyCredential) -> Option<Uuid> {
    credential.get_user_unique_id().and_then(|handle| Uuid::from_slice(handle).ok())
}

/// The request options, for a modal `navigator.credentials.get()`: webauthn-rs asks for the
/// "conditional" mediation of an autofill field, which a sign-in button cannot use.
fn request_options(options: RequestChallengeResponse) -> Result<Value, Error> {
    let mut options = serde_json::to_value(options).map_err(|e| Error::Internal(format!("passkey options: {e}")))?;
    if let Some(object) = options.as_object_mut() {
        object.remove("mediation");
    }
    Ok(options)
}
