//! The authenticator app (TOTP): adding it (a secret, then a code that confirms it), removing
//! it, and accepting its codes, each once.

use std::time::Duration;

use qrcode::QrCode;
use qrcode::render::svg;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use uuid::Uuid;

use super::{Proof, Purpose, SecondFactors, after_removal, new_recovery_codes};
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::second_factor::{RecoveryCode, TotpCode, TotpSecret, seal_context};
use crate::domain::time::Timestamp;
use crate::domain::user::User;
use crate::service::error::Error;
use crate::storage::second_factors as factors;
use crate::storage::{Connection, StoreError, audit, sessions, users};

/// What a user is shown to add the authenticator app.
pub struct TotpEnrolment {
    /// Base32, for typing in.
    pub secret: String,
    pub otpauth_url: String,
    /// The URL as a QR code, an SVG document.
    pub qr_svg: String,
}

/// How long an enrolment waits for its confirming code.
const PENDING_ENROLMENT: Duration = Duration::from_secs(15 * 60);

impl SecondFactors {
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
        let secret = TotpSecret::generate();
        let account = user.profile.username.as_deref().or(user.profile.email.as_deref()).unwrap_or("account");
        let url = secret
            .otpauth_url(self.notices.product(), account)
            .ok_or_else(|| Error::Internal("could not build the otpauth URL".into()))?;
        let qr = QrCode::new(url.as_bytes()).map_err(|e| Error::Internal(format!("QR code: {e}")))?;
        let qr_svg = qr.render::<svg::Color<'_>>().min_dimensions(200, 200).build();
        let sealed = self.sealer.seal(&secret.to_base32(), &seal_context(user.id))?;
        let mut tx = self.begin_change(user, password, client).await?;
        let found = factors::factors(&mut tx, user.id).await?;
        if found.totp {
            return Err(Error::FactorState("totp_already_enabled"));
        }
        let mut tx = self.prove_if_enrolled(tx, found, user, proof, client).await?;
        if !factors::begin_totp(&mut tx, user.id, &sealed, Timestamp::now()).await? {
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
        let mut tx = self.begin_change(user, password, client).await?;
        let found = factors::factors(&mut tx, user.id).await?;
        if !found.totp {
            return Err(Error::FactorState("totp_not_enabled"));
        }
        let (mut tx, last) = self.confirm_removal(tx, user, found, proof, Purpose::RemoveApp, client).await?;
        let now = Timestamp::now();
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

    /// Uses a code of the account's confirmed authenticator app; `false` when wrong or replayed.
    pub(super) async fn use_totp(
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

    fn secret(&self, user_id: Uuid, stored: &str) -> Result<TotpSecret, Error> {
        let opened = self.sealer.open(stored, &seal_context(user_id))?;
        TotpSecret::from_base32(opened.expose_secret())
            .ok_or_else(|| Error::Internal(format!("the TOTP secret of {user_id} is not base32")))
    }
}
