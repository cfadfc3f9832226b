//! Second factors: requests and answers of `/v1/me/mfa…` and `/v1/auth/mfa`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::second_factor::{Factors, RecoveryCode, TotpCode};
use crate::service::Error;
use crate::service::second_factors::{Proof, TotpEnrolment};

/// `GET /v1/me/mfa`.
#[derive(Serialize, ToSchema)]
pub struct MfaStatus {
    /// Whether an authenticator app is in force.
    pub totp: bool,
    /// Passkeys registered.
    pub passkeys: u32,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

impl From<Factors> for MfaStatus {
    fn from(factors: Factors) -> Self {
        Self { totp: factors.totp, passkeys: 0, recovery_codes_left: factors.recovery_codes_left }
    }
}

/// `POST /v1/me/mfa/totp`: the password, to confirm.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CurrentPassword {
    #[schema(format = Password)]
    pub current_password: String,
}

/// The new authenticator app's secret, to scan or type in; not in force until confirmed.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// Base32 (RFC 4648), for typing in.
    pub secret: String,
    #[schema(example = "otpauth://totp/tessera:ada?secret=…&issuer=tessera&algorithm=SHA1&digits=6&period=30")]
    pub otpauth_url: String,
    /// The `otpauth_url` as a QR code: an SVG document.
    pub qr_svg: String,
}

impl From<TotpEnrolment> for TotpEnrolmentView {
    fn from(enrolment: TotpEnrolment) -> Self {
        Self { secret: enrolment.secret, otpauth_url: enrolment.otpauth_url, qr_svg: enrolment.qr_svg }
    }
}

/// `POST /v1/me/mfa/totp/confirm`: a code the app shows now.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmation {
    #[schema(example = "123456", max_length = 16)]
    pub code: String,
}

impl TotpConfirmation {
    pub fn code(&self) -> Result<TotpCode, Error> {
        TotpCode::parse(&self.code).map_err(|e| e.at("code").into())
    }
}

/// `DELETE /v1/me/mfa/totp` and `POST /v1/me/mfa/recovery-codes`: the password and a current
/// code (from the app, or a recovery code).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordAndCode {
    #[schema(format = Password)]
    pub current_password: String,
    #[schema(example = "123456", max_length = 40)]
    pub code: String,
}

impl PasswordAndCode {
    /// Six digits are the app's code; anything else must be a recovery code.
    pub fn proof(&self) -> Result<Proof, Error> {
        match TotpCode::parse(&self.code) {
            Ok(code) => Ok(Proof::Totp(code)),
            Err(_) => RecoveryCode::parse(&self.code).map(Proof::Recovery).map_err(|e| e.at("code").into()),
        }
    }
}

/// Recovery codes, shown this once: each signs in once in place of the app's code.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    #[schema(example = json!(["7K2M-9QXD-4RTB-HW3N"]))]
    pub recovery_codes: Vec<String>,
}

impl From<Vec<RecoveryCode>> for RecoveryCodes {
    fn from(codes: Vec<RecoveryCode>) -> Self {
        Self { recovery_codes: codes.iter().map(RecoveryCode::display).collect() }
    }
}

/// `POST /v1/auth/mfa`: the token `mfa_required` handed out, and exactly one of `totp_code`
/// and `recovery_code`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaRequest {
    pub mfa_token: String,
    #[schema(example = "123456", max_length = 16)]
    pub totp_code: Option<String>,
    #[schema(max_length = 40)]
    pub recovery_code: Option<String>,
}

impl MfaRequest {
    pub fn proof(&self) -> Result<Proof, Error> {
        match (&self.totp_code, &self.recovery_code) {
            (Some(code), None) => TotpCode::parse(code).map(Proof::Totp).map_err(|e| e.at("totp_code").into()),
            (None, Some(code)) => {
                RecoveryCode::parse(code).map(Proof::Recovery).map_err(|e| e.at("recovery_code").into())
            }
            _ => Err(Error::invalid("totp_code", "exactly_one", "give exactly one of totp_code and recovery_code")),
        }
    }
}
