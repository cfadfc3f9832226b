//! Passkeys on a signed-in account: registering them, listing and removing them (using one is
//! in `passkey_answers`). Registration asks for a discoverable credential ("preferred"), so the
//! passkey can later sign in without a name, and for user verification, so a passkey is two
//! factors on its own.

use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;
use webauthn_rs::prelude::{CreationChallengeResponse, PasskeyRegistration, RegisterPublicKeyCredential};

use super::ceremony::{Ceremony, decode, encode, store_challenge};
use super::{Proof, Purpose, SecondFactors, after_removal, new_recovery_codes};
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::ids::new_id;
use crate::domain::passkey::{CeremonyPurpose, MAX_CREDENTIAL_BYTES, MAX_PASSKEYS, credential_key};
use crate::domain::second_factor::RecoveryCode;
use crate::domain::secrets;
use crate::domain::time::Timestamp;
use crate::domain::user::User;
use crate::service::error::Error;
use crate::storage::passkeys::{self as rows, Challenge, StoredPasskey};
use crate::storage::second_factors as factors;
use crate::storage::{StoreError, audit, sessions, users};

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
        let mut tx = self.begin_change(user, password, client).await?;
        let found = factors::factors(&mut tx, user.id).await?;
        let mut tx = self.prove_if_enrolled(tx, found, user, proof, client).await?;
        if found.passkeys >= MAX_PASSKEYS {
            return Err(Error::FactorState("too_many_passkeys"));
        }
        let existing = rows::of_user(&mut tx, user.id).await?;
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
        let challenge_id = store_challenge(&mut tx, &challenge, Timestamp::now()).await?;
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
        let mut tx = self.begin_change(user, password, client).await?;
        if !rows::of_user(&mut tx, user.id).await?.iter().any(|stored| stored.id == passkey_id) {
            return Err(Error::NotFound);
        }
        let found = factors::factors(&mut tx, user.id).await?;
        let (mut tx, last) = self.confirm_removal(tx, user, found, proof, Purpose::RemovePasskey, client).await?;
        let now = Timestamp::now();
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
