//! Second factors: enrolling an authenticator app (TOTP), passkeys (in `passkeys`) and the
//! recovery codes that stand in for them, and checking a factor during sign-in.
//!
//! Adding a factor needs the current password, and on an account that has a factor already, a
//! current one too: a stolen access token (even with the password) cannot add a factor the thief
//! controls and sign in with it later. The app counts only once a code from it confirms it.
//! Every code is used by one conditional update: a TOTP code is accepted once (its step is
//! recorded, and no earlier step is accepted after it), a recovery code once, a passkey
//! challenge once.

mod passkeys;

pub use passkeys::{Ceremony, PasskeyAssertion, PasskeyView, Registered, passkey_account};

use std::sync::Arc;
use std::time::Duration;

use qrcode::QrCode;
use qrcode::render::svg;
use secrecy::{ExposeSecret as _, SecretString};
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
use crate::domain::second_factor::{
    Factors, MfaPolicy, RECOVERY_CODES, RecoveryCode, TotpCode, TotpSecret, seal_context,
};
use crate::domain::time::Timestamp;
use crate::domain::user::User;
use crate::storage::passkeys as passkey_rows;
use crate::storage::second_factors as factors;
use crate::storage::{Connection, Store, StoreError, audit, sessions, users};

/// What a user is shown to add the authenticator app.
pub struct TotpEnrolment {
    /// Base32, for typing in.
    pub secret: String,
    pub otpauth_url: String,
    /// The URL as a QR code, an SVG document.
    pub qr_svg: String,
}

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

