//! Passkeys: requests and answers of `/v1/me/passkeys…` and `/v1/auth/passkey/…`. The WebAuthn
//! structures themselves (options, credentials) are as the WebAuthn specification and webauthn-rs
//! serialise them: base64url for binary fields.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use crate::domain::passkey::passkey_name;
use crate::domain::second_factor::RecoveryCode;
use crate::service::Error;
use crate::service::second_factors::{Ceremony, PasskeyAssertion, PasskeyView, Registered};

/// The longest challenge id accepted (they are 43 characters).
const MAX_CHALLENGE_ID: usize = 100;

/// A WebAuthn ceremony begun: pass `options` to the browser (`navigator.credentials.create()`
/// or `.get()`, with its base64url fields decoded) and send the result back with `challenge_id`
/// within five minutes.
#[derive(Serialize, ToSchema)]
pub struct CeremonyView {
    pub challenge_id: String,
    /// `{"publicKey": …}`: WebAuthn creation or request options.
    #[schema(value_type = Object)]
    pub options: Value,
}

impl From<Ceremony> for CeremonyView {
    fn from(ceremony: Ceremony) -> Self {
        use secrecy::ExposeSecret as _;
        Self { challenge_id: ceremony.challenge_id.expose_secret().to_owned(), options: ceremony.options }
    }
}

/// A passkey's answer to a challenge: the `PublicKeyCredential` the browser's
/// `navigator.credentials.get()` gave, its binary fields in base64url.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyAnswer {
    #[schema(max_length = 100)]
    pub challenge_id: String,
    #[schema(value_type = Object)]
    pub credential: Value,
}

impl PasskeyAnswer {
    pub fn assertion(&self) -> Result<PasskeyAssertion, Error> {
        Ok(PasskeyAssertion {
            challenge_id: challenge_id(&self.challenge_id)?,
            credential: credential::<PublicKeyCredential>(&self.credential)?,
        })
    }
}

/// `POST /v1/me/passkeys/finish`: the `PublicKeyCredential` the browser's
/// `navigator.credentials.create()` gave, and a name for it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRegistration {
    #[schema(max_length = 100)]
    pub challenge_id: String,
    #[schema(value_type = Object)]
    pub credential: Value,
    /// 1–200 characters; "Passkey" when left out.
    #[schema(example = "Laptop", max_length = 200)]
    pub name: Option<String>,
}

impl PasskeyRegistration {
    /// The challenge id, the credential and the name.
    pub fn parts(&self) -> Result<(SecretString, RegisterPublicKeyCredential, String), Error> {
        let name = passkey_name(self.name.as_deref()).map_err(|e| Error::from(e.at("name")))?;
        Ok((challenge_id(&self.challenge_id)?, credential::<RegisterPublicKeyCredential>(&self.credential)?, name))
    }
}

/// `POST /v1/auth/passkey/start`: the `mfa_token` of a sign-in's second step; none (or no body)
/// for a sign-in with a discoverable passkey alone.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignInStart {
    pub mfa_token: Option<String>,
}

/// A registered passkey.
#[derive(Serialize, ToSchema)]
pub struct PasskeyItem {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl From<PasskeyView> for PasskeyItem {
    fn from(view: PasskeyView) -> Self {
        Self {
            id: view.id.to_string(),
            name: view.name,
            created_at: view.created_at.to_rfc3339(),
            last_used_at: view.last_used_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// `GET /v1/me/passkeys`, oldest first.
#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    pub items: Vec<PasskeyItem>,
}

/// A passkey just registered; with `recovery_codes` (shown this once) when it is the account's
/// first factor.
#[derive(Serialize, ToSchema)]
pub struct PasskeyCreated {
    #[serde(flatten)]
    pub passkey: PasskeyItem,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["7K2M-9QXD-4RTB-HW3N"]))]
    pub recovery_codes: Option<Vec<String>>,
}

impl From<Registered> for PasskeyCreated {
    fn from(registered: Registered) -> Self {
        Self {
            passkey: registered.passkey.into(),
            recovery_codes: registered.recovery_codes.map(|codes| codes.iter().map(RecoveryCode::display).collect()),
        }
    }
}

fn challenge_id(raw: &str) -> Result<SecretString, Error> {
    if raw.is_empty() || raw.len() > MAX_CHALLENGE_ID || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid("challenge_id", "invalid", "not a challenge id this service gave"));
    }
    Ok(SecretString::from(raw.to_owned()))
}

fn credential<T: serde::de::DeserializeOwned>(raw: &Value) -> Result<T, Error> {
    serde_json::from_value(raw.clone()).map_err(|e| {
        Error::invalid(
            "credential",
            "invalid",
            format!("not a WebAuthn PublicKeyCredential as a browser gives it: {e}"),
        )
    })
}
