//! Second factors: enrolling an authenticator app (TOTP), passkeys (in `passkeys`) and the
//! recovery codes that stand in for them, and checking a factor during sign-in.
//!
//! Adding a factor needs the current password, and on an account that has a factor already, a
//! current one too: a stolen access token (even with the password) cannot add a factor the thief
//! controls and sign in with it later. The app counts only once a code from it confirms it.
//! Every code is used by one conditional update: a TOTP code is accepted once (its step is
//! recorded, and no earlier step is accepted after it), a recovery code once, a passkey
//! challenge once.

mod ceremony;
mod passkey_answers;
mod passkeys;
mod totp;

pub use ceremony::Ceremony;
pub use passkey_answers::{PasskeyAssertion, passkey_account};
pub use passkeys::{PasskeyView, Registered};
pub use totp::TotpEnrolment;

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::Webauthn;

use super::abuse::lockout::Lockout;
use super::auth::cache::AuthCache;
use super::error::Error;
use super::hashing::PasswordHasher;
use super::notices::Notices;
use super::sealing::Sealer;
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::second_factor::{Factors, MfaPolicy, RECOVERY_CODES, RecoveryCode, TotpCode};
use crate::domain::time::Timestamp;
use crate::domain::user::User;
use crate::storage::passkeys as passkey_rows;
use crate::storage::second_factors as factors;
use crate::storage::{Connection, Store, StoreError, Tx, audit, sessions, users};

/// A second factor offered to finish a sign-in or to confirm a change of factors.
#[derive(Debug, Clone)]
pub enum Proof {
    Totp(TotpCode),
    Recovery(RecoveryCode),
    Passkey(Box<PasskeyAssertion>),
}

impl Proof {
    /// What the audit trail calls it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Totp(_) => "totp",
            Self::Recovery(_) => "recovery_code",
            Self::Passkey(_) => "passkey",
        }
    }
}

/// What a code is used for, as the owner's notice says it.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    SignIn,
    AddFactor,
    RemoveApp,
    RemovePasskey,
    NewRecoveryCodes,
}

impl Purpose {
    fn as_words(self) -> &'static str {
        match self {
            Self::SignIn => "to sign in",
            Self::AddFactor => "to add a second factor",
            Self::RemoveApp => "to remove the authenticator app",
            Self::RemovePasskey => "to remove a passkey",
            Self::NewRecoveryCodes => "to make new recovery codes",
        }
    }
}

/// Second factors: enrolment and checks.
#[derive(Clone)]
pub struct SecondFactors {
    store: Store,
    sealer: Sealer,
    hasher: PasswordHasher,
    lockout: Lockout,
    notices: Notices,
    cache: Arc<AuthCache>,
    policy: MfaPolicy,
    relying_party: Arc<Webauthn>,
}

/// What second factors are built from besides the store.
pub struct FactorParts {
    pub sealer: Sealer,
    pub hasher: PasswordHasher,
    pub lockout: Lockout,
    pub notices: Notices,
    pub cache: Arc<AuthCache>,
    /// Accounts that must keep a second factor.
    pub policy: MfaPolicy,
    /// This service as a WebAuthn relying party: its id and the origins passkeys work from.
    pub relying_party: Arc<Webauthn>,
}

impl SecondFactors {
    pub fn new(store: Store, parts: FactorParts) -> Self {
        let FactorParts { sealer, hasher, lockout, notices, cache, policy, relying_party } = parts;
        Self { store, sealer, hasher, lockout, notices, cache, policy, relying_party }
    }

    /// The account's factors.
    pub async fn status(&self, user_id: Uuid) -> Result<Factors, Error> {
        Ok(factors::factors(&mut *self.store.conn().await?, user_id).await?)
    }

