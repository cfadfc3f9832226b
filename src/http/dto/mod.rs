//! The JSON shapes of API.md, with their OpenAPI schemas. Request types reject unknown fields;
//! none of them derives `Debug`, so passwords cannot reach a log through one.

pub mod admin;
pub mod mfa;
pub mod passkeys;
pub mod problems;
pub mod wallets;

pub use problems::Problem;

use crate::http::reply::Json;
use axum::http::header;
use axum::response::IntoResponse;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::session::Session;
use crate::domain::time::Timestamp;
use crate::domain::user::User;
use crate::service::accounts::RegistrationInput;
use crate::service::auth::tokens::IssuedTokens;
use crate::service::cursor::Page;
use crate::service::profile::ProfilePatchInput;
use uuid::Uuid;

/// An account (API.md, "User").
#[derive(Serialize, ToSchema)]
pub struct UserView {
    #[schema(value_type = String, example = "0193a1b2-c3d4-7e5f-8071-8293a4b5c6d7")]
    pub id: Uuid,
    pub username: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    #[schema(example = "user")]
    pub role: &'static str,
    #[schema(example = "active")]
    pub status: &'static str,
    #[schema(value_type = Object)]
    pub metadata: Value,
    // Timestamps and the id are written straight into the answer: this is the hottest shape.
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub last_login_at: Option<Timestamp>,
    /// An address the user asked to change to and has not yet confirmed.
    pub pending_email: Option<String>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        let p = &user.profile;
        Self {
            id: user.id,
            username: p.username.clone(),
            email: p.email.clone(),
            email_verified: user.email_verified_at.is_some(),
            phone: p.phone.clone(),
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            display_name: p.display_name.clone(),
            role: user.role.as_str(),
            status: user.status.as_str(),
            metadata: Value::Object(p.metadata.as_map().clone()),
            created_at: user.created_at,
            updated_at: user.updated_at,
            last_login_at: user.last_login_at,
            pending_email: user.pending_email.clone(),
        }
    }
}

/// `{"user": User}`.
#[derive(Serialize, ToSchema)]
pub struct UserEnvelope {
    pub user: UserView,
}

/// `POST /v1/auth/register`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ada")]
    pub username: Option<String>,
    #[schema(example = "ada@example.com")]
    pub email: Option<String>,
    #[schema(example = "correct horse battery staple", format = Password)]
    pub password: String,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

impl From<RegisterRequest> for RegistrationInput {
    fn from(r: RegisterRequest) -> Self {
        Self {
            username: r.username,
            email: r.email,
            password: SecretString::from(r.password),
            phone: r.phone,
            first_name: r.first_name,
            last_name: r.last_name,
            display_name: r.display_name,
            metadata: r.metadata,
        }
    }
}

/// `POST /v1/auth/login`: exactly one of `username` and `email`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: Option<String>,
    pub email: Option<String>,
    #[schema(format = Password)]
    pub password: String,
}

/// What a sign-in answers (RFC 6749 field names).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    #[schema(example = 900)]
    pub expires_in: u64,
    pub refresh_token: String,
    #[schema(example = 2_592_000)]
    pub refresh_expires_in: u64,
    pub user: UserView,
}

impl TokenResponse {
    /// The answer that carries tokens: never stored by a cache or a browser (RFC 6749, 5.1).
    pub fn answer(tokens: IssuedTokens) -> impl IntoResponse {
        let headers = [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")];
        (headers, Json(Self::from(tokens)))
    }
}

impl From<IssuedTokens> for TokenResponse {
    fn from(tokens: IssuedTokens) -> Self {
        use secrecy::ExposeSecret as _;
        Self {
            access_token: tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token.expose_secret().to_owned(),
            refresh_expires_in: tokens.refresh_expires_in,
            user: UserView::from(&tokens.user),
        }
    }
}

/// Declares a request body with the profile fields of `PATCH /v1/me` (absent stays, `null`
/// clears) plus any further fields, and its conversion into a [`ProfilePatchInput`]. serde
/// cannot combine `flatten` with `deny_unknown_fields`, so the shared fields are written here once.
macro_rules! profile_patch {
    ($(#[$meta:meta])* $name:ident { $($(#[$extra_meta:meta])* $extra:ident: $extra_type:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<String>)]
            pub username: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<String>)]
            pub email: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<String>)]
            pub phone: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<String>)]
            pub first_name: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<String>)]
            pub last_name: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<String>)]
            pub display_name: Option<Option<String>>,
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<Object>)]
            pub metadata: Option<Option<Value>>,
            $($(#[$extra_meta])* pub $extra: $extra_type,)*
        }

        impl $name {
            /// The profile part, as the domain takes it.
            pub fn profile_patch(&self) -> ProfilePatchInput {
                ProfilePatchInput {
                    username: self.username.clone(),
                    email: self.email.clone(),
                    phone: self.phone.clone(),
                    first_name: self.first_name.clone(),
                    last_name: self.last_name.clone(),
                    display_name: self.display_name.clone(),
                    metadata: self.metadata.clone(),
                }
            }
        }
    };
}
pub(crate) use profile_patch;

profile_patch! {
    /// `PATCH /v1/me`: absent fields stay, `null` clears. Changing `email` needs
    /// `current_password`; the new address is pending until the link mailed to it is followed.
    UpdateMeRequest {
        /// Required with `email`.
        #[schema(format = Password)]
        current_password: Option<String>,
    }
}

/// A field that is present (even as `null`) becomes `Some`, so `null` can mean "clear".
pub(crate) fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `DELETE /v1/me`: the password, to confirm.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    #[schema(format = Password)]
    pub password: String,
}

/// `POST /v1/me/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(format = Password)]
    pub current_password: String,
    #[schema(format = Password)]
    pub new_password: String,
}

/// `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `POST /v1/auth/refresh`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `POST /v1/auth/logout`; the body may be left out.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Sign out every session of the user, not only this one.
    #[serde(default)]
    pub all: bool,
}

/// A signed-in session (API.md, "Session").
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

impl SessionView {
    pub fn new(session: &Session, current: uuid::Uuid) -> Self {
        Self {
            id: session.id.to_string(),
            created_at: session.created_at.to_rfc3339(),
            last_used_at: session.last_used_at.to_rfc3339(),
            expires_at: session.expires_at.to_rfc3339(),
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
            current: session.id == current,
        }
    }
}

/// `{"items": [Session]}`.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<SessionView>,
    pub next_cursor: Option<String>,
}

impl SessionList {
    /// The page as shown to the caller, whose own session is `current`.
    pub fn new(page: Page<Session>, current: Uuid) -> Self {
        let items = page.items.iter().map(|session| SessionView::new(session, current)).collect();
        Self { items, next_cursor: page.next_cursor }
    }
}

/// `limit` and `cursor` of a paginated list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 200 [default: 50].
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A JSON Web Key Set (RFC 7517) of Ed25519 public keys.
#[derive(Serialize, ToSchema)]
pub struct Jwks {
    #[schema(value_type = Vec<Object>, example = json!([{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "…", "alg": "EdDSA", "use": "sig"}]))]
    pub keys: Value,
}

/// `POST /v1/auth/verify-email`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The `token` of the link in the verification mail.
    pub token: String,
}

/// `POST /v1/auth/verify-email/resend`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendRequest {
    pub email: String,
}

/// `POST /v1/auth/password/forgot`: exactly one of `email` and `username`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    pub email: Option<String>,
    pub username: Option<String>,
}

/// `POST /v1/auth/password/reset`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The `token` of the link in the reset mail.
    pub token: String,
    #[schema(format = Password)]
    pub new_password: String,
}
