//! Passkeys: registering them on a signed-in account, listing and removing them, and using one
//! as a factor (a sign-in's second step, a discoverable sign-in, or to confirm a change).
//!
//! Every ceremony's state is kept in the database under the digest of a random id, so any node
//! finishes what another began; it is single use and lives five minutes. Registration asks for
//! a discoverable credential ("preferred"), so the passkey can later sign in without a name,
//! and for user verification, so a passkey is two factors on its own.

use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse,
};

use super::{Proof, Purpose, SecondFactors, after_removal, new_recovery_codes};
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::ids::new_id;
use crate::domain::passkey::{CHALLENGE_TTL, CeremonyPurpose, MAX_CREDENTIAL_BYTES, MAX_PASSKEYS, credential_key};
use crate::domain::second_factor::RecoveryCode;
use crate::domain::secrets;
use crate::domain::time::Timestamp;
use crate::domain::user::User;
use crate::service::error::Error;
use crate::storage::passkeys::{self as rows, Challenge, StoredPasskey};
use crate::storage::second_factors as factors;
use crate::storage::{Connection, StoreError, audit, sessions, users};

/// A ceremony begun: the id to finish it with, and the options for the browser's
/// `navigator.credentials.create()` or `.get()` (`publicKey` inside).
pub struct Ceremony {
    pub challenge_id: SecretString,
    pub options: Value,
}

/// A passkey's answer to a challenge.
#[derive(Debug, Clone)]
pub struct PasskeyAssertion {
    pub challenge_id: SecretString,
    pub credential: PublicKeyCredential,
}

/// A registered passkey, as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

impl From<&StoredPasskey> for PasskeyView {
    fn from(stored: &StoredPasskey) -> Self {
        Self {
            id: stored.id,
            name: stored.name.clone(),
            created_at: stored.created_at,
            last_used_at: stored.last_used_at,
        }
    }
}

/// A passkey just registered, with the recovery codes made when it is the account's first factor.
pub struct Registered {
    pub passkey: PasskeyView,
    pub recovery_codes: Option<Vec<RecoveryCode>>,
}

impl SecondFactors {
    /// Begins registering a passkey: the password, and on an account with a factor a current one
    /// too (`proof`), as for adding the app.
    pub async fn start_passkey(
        &self,
        user: &User,
        password: SecretString,
        proof: Option<&Proof>,
        client: &ClientInfo,
    ) -> Result<Ceremony, Error> {
        self.lockout.confirm_password(&self.hasher, user, password, client).await?;
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        let now = Timestamp::now();
        if let Err(error) = self.prove_if_enrolled(&mut tx, user, proof, Purpose::AddFactor, client, now).await {
            drop(tx);
            return Err(self.refused(user.id, client, error).await);
        }
        let existing = rows::of_user(&mut tx, user.id).await?;
        if existing.len() >= usize::try_from(MAX_PASSKEYS).unwrap_or(usize::MAX) {
            return Err(Error::FactorState("too_many_passkeys"));
        }
        let exclude =
            existing.iter().map(|stored| Ok(decode(stored)?.cred_id().clone())).collect::<Result<_, Error>>()?;
        let name = user.profile.username.as_deref().or(user.profile.email.as_deref()).unwrap_or("account");
        let (options, state) = self
            .relying_party
            .start_passkey_registration(user.id, name, name, Some(exclude))
            .map_err(|e| Error::Internal(format!("passkey registration options: {e}")))?;
        let challenge = Challenge {
            purpose: CeremonyPurpose::Register,
            user_id: Some(user.id),
            mfa_token_hash: None,
            state: encode(&state)?,
        };
        let challenge_id = store_challenge(&mut tx, &challenge, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Ceremony { challenge_id, options: discoverable(options)? })
    }