    /// A new set of recovery codes in place of the old (which stop working). Needs the password
    /// and a current code, like removing the app: with the password alone, a stolen access
    /// token could print itself codes that sign in anywhere.
    pub async fn regenerate_recovery_codes(
        &self,
        user: &User,
        password: SecretString,
        proof: &Proof,
        client: &ClientInfo,
    ) -> Result<Vec<RecoveryCode>, Error> {
        let mut tx = self.begin_change(user, password, client).await?;
        if !factors::factors(&mut tx, user.id).await?.any() {
            return Err(Error::FactorState("mfa_not_enabled"));
        }
        let mut tx = self.proven(tx, user, proof, Purpose::NewRecoveryCodes, client).await?;
        let now = Timestamp::now();
        let codes = new_recovery_codes(&mut tx, user.id, now).await?;
        let event = AuditEvent::by_self(EventType::RecoveryCodesRegenerated, user.id, client, json!({}));
        audit::insert(&mut tx, &event).await?;
        let what = "New recovery codes were made for your account; the old ones no longer work.";
        self.notices.second_factor_changed(&mut tx, user, what, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        Ok(codes)
    }

    /// Removes every second factor of `user` at an administrator's request (`actor`, whom the
    /// caller checked may; `None`: an operator at the command line): the app, the passkeys, the
    /// recovery codes and pending second steps and ceremonies, and signs
    /// the account out everywhere (the app may have been lost with a signed-in device).
    /// Audited, and the owner is told.
    pub async fn reset(&self, user: &User, actor: Option<Uuid>, client: &ClientInfo) -> Result<(), Error> {
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        let had_app = factors::factors(&mut tx, user.id).await?.totp;
        factors::delete_totp(&mut tx, user.id).await?;
        let passkeys_removed = passkey_rows::delete_all(&mut tx, user.id).await?;
        passkey_rows::delete_challenges_of(&mut tx, user.id).await?;
        factors::delete_recovery_codes(&mut tx, user.id).await?;
        factors::delete_mfa_tokens_of(&mut tx, user.id).await?;
        let revoked = sessions::revoke_all_except(&mut tx, user.id, None, Timestamp::now()).await?;
        let detail =
            json!({ "totp_removed": had_app, "passkeys_removed": passkeys_removed, "sessions_revoked": revoked });
        let event = AuditEvent::new(EventType::SecondFactorsReset, actor, Some(user.id), client, detail);
        audit::insert(&mut tx, &event).await?;
        let now = Timestamp::now();
        if had_app || passkeys_removed > 0 {
            let what = "An administrator removed the second factors of your account and signed it out everywhere: \
                        signing in asks for the password alone until you add a factor again.";
            self.notices.second_factor_changed(&mut tx, user, what, now).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        self.cache.forget_user(user.id);
        Ok(())
    }

    /// The methods that can finish `user_id`'s sign-in; empty when the password suffices.
    pub async fn methods(&self, user_id: Uuid) -> Result<Vec<&'static str>, Error> {
        let found = self.status(user_id).await?;
        let mut methods = Vec::new();
        if found.totp {
            methods.push("totp");
        }
        if found.passkeys > 0 {
            methods.push("passkey");
        }
        if found.any() && found.recovery_codes_left > 0 {
            methods.push("recovery_code");
        }
        Ok(methods)
    }

    /// Uses `proof` as `user`'s second factor, in the sign-in's transaction `tx`; `false` when
    /// it is wrong or used. A recovery code used is audited and mailed about.
    pub async fn use_proof(
        &self,
        tx: &mut Connection,
        user: &User,
        proof: &Proof,
        purpose: Purpose,
        client: &ClientInfo,
        now: Timestamp,
    ) -> Result<bool, Error> {
        match proof {
            Proof::Totp(code) => self.use_totp(tx, user.id, code, now).await,
            Proof::Passkey(assertion) => self.use_passkey(tx, user.id, assertion, purpose, now).await,
            Proof::Recovery(code) => {
                if !factors::use_recovery_code(tx, user.id, &code.digest(), now).await? {
                    return Ok(false);
                }
                let left = factors::factors(tx, user.id).await?.recovery_codes_left;
                let detail = json!({ "recovery_codes_left": left });
                audit::insert(tx, &AuditEvent::by_self(EventType::RecoveryCodeUsed, user.id, client, detail)).await?;
                let what = format!(
                    "A recovery code was used {} on your account; {left} are left. \
                     If you have lost a device, remove it from your account and print new codes.",
                    purpose.as_words()
                );
                self.notices.second_factor_changed(tx, user, &what, now).await?;
                Ok(true)
            }
        }
    }

    /// Wakes the mail worker after a commit that queued a notice.
    pub fn mail_queued(&self) {
        self.notices.wake();
    }

    /// Opens a change of `user`'s factors: the password must be right, then the account's row is
    /// locked first, as in every change of its factors, so that changes queue and never deadlock.
    async fn begin_change(&self, user: &User, password: SecretString, client: &ClientInfo) -> Result<Tx, Error> {
        self.lockout.confirm_password(&self.hasher, user, password, client).await?;
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        Ok(tx)
    }

    /// Uses `proof` as a current factor in `tx`, which it hands back. A wrong one ends `tx`
    /// before it is counted toward the lockout (counting takes a connection of its own, and
    /// SQLite has one writer), and answers `InvalidCode`.
    async fn proven(
        &self,
        mut tx: Tx,
        user: &User,
        proof: &Proof,
        purpose: Purpose,
        client: &ClientInfo,
    ) -> Result<Tx, Error> {
        if self.use_proof(&mut tx, user, proof, purpose, client, Timestamp::now()).await? {
            return Ok(tx);
        }
        drop(tx);
        Err(self.wrong_code(user.id, client).await)
    }

    /// Before a factor is added to an account whose factors are `found`: none is needed on an
    /// account without one; otherwise `proof` must be given (a validation error if not) and
    /// current ([`Self::proven`]).
    async fn prove_if_enrolled(
        &self,
        tx: Tx,
        found: Factors,
        user: &User,
        proof: Option<&Proof>,
        client: &ClientInfo,
    ) -> Result<Tx, Error> {
        if !found.any() {
            return Ok(tx);
        }
        let Some(proof) = proof else {
            return Err(Error::invalid(
                "code",
                "required",
                "this account has a second factor: give a code or a passkey",
            ));
        };
        self.proven(tx, user, proof, Purpose::AddFactor, client).await
    }

    /// Before one of the account's `found` factors is removed: a policy that covers the account
    /// keeps its last one, and `proof` must be current ([`Self::proven`]). Hands `tx` back with
    /// whether it is the last.
    async fn confirm_removal(
        &self,
        tx: Tx,
        user: &User,
        found: Factors,
        proof: &Proof,
        purpose: Purpose,
        client: &ClientInfo,
    ) -> Result<(Tx, bool), Error> {
        let last = found.count() == 1;
        if last && self.policy.covers(user.role) {
            // The account would be held to enrolment at once.
            return Err(Error::FactorState("mfa_required_by_policy"));
        }
        Ok((self.proven(tx, user, proof, purpose, client).await?, last))
    }

    /// A wrong code given to confirm a change: counted toward the sign-in lockout like a wrong
    /// password.
    async fn wrong_code(&self, user_id: Uuid, client: &ClientInfo) -> Error {
        let subject = super::abuse::lockout::Subject::account(user_id, client);
        match self.lockout.charge(&subject).await {
            Ok(charge) => match self.lockout.failed(&subject, charge, client).await {
                Ok(()) => Error::InvalidCode,
                Err(error) => error,
            },
            Err(error) => error,
        }
    }
}

/// After a factor was removed: pending second steps end (they were offered the old factors),
/// and with the last factor the recovery codes go, which stood in for the factors.
async fn after_removal(tx: &mut Connection, user_id: Uuid, last: bool) -> Result<(), Error> {
    if last {
        factors::delete_recovery_codes(tx, user_id).await?;
    }
    factors::delete_mfa_tokens_of(tx, user_id).await?;
    Ok(())
}

/// Replaces the account's recovery codes with a new set; answers them (the only time they are
/// seen: only digests are kept).
async fn new_recovery_codes(tx: &mut Connection, user_id: Uuid, now: Timestamp) -> Result<Vec<RecoveryCode>, Error> {
    let codes: Vec<RecoveryCode> = (0..RECOVERY_CODES).map(|_| RecoveryCode::generate()).collect();
    let digests: Vec<String> = codes.iter().map(RecoveryCode::digest).collect();
    factors::replace_recovery_codes(tx, user_id, &digests, now).await?;
    Ok(codes)
}
