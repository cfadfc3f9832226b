//! Second factors: enrolling an authenticator app (TOTP) and its recovery codes, and checking a
//! code during sign-in.
//!
//! Enrolment needs the current password, so a stolen access token cannot add a factor the
//! thief controls (and lock the owner out); the factor counts only once a code from the app
//! confirms it. Every code is used by one conditional update: a TOTP code is accepted once (its
//! step is recorded, and no earlier step is accepted after it), a recovery code once.

use std::sync::Arc;
use std::time::Duration;

use qrcode::QrCode;
use qrcode::render::svg;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use uuid::Uuid;

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

/// A second factor offered to finish a sign-in.
#[derive(Debug, Clone)]
pub enum Proof {
    Totp(TotpCode),
    Recovery(RecoveryCode),
}

/// What a code is used for, as the owner's notice says it.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    SignIn,
    RemoveApp,
    NewRecoveryCodes,
}

impl Purpose {
    fn as_words(self) -> &'static str {
        match self {
            Self::SignIn => "to sign in",
            Self::RemoveApp => "to remove the authenticator app",
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
}

impl SecondFactors {
    pub fn new(store: Store, parts: FactorParts) -> Self {
        let FactorParts { sealer, hasher, lockout, notices, cache, policy } = parts;
        Self { store, sealer, hasher, lockout, notices, cache, policy }
    }

    /// The account's factors.
    pub async fn status(&self, user_id: Uuid) -> Result<Factors, Error> {
        Ok(factors::factors(&mut *self.store.conn().await?, user_id).await?)
    }

    /// Starts adding an authenticator app: a new secret, not in force until
    /// [`Self::confirm_totp`]. Starting again replaces an unconfirmed one.
    pub async fn start_totp(
        &self,
        user: &User,
        password: SecretString,
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
        if !factors::begin_totp(&mut tx, user.id, &sealed, Timestamp::now()).await? {
            return Err(Error::FactorState("totp_already_enabled"));
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(TotpEnrolment { secret: secret.to_base32(), otpauth_url: url, qr_svg })
    }

    /// Puts the authenticator app in force with a code from it, and answers a new set of
    /// recovery codes (shown this once).
    /// The account's other sessions end: they were opened with the password alone.
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
        let codes = new_recovery_codes(&mut tx, user.id, now).await?;
        let revoked = sessions::revoke_all_except(&mut tx, user.id, Some(current_session), now).await?;
        let detail = json!({ "sessions_revoked": revoked });
        audit::insert(&mut tx, &AuditEvent::by_self(EventType::TotpEnabled, user.id, client, detail)).await?;
        let what = "An authenticator app was added to your account: signing in now also asks for its code, \
                    and your other sessions were signed out.";
        self.notices.second_factor_changed(&mut tx, user, what, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.notices.wake();
        Ok(codes)
    }

    /// Removes the authenticator app (and the recovery codes, which stand in for it); needs the
    /// password and a current code from the app or a recovery code, so neither a stolen token
    /// nor a stolen password alone can.
    pub async fn disable_totp(
        &self,
        user: &User,
        password: SecretString,
        proof: &Proof,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        self.lockout.confirm_password(&self.hasher, user, password, client).await?;
        if self.policy.covers(user.role) {
            // Its only factor (passkeys are not built yet): the account would be held to
            // enrolment at once.
            return Err(Error::FactorState("mfa_required_by_policy"));
        }
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        if !factors::factors(&mut tx, user.id).await?.totp {
            return Err(Error::FactorState("totp_not_enabled"));
        }
        let now = Timestamp::now();
        if !self.use_proof(&mut tx, user, proof, Purpose::RemoveApp, client, now).await? {
            drop(tx);
            return Err(self.wrong_code(user.id, client).await);
        }
        factors::delete_totp(&mut tx, user.id).await?;
        factors::delete_recovery_codes(&mut tx, user.id).await?;
        factors::delete_mfa_tokens_of(&mut tx, user.id).await?;
        audit::insert(&mut tx, &AuditEvent::by_self(EventType::TotpDisabled, user.id, client, json!({}))).await?;
        let what = "The authenticator app was removed from your account: signing in asks for the password alone.";
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
        if !factors::factors(&mut tx, user.id).await?.totp {
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
    /// caller checked may; `None`: an operator at the command line): the app, the recovery codes and pending second steps, and signs
    /// the account out everywhere (the app may have been lost with a signed-in device).
    /// Audited, and the owner is told.
    pub async fn reset(&self, user: &User, actor: Option<Uuid>, client: &ClientInfo) -> Result<(), Error> {
        let mut tx = self.store.begin().await?;
        users::lock_row(&mut tx, user.id).await?;
        let had_app = factors::factors(&mut tx, user.id).await?.totp;
        factors::delete_totp(&mut tx, user.id).await?;
        factors::delete_recovery_codes(&mut tx, user.id).await?;
        factors::delete_mfa_tokens_of(&mut tx, user.id).await?;
        let revoked = sessions::revoke_all_except(&mut tx, user.id, None, Timestamp::now()).await?;
        let detail = json!({ "totp_removed": had_app, "sessions_revoked": revoked });
        let event = AuditEvent::new(EventType::SecondFactorsReset, actor, Some(user.id), client, detail);
        audit::insert(&mut tx, &event).await?;
        let now = Timestamp::now();
        if had_app {
            let what = "An administrator removed the second factors of your account and signed it out everywhere: \
                        signing in asks for the password alone until you add an authenticator app again.";
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
            if found.recovery_codes_left > 0 {
                methods.push("recovery_code");
            }
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
            Proof::Recovery(code) => {
                if !factors::use_recovery_code(tx, user.id, &code.digest(), now).await? {
                    return Ok(false);
                }
                let left = factors::factors(tx, user.id).await?.recovery_codes_left;
                let detail = json!({ "recovery_codes_left": left });
                audit::insert(tx, &AuditEvent::by_self(EventType::RecoveryCodeUsed, user.id, client, detail)).await?;
                let what = format!(
                    "A recovery code was used {} on your account; {left} are left. \
                     If you have lost your authenticator app, add it again and print new codes.",
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

/// Replaces the account's recovery codes with a new set; answers them (the only time they are
/// seen: only digests are kept).
async fn new_recovery_codes(tx: &mut Connection, user_id: Uuid, now: Timestamp) -> Result<Vec<RecoveryCode>, Error> {
    let codes: Vec<RecoveryCode> = (0..RECOVERY_CODES).map(|_| RecoveryCode::generate()).collect();
    let digests: Vec<String> = codes.iter().map(RecoveryCode::digest).collect();
    factors::replace_recovery_codes(tx, user_id, &digests, now).await?;
    Ok(codes)
}
