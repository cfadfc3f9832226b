//! Second factors: requests and answers of `/v1/me/mfa…` and `/v1/auth/mfa`.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::passkeys::PasskeyAnswer;
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
        Self {
            totp: factors.totp,
            passkeys: u32::try_from(factors.passkeys).unwrap_or(u32::MAX),
            recovery_codes_left: factors.recovery_codes_left,
        }
    }
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

/// A change of the account's factors: the password, and a current factor: `code` (from the
/// app, or a recovery code) or `passkey` (an answer to `POST /v1/me/passkeys/challenge`), not
/// both. Adding the first factor needs none.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FactorConfirmation {
    #[schema(format = Password)]
    pub current_password: String,
    #[schema(example = "123456", max_length = 40)]
    pub code: Option<String>,
    pub passkey: Option<PasskeyAnswer>,
}

impl FactorConfirmation {
    /// The password, and the factor given, if any. Six digits are the app's code; any other
    /// code must be a recovery code.
    pub fn password_and_proof(self) -> Result<(SecretString, Option<Proof>), Error> {
        let proof = match (&self.code, &self.passkey) {
            (Some(code), None) => match TotpCode::parse(code) {
                Ok(code) => Some(Proof::Totp(code)),
                Err(_) => Some(Proof::Recovery(RecoveryCode::parse(code).map_err(|e| e.at("code"))?)),
            },
            (None, Some(answer)) => Some(Proof::Passkey(Box::new(answer.assertion()?))),
            (None, None) => None,
            (Some(_), Some(_)) => return Err(Error::invalid("code", "exactly_one", "give code or passkey, not both")),
        };
        Ok((SecretString::from(self.current_password), proof))
    }

    /// The password and the factor, which this change needs.
    pub fn password_and_required_proof(self) -> Result<(SecretString, Proof), Error> {
        let (password, proof) = self.password_and_proof()?;
        let proof = proof.ok_or_else(|| Error::invalid("code", "required", "give a current code or passkey"))?;
        Ok((password, proof))
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
