//! `ApiError`: every failure the edge answers, rendered as RFC 9457 problem details.
//!
//! Handlers return `ApiError` (usually through `?` on a domain or store error). Its response
//! carries the problem as an extension; the [`render_problems`] middleware writes the body with
//! the request id, turns axum's own plain 404/405/413/415 answers into problems, and logs the
//! hidden cause of every 5xx with the request id. The cause never reaches the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::FieldError;
use crate::service;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `code` of the problem an error response carries, left on the response for the metrics.
#[derive(Clone, Copy, Debug)]
pub struct ProblemCode(pub &'static str);

/// Marks a response as a finished HTML page (the hosted pages behind mailed links), which
/// [`render_problems`] passes through even when its status is an error.
#[derive(Clone, Copy)]
pub struct HtmlPage;

/// One failure, with its stable `code`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: Option<String>,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
    /// Members added to the problem (RFC 9457 extensions), such as `mfa_token`.
    pub extra: Option<serde_json::Value>,
    /// What went wrong inside, for the log only.
    cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str) -> Self {
        Self { status, code, title, detail: None, errors: Vec::new(), retry_after: None, extra: None, cause: None }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", "Malformed request").detail(detail)
    }

    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required")
            .detail("a valid bearer access token is required")
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found")
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        let mut error = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "Request validation failed")
            .detail(detail);
        error.errors = errors;
        error
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error")
            .detail("something went wrong on our side; it has been logged")
            .cause(cause)
    }

    pub fn unavailable(cause: impl std::fmt::Display, retry_after: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable")
            .detail("the service cannot answer right now; try again shortly")
            .retry_after(retry_after)
            .cause(cause)
    }

    /// `429 rate_limited`: this client sent more requests to the route than it may.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests")
            .detail("too many requests from your network to this route; try again after Retry-After seconds")
            .retry_after(retry_after)
    }

    /// `429 too_many_attempts`: the account is locked after wrong passwords. Worded the same
    /// whether or not the account exists.
    pub fn too_many_attempts(retry_after: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "Too many attempts")
            .detail("too many failed sign-ins; try again after Retry-After seconds")
            .retry_after(retry_after)
    }

    /// The answer for a plain error response that axum or a layer produced by status alone.
    fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::not_found().detail("no such route"),
            StatusCode::METHOD_NOT_ALLOWED => {
                Self::new(status, "method_not_allowed", "Method not allowed").detail("see the Allow header")
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(status, "payload_too_large", "Payload too large").detail("bodies may be at most 64 KiB")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::unsupported_media_type(),
            s if s.is_server_error() => Self::internal(format!("plain {s} response")),
            s => Self::malformed(s.canonical_reason().unwrap_or("bad request")),
        }
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type")
            .detail("send the body as JSON with Content-Type: application/json")
    }

    fn body(&self, request_id: Option<&str>) -> String {
        let mut body = json!({
            "type": format!("/problems/{}", self.code),
            "title": self.title,
            "status": self.status.as_u16(),
            "code": self.code,
        });
        if let Some(detail) = &self.detail {
            body["detail"] = json!(detail);
        }
        if !self.errors.is_empty() {
            body["errors"] =
                self.errors.iter().map(|e| json!({"field": e.field, "code": e.code, "message": e.message})).collect();
        }
        if let Some(serde_json::Value::Object(extra)) = &self.extra {
            for (name, value) in extra {
                body[name] = value.clone();
            }
        }
        if let Some(id) = request_id {
            body["request_id"] = json!(id);
        }
        body.to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, [(header::CONTENT_TYPE, PROBLEM_JSON)], self.body(None)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthenticated" {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl From<service::Error> for ApiError {
    fn from(error: service::Error) -> Self {
        use service::Error as E;
        match error {
            E::Validation(errors) => Self::validation(errors),
            E::UsernameTaken => Self::new(StatusCode::CONFLICT, "username_taken", "Username taken")
                .detail("an account with this username already exists"),
            E::EmailTaken => Self::new(StatusCode::CONFLICT, "email_taken", "E-mail taken")
                .detail("an account with this e-mail address already exists"),
            E::InvalidCredentials => Self::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "Invalid credentials")
                .detail("the username, e-mail or password is wrong"),
            E::WrongPassword => Self::new(StatusCode::FORBIDDEN, "wrong_password", "Wrong password")
                .detail("the password given to confirm this change is wrong"),
            E::AccountDisabled => Self::new(StatusCode::FORBIDDEN, "account_disabled", "Account disabled")
                .detail("this account has been disabled"),
            E::EmailUnverified => Self::new(StatusCode::FORBIDDEN, "email_unverified", "E-mail unverified")
                .detail("confirm your e-mail address with the link mailed to you first"),
            E::Unauthenticated => Self::unauthenticated(),
            E::InvalidToken => Self::new(StatusCode::UNAUTHORIZED, "invalid_token", "Invalid token")
                .detail("the token is unknown, expired or already used"),
            E::RefreshTokenReused => {
                Self::new(StatusCode::UNAUTHORIZED, "refresh_token_reused", "Refresh token reused")
                    .detail("this refresh token was already used; its session has been revoked")
            }
            E::TooManyAttempts { retry_after_secs } => Self::too_many_attempts(retry_after_secs),
            E::MfaRequired { mfa_token, methods } => {
                let mut error = Self::new(StatusCode::FORBIDDEN, "mfa_required", "Second factor required")
                    .detail("the password is right; complete the sign-in with a second factor and mfa_token");
                use secrecy::ExposeSecret as _;
                error.extra = Some(json!({ "mfa_token": mfa_token.expose_secret(), "mfa_methods": methods }));
                error
            }
            E::EnrolmentRequired => {
                Self::new(StatusCode::FORBIDDEN, "mfa_enrolment_required", "Second factor enrolment required").detail(
                    "this account must add a second factor first (POST /v1/me/mfa/totp or /v1/me/passkeys/start), \
                     then sign in again",
                )
            }
            E::InvalidCode => Self::new(StatusCode::UNAUTHORIZED, "invalid_code", "Invalid code")
                .detail("the code is wrong, or was used already"),
            E::FactorState(code) => Self::new(StatusCode::CONFLICT, code, "Second factor state").detail(match code {
                "totp_already_enabled" => "an authenticator app is already enabled; remove it first",
                "totp_not_pending" => "no authenticator app is waiting to be confirmed; start the enrolment again",
                "totp_not_enabled" => "no authenticator app is enabled",
                "mfa_required_by_policy" => "this account must keep a second factor (TESSERA_REQUIRE_MFA)",
                "too_many_passkeys" => "this account has as many passkeys as it may (10); remove one first",
                "passkey_already_registered" => "this passkey is registered already",
                "no_passkeys" => "this account has no passkey",
                _ => "no second factor is enabled",
            }),
            E::LastOwner => Self::new(StatusCode::CONFLICT, "last_owner", "Last owner")
                .detail("the last active owner cannot be removed or demoted"),
            E::NotFound => Self::not_found(),
            E::BadCursor => Self::malformed("cursor: not a cursor this service made"),
            E::Forbidden => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").detail("your role does not allow this")
            }
            E::InsufficientFunds => Self::new(StatusCode::CONFLICT, "insufficient_funds", "Insufficient funds")
                .detail("the wallet does not have that much available"),
            E::WalletNotEmpty => Self::new(StatusCode::CONFLICT, "wallet_not_empty", "Wallet not empty")
                .detail("a wallet that holds money, or an account with one, cannot be deleted"),
            E::WalletFrozen => Self::new(StatusCode::CONFLICT, "wallet_frozen", "Wallet frozen")
                .detail("a frozen wallet neither sends nor receives"),
            E::HoldExpired => Self::new(StatusCode::CONFLICT, "hold_expired", "Hold expired")
                .detail("the hold has expired and can no longer be captured or voided"),
            E::HoldNotPending => Self::new(StatusCode::CONFLICT, "hold_not_pending", "Hold not pending")
                .detail("the hold was already captured, voided or expired"),
            E::IdempotencyConflict => Self::new(StatusCode::CONFLICT, "idempotency_conflict", "Idempotency conflict")
                .detail("this Idempotency-Key was used with another request"),
            E::Retry(cause) => Self::unavailable(format!("transaction conflict: {cause}"), 1),
            E::Overloaded => Self::unavailable("password hashing queue full", 1),
            E::Unavailable(cause) => Self::unavailable(format!("database unavailable: {cause}"), 5),
            E::Internal(cause) => Self::internal(cause),
        }
    }
}

/// Writes an error response as problem+json with the request id, and logs 5xx causes; any
/// other response passes untouched.
pub fn render_problem(mut response: Response, request_id: Option<&str>) -> Response {
    let status = response.status();
    let finished_page = response.extensions().get::<HtmlPage>().is_some();
    if !(status.is_client_error() || status.is_server_error()) || finished_page {
        return response;
    }
    let problem = match response.extensions_mut().remove::<ApiError>() {
        Some(problem) => problem,
        None => ApiError::from_status(status),
    };
    if status.is_server_error() {
        let cause = problem.cause.as_deref().unwrap_or("a plain error answer");
        tracing::error!(request_id = request_id.unwrap_or(""), %cause, status = status.as_u16(), "request failed");
    }
    let (mut parts, _) = response.into_parts();
    parts.extensions.insert(ProblemCode(problem.code));
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, problem.body(request_id).into())
}