/// How long an enrolment waits for its confirming code.
const PENDING_ENROLMENT: Duration = Duration::from_secs(15 * 60);

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

    /// Starts adding an authenticator app: a new secret, not in force until
    /// [`Self::confirm_totp`]. Starting again replaces an unconfirmed one. An account with a
    /// passkey must prove it too (`proof`).
    pub async fn start_totp(
        &self,
        user: &User,
        password: SecretString,
        proof: Option<&Proof>,
        client: &ClientInfo,
    ) -> Result<TotpEnrolment, Error> {
        self.lockout.confirm_password(&self.hasher, user, password, client).await?;
        let secret = TotpSecret::generate();
        let account = user.profile.username.as_deref().or(user.profile.email.as_deref()).unwrap_or("account");
        let url = secret
            .otpauth_url(self.notices.product(), account)
            .ok_or_else(|| Error::Internal("could not build the otpauth URL".into()))?;
        let qr = QrCode::new(url.as_bytes()).map_err(|e| Error::Internal(format!("QR code: {e}")))?;
        let qr_svg = qr.render::<svg::Color<'_>>().min_dimensions(200, 200).build();
        let sealed = self.sealer.seal(&secret.to_base32(), &seal_context(user.id))?;
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        let now = Timestamp::now();
        if factors::factors(&mut tx, user.id).await?.totp {
            return Err(Error::FactorState("totp_already_enabled"));
        }
        if let Err(error) = self.prove_if_enrolled(&mut tx, user, proof, Purpose::AddFactor, client, now).await {
            drop(tx);
            return Err(self.refused(user.id, client, error).await);
        }
        if !factors::begin_totp(&mut tx, user.id, &sealed, now).await? {
            return Err(Error::FactorState("totp_already_enabled"));
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(TotpEnrolment { secret: secret.to_base32(), otpauth_url: url, qr_svg })
    }

    /// Puts the authenticator app in force with a code from it. When it is the account's first
    /// factor, answers a new set of recovery codes (shown this once) and ends the account's
    /// other sessions (they were opened with the password alone); beside a passkey, the codes
    /// the owner keeps stand and none are answered.
    pub async fn confirm_totp(
        &self,
        user: &User,
        current_session: Uuid,
        code: &TotpCode,
        client: &ClientInfo,
    ) -> Result<Vec<RecoveryCode>, Error> {
        let mut tx = self.store.begin().await?;
        // The account first, as every change to its factors: changes queue, never deadlock.
        users::lock_row(&mut tx, user.id).await?;
        let now = Timestamp::now();
        let stored = factors::find_totp(&mut tx, user.id).await?;
        let Some(stored) = stored.filter(|totp| !totp.confirmed && totp.created_at > now.minus(PENDING_ENROLMENT))
        else {
            return Err(Error::FactorState("totp_not_pending"));
        };
        if !self.accept(&mut tx, user.id, &stored.secret, code, true, now).await? {
            drop(tx);
            return Err(self.wrong_code(user.id, client).await);
        }
        let first = factors::factors(&mut tx, user.id).await?.passkeys == 0;
        let (codes, detail, what) = if first {
            let codes = new_recovery_codes(&mut tx, user.id, now).await?;
            let revoked = sessions::revoke_all_except(&mut tx, user.id, Some(current_session), now).await?;
            let what = "An authenticator app was added to your account: signing in now also asks for its code, \
                        and your other sessions were signed out.";
            (codes, json!({ "sessions_revoked": revoked }), what)
        } else {
            (Vec::new(), json!({}), "An authenticator app was added to your account.")
        };
        audit::insert(&mut tx, &AuditEvent::by_self(EventType::TotpEnabled, user.id, client, detail)).await?;
        self.notices.second_factor_changed(&mut tx, user, what, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        Ok(codes)
    }

    /// Removes the authenticator app (and, when it was the last factor, the recovery codes, which
    /// stand in for the factors); needs the password and a current factor, so neither a stolen
    /// token nor a stolen password alone can.
    pub async fn disable_totp(
        &self,
        user: &User,
        password: SecretString,
        proof: &Proof,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        self.lockout.confirm_password(&self.hasher, user, password, client).await?;
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        let found = factors::factors(&mut tx, user.id).await?;
        if !found.totp {
            return Err(Error::FactorState("totp_not_enabled"));
        }
        let now = Timestamp::now();
        let last = match self.confirm_removal(&mut tx, user, found, proof, Purpose::RemoveApp, client, now).await {
            Ok(last) => last,
            Err(error) => {
                drop(tx);
                return Err(self.refused(user.id, client, error).await);
            }
        };
        factors::delete_totp(&mut tx, user.id).await?;
        after_removal(&mut tx, user.id, last).await?;
        audit::insert(&mut tx, &AuditEvent::by_self(EventType::TotpDisabled, user.id, client, json!({}))).await?;
        let what = if last {
            "The authenticator app was removed from your account: signing in asks for the password alone."
        } else {
            "The authenticator app was removed from your account."
        };
        self.notices.second_factor_changed(&mut tx, user, what, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        Ok(())
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
        self.lockout.confirm_password(&self.hasher, user, password, client).await?;
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        if !factors::factors(&mut tx, user.id).await?.any() {
            return Err(Error::FactorState("mfa_not_enabled"));
        }
        let now = Timestamp::now();
        if !self.use_proof(&mut tx, user, proof, Purpose::NewRecoveryCodes, client, now).await? {
            drop(tx);
            return Err(self.wrong_code(user.id, client).await);
        }
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

    /// Uses a code of the account's confirmed authenticator app; `false` when wrong or replayed.
    async fn use_totp(
        &self,
        tx: &mut Connection,
        user_id: Uuid,
        code: &TotpCode,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let Some(stored) = factors::find_totp(tx, user_id).await?.filter(|totp| totp.confirmed) else {
            return Ok(false);
        };
        self.accept(tx, user_id, &stored.secret, code, false, now).await
    }

    /// Accepts `code` of the app whose stored secret is `secret` once: its step must be current
    /// and later than any accepted before (`confirming`: the app is not in force yet).
    async fn accept(
        &self,
        tx: &mut Connection,
        user_id: Uuid,
        secret: &str,
        code: &TotpCode,
        confirming: bool,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let Some(step) = self.secret(user_id, secret)?.matching_step(code, now.as_secs().unsigned_abs()) else {
            return Ok(false);
        };
        Ok(factors::use_step(tx, user_id, step, confirming, now).await?)
    }

    /// On an account that has a second factor, uses `proof` (which must be given) as one; on an
    /// account without, needs none. A missing proof is a validation error, a wrong one
    /// `InvalidCode`.
    async fn prove_if_enrolled(
        &self,
        tx: &mut Connection,
        user: &User,
        proof: Option<&Proof>,
        purpose: Purpose,
        client: &ClientInfo,
        now: Timestamp,
    ) -> Result<(), Error> {
        if !factors::factors(tx, user.id).await?.any() {
            return Ok(());
        }
        let Some(proof) = proof else {
            return Err(Error::invalid(
                "code",
                "required",
                "this account has a second factor: give a code or a passkey",
            ));
        };
        if self.use_proof(tx, user, proof, purpose, client, now).await? { Ok(()) } else { Err(Error::InvalidCode) }
    }

    /// Before one of the account's `found` factors is removed: a policy that covers the account
    /// keeps its last one, and `proof` must be a current factor (a wrong one is `InvalidCode`).
    /// Answers whether it is the last.
    #[allow(clippy::too_many_arguments)]
    async fn confirm_removal(
        &self,
        tx: &mut Connection,
        user: &User,
        found: Factors,
        proof: &Proof,
        purpose: Purpose,
        client: &ClientInfo,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let last = found.count() == 1;
        if last && self.policy.covers(user.role) {
            // The account would be held to enrolment at once.
            return Err(Error::FactorState("mfa_required_by_policy"));
        }
        if !self.use_proof(tx, user, proof, purpose, client, now).await? {
            return Err(Error::InvalidCode);
        }
        Ok(last)
    }

    /// The error to answer for a refused proof: a wrong one is counted like a wrong code.
    async fn refused(&self, user_id: Uuid, client: &ClientInfo, error: Error) -> Error {
        match error {
            Error::InvalidCode => self.wrong_code(user_id, client).await,
            other => other,
        }
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

    fn secret(&self, user_id: Uuid, stored: &str) -> Result<TotpSecret, Error> {
        let opened = self.sealer.open(stored, &seal_context(user_id))?;
        TotpSecret::from_base32(opened.expose_secret())
            .ok_or_else(|| Error::Internal(format!("the TOTP secret of {user_id} is not base32")))
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