    /// Finishes a registration begun by [`Self::start_passkey`] in `user`'s session. When it is
    /// the account's first factor, its other sessions end (they were opened with the password
    /// alone) and the answer carries new recovery codes.
    pub async fn finish_passkey(
        &self,
        user: &User,
        current_session: Uuid,
        challenge_id: &SecretString,
        credential: &RegisterPublicKeyCredential,
        name: String,
        client: &ClientInfo,
    ) -> Result<Registered, Error> {
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        let now = Timestamp::now();
        let challenge = rows::take_challenge(&mut tx, &secrets::digest(challenge_id), now).await?;
        let Some(challenge) =
            challenge.filter(|c| c.purpose == CeremonyPurpose::Register && c.user_id == Some(user.id))
        else {
            return Err(Error::InvalidCode);
        };
        let state: PasskeyRegistration = serde_json::from_str(&challenge.state)
            .map_err(|e| Error::Internal(format!("stored registration state: {e}")))?;
        let passkey = match self.relying_party.finish_passkey_registration(credential, &state) {
            Ok(passkey) => passkey,
            Err(error) => {
                tracing::info!(user_id = %user.id, %error, "passkey registration refused");
                // The challenge stays used: a ceremony is tried once.
                tx.commit().await.map_err(StoreError::from)?;
                return Err(Error::InvalidCode);
            }
        };
        let before = factors::factors(&mut tx, user.id).await?;
        if before.passkeys >= MAX_PASSKEYS {
            return Err(Error::FactorState("too_many_passkeys"));
        }
        let credential = encode(&passkey)?;
        if credential.len() > MAX_CREDENTIAL_BYTES {
            // Browsers send no attestation when none is asked for; this one carries a
            // certificate chain (or worse) that would only bloat every later ceremony.
            return Err(Error::invalid("credential", "too_large", "the credential is larger than a passkey's"));
        }
        let key = credential_key(passkey.cred_id().as_ref());
        if rows::by_credential(&mut tx, &key).await?.is_some() {
            return Err(Error::FactorState("passkey_already_registered"));
        }
        let stored = StoredPasskey {
            id: new_id(),
            user_id: user.id,
            credential_key: key,
            name,
            credential,
            created_at: now,
            last_used_at: None,
        };
        rows::insert(&mut tx, &stored).await.map_err(|error| match error {
            StoreError::Conflict { .. } => Error::FactorState("passkey_already_registered"),
            other => other.into(),
        })?;
        let first = !before.any();
        let mut detail = json!({ "passkey_id": stored.id, "name": stored.name });
        let recovery_codes = if first {
            let codes = new_recovery_codes(&mut tx, user.id, now).await?;
            let revoked = sessions::revoke_all_except(&mut tx, user.id, Some(current_session), now).await?;
            detail["sessions_revoked"] = revoked.into();
            Some(codes)
        } else {
            None
        };
        audit::insert(&mut tx, &AuditEvent::by_self(EventType::PasskeyAdded, user.id, client, detail)).await?;
        let what = if first {
            "A passkey was added to your account: signing in with the password now also asks for it, \
             and your other sessions were signed out."
        } else {
            "A passkey was added to your account."
        };
        self.notices.second_factor_changed(&mut tx, user, what, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        if first {
            self.cache.forget_user(user.id);
        }
        Ok(Registered { passkey: PasskeyView::from(&stored), recovery_codes })
    }

    /// The account's passkeys, oldest first.
    pub async fn passkeys(&self, user_id: Uuid) -> Result<Vec<PasskeyView>, Error> {
        let stored = rows::of_user(&mut *self.store.conn().await?, user_id).await?;
        Ok(stored.iter().map(PasskeyView::from).collect())
    }

    /// Removes one of the account's passkeys, with the password and a current factor (which may
    /// be this passkey). When it is the last factor the recovery codes go with it, and a policy
    /// that covers the account refuses. The account's other sessions end: a passkey is removed
    /// when its device is lost, and sessions it opened must not outlive it.
    pub async fn remove_passkey(
        &self,
        user: &User,
        current_session: Uuid,
        passkey_id: Uuid,
        password: SecretString,
        proof: &Proof,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        self.lockout.confirm_password(&self.hasher, user, password, client).await?;
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        if !rows::of_user(&mut tx, user.id).await?.iter().any(|stored| stored.id == passkey_id) {
            return Err(Error::NotFound);
        }
        let found = factors::factors(&mut tx, user.id).await?;
        let now = Timestamp::now();
        let last = match self.confirm_removal(&mut tx, user, found, proof, Purpose::RemovePasskey, client, now).await {
            Ok(last) => last,
            Err(error) => {
                drop(tx);
                return Err(self.refused(user.id, client, error).await);
            }
        };
        rows::delete(&mut tx, user.id, passkey_id).await?;
        after_removal(&mut tx, user.id, last).await?;
        let revoked = sessions::revoke_all_except(&mut tx, user.id, Some(current_session), now).await?;
        let detail = json!({ "passkey_id": passkey_id, "sessions_revoked": revoked });
        audit::insert(&mut tx, &AuditEvent::by_self(EventType::PasskeyRemoved, user.id, client, detail)).await?;
        let what = if last {
            "A passkey was removed from your account and your other sessions were signed out: signing in asks \
             for the password alone."
        } else {
            "A passkey was removed from your account and your other sessions were signed out."
        };
        self.notices.second_factor_changed(&mut tx, user, what, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        self.cache.forget_user(user.id);
        Ok(())
    }

    /// Begins proving one of `user_id`'s passkeys: the second step of a sign-in (`mfa_token_hash`
    /// given: the digest of the token its password earned) or a signed-in account confirming a
    /// change of its factors.
    pub async fn challenge_passkey(&self, user_id: Uuid, mfa_token_hash: Option<String>) -> Result<Ceremony, Error> {
        let mut conn = self.store.write_conn().await?;
        let stored = rows::of_user(&mut conn, user_id).await?;
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
        let challenge_id = store_challenge(&mut conn, &challenge, Timestamp::now()).await?;
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
        let mut conn = self.store.write_conn().await?;
        let challenge_id = store_challenge(&mut conn, &challenge, Timestamp::now()).await?;
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
        let taken = rows::take_challenge(&mut *self.store.write_conn().await?, &digest, Timestamp::now()).await?;
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

/// Stores a ceremony; answers its id.
async fn store_challenge(conn: &mut Connection, challenge: &Challenge, now: Timestamp) -> Result<SecretString, Error> {
    let challenge_id = secrets::new_token();
    rows::insert_challenge(conn, &secrets::digest(&challenge_id), challenge, now, now.plus(CHALLENGE_TTL)).await?;
    Ok(challenge_id)
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("passkey state: {e}")))
}

fn decode(stored: &StoredPasskey) -> Result<Passkey, Error> {
    serde_json::from_str(&stored.credential).map_err(|e| Error::Internal(format!("passkey {}: {e}", stored.id)))
}

/// The creation options, asking for a discoverable credential. webauthn-rs discourages one (a
/// security key has little room for them); "preferred" lets such a key decline while phones,
/// computers and password managers (which make one anyway) can sign in without a name.
fn discoverable(options: CreationChallengeResponse) -> Result<Value, Error> {
    let mut options = serde_json::to_value(options).map_err(|e| Error::Internal(format!("passkey options: {e}")))?;
    if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection").and_then(Value::as_object_mut) {
        selection.insert("residentKey".into(), "preferred".into());
        selection.insert("requireResidentKey".into(), false.into());
    }
    Ok(options)
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
