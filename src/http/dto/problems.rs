//! Problem details (RFC 9457) as the OpenAPI document shows them: the body every error answer
//! has, and the answers many routes share, declared once so that a route's annotation lists
//! them by name and spells out only what is particular to it.

use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// An RFC 9457 problem (every error answer).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    #[schema(example = "/problems/validation_failed")]
    pub r#type: String,
    pub title: String,
    pub status: u16,
    #[schema(example = "validation_failed")]
    pub code: String,
    pub detail: Option<String>,
    /// Present on validation failures only.
    pub errors: Option<Vec<ProblemField>>,
    /// Present on `mfa_required` only: the single-use token that finishes the sign-in at
    /// `POST /v1/auth/mfa` (five minutes).
    pub mfa_token: Option<String>,
    /// Present on `mfa_required` only: what can finish the sign-in.
    #[schema(example = json!(["totp", "recovery_code"]))]
    pub mfa_methods: Option<Vec<String>>,
    pub request_id: Option<String>,
}

/// One refused field of a `validation_failed` problem.
#[derive(Serialize, ToSchema)]
pub struct ProblemField {
    pub field: String,
    pub code: String,
    pub message: String,
}

/// `401 unauthenticated`: no bearer token, or one that is malformed, forged, expired or of a
/// revoked session.
#[derive(IntoResponses)]
#[response(status = 401, description = "`unauthenticated`", content_type = "application/problem+json")]
pub struct Unauthenticated(pub Problem);

/// `403 forbidden`: signed in, but the role or rank does not allow it.
#[derive(IntoResponses)]
#[response(status = 403, description = "`forbidden`", content_type = "application/problem+json")]
pub struct Forbidden(pub Problem);

/// `403 wrong_password`: the password given to confirm the change is wrong.
#[derive(IntoResponses)]
#[response(status = 403, description = "`wrong_password`", content_type = "application/problem+json")]
pub struct WrongPassword(pub Problem);

/// `403 account_disabled`.
#[derive(IntoResponses)]
#[response(status = 403, description = "`account_disabled`", content_type = "application/problem+json")]
pub struct AccountDisabled(pub Problem);

/// `404 not_found`.
#[derive(IntoResponses)]
#[response(status = 404, description = "`not_found`", content_type = "application/problem+json")]
pub struct NotFound(pub Problem);

/// `409 username_taken` or `email_taken`.
#[derive(IntoResponses)]
#[response(status = 409, description = "`username_taken` or `email_taken`", content_type = "application/problem+json")]
pub struct Taken(pub Problem);

/// `422 validation_failed`, with every refused field named.
#[derive(IntoResponses)]
#[response(status = 422, description = "`validation_failed`", content_type = "application/problem+json")]
pub struct ValidationFailed(pub Problem);

/// `503 unavailable`, with `Retry-After`.
#[derive(IntoResponses)]
#[response(status = 503, description = "`unavailable`", content_type = "application/problem+json")]
pub struct Unavailable(pub Problem);

/// `429 rate_limited`, with `Retry-After`: too many requests from this client network.
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "`rate_limited`: too many requests to this route from your network; with `Retry-After` (seconds)",
    content_type = "application/problem+json"
)]
pub struct RateLimited(pub Problem);

/// `429 rate_limited` or `too_many_attempts`, with `Retry-After`.
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "`rate_limited` (too many requests from your network) or `too_many_attempts` (too many wrong passwords for this account: no password is checked until `Retry-After` seconds pass; answered alike whether or not the account exists)",
    content_type = "application/problem+json"
)]
pub struct Throttled(pub Problem);

/// `429 too_many_attempts`, with `Retry-After`: too many wrong passwords for this account.
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "`too_many_attempts`: too many wrong passwords for this account lately; with `Retry-After` (seconds)",
    content_type = "application/problem+json"
)]
pub struct TooManyAttempts(pub Problem);

/// `401 invalid_code`: the second-factor code or passkey answer is wrong, or was used already.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "`invalid_code`: a code or passkey answer that is wrong, or was used already",
    content_type = "application/problem+json"
)]
pub struct InvalidCode(pub Problem);

/// `401` on a signed-in change that also takes a code: either the token or the code.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "`unauthenticated` (no valid bearer token) or `invalid_code` (a code or passkey answer that is wrong, or was used already)",
    content_type = "application/problem+json"
)]
pub struct UnauthenticatedOrInvalidCode(pub Problem);

/// `409`: the second factors do not allow this now.
#[derive(IntoResponses)]
#[response(
    status = 409,
    description = "`totp_already_enabled`, `totp_not_pending`, `totp_not_enabled`, `mfa_not_enabled`, `mfa_required_by_policy` or `no_passkeys`",
    content_type = "application/problem+json"
)]
pub struct FactorState(pub Problem);
