//! E-mail verification and password reset over JSON (API.md, "Public"). The hosted HTML pages
//! behind the mailed links are in [`super::pages`].

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use secrecy::SecretString;

use crate::domain::Invalid;
use crate::domain::fields::Email;
use crate::domain::user::LoginName;
use crate::http::dto::problems::RateLimited;
use crate::http::dto::{
    ForgotPasswordRequest, Problem, ResendRequest, ResetPasswordRequest, UserEnvelope, UserView, VerifyEmailRequest,
};
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, Client};
use crate::http::reply::Json;
use crate::http::state::AppState;
use crate::service::Error;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/verify-email", post(verify_email))
        .route("/v1/auth/verify-email/resend", post(resend_verification))
        .route("/v1/auth/password/forgot", post(forgot_password))
        .route("/v1/auth/password/reset", post(reset_password))
}

/// Confirm an e-mail address with the token from the verification mail.
#[utoipa::path(post, path = "/v1/auth/verify-email", tag = "auth", request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "Verified", body = UserEnvelope),
        (status = 401, description = "`invalid_token`: unknown, expired, used, or for an address the account no longer has", body = Problem, content_type = "application/problem+json"),
        RateLimited,
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    Client(client): Client,
    AppJson(request): AppJson<VerifyEmailRequest>,
) -> Result<Json<UserEnvelope>, ApiError> {
    let user = state.recovery.verify_email(&SecretString::from(request.token), &client).await?;
    Ok(Json(UserEnvelope { user: UserView::from(&user) }))
}

/// Mail a new verification link. The answer is the same whether or not the address is known.
#[utoipa::path(post, path = "/v1/auth/verify-email/resend", tag = "auth", request_body = ResendRequest,
    responses(
        (status = 202, description = "Accepted: a link is mailed if an unverified account has this address"),
        (status = 422, description = "`validation_failed`: not an e-mail address", body = Problem, content_type = "application/problem+json"),
        RateLimited,
    ))]
pub async fn resend_verification(
    State(state): State<AppState>,
    AppJson(request): AppJson<ResendRequest>,
) -> Result<StatusCode, ApiError> {
    let email = Email::parse(&request.email).map_err(|e| Error::from(e.at("email")))?;
    state.recovery.resend_verification(email.into_inner());
    Ok(StatusCode::ACCEPTED)
}

/// Mail a password reset link. The answer, and its timing, is the same whether or not the
/// account exists.
#[utoipa::path(post, path = "/v1/auth/password/forgot", tag = "auth", request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "Accepted: a link is mailed if an active account with an address has this name"),
        (status = 422, description = "`validation_failed`: not exactly one of `email` and `username`", body = Problem, content_type = "application/problem+json"),
        RateLimited,
    ))]
pub async fn forgot_password(
    State(state): State<AppState>,
    AppJson(request): AppJson<ForgotPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let name = match (request.email, request.username) {
        (Some(email), None) if !email.trim().is_empty() => {
            LoginName::email(email).map_err(|e| Error::from(e.at("email")))?
        }
        (None, Some(username)) if !username.trim().is_empty() => {
            LoginName::username(username).map_err(|e| Error::from(e.at("username")))?
        }
        _ => {
            let refusal = Invalid::new("exactly_one", "give exactly one of email and username").at("email");
            return Err(Error::from(refusal).into());
        }
    };
    state.recovery.forgot_password(name);
    Ok(StatusCode::ACCEPTED)
}

/// Choose a new password with the token from the reset mail; every session of the account ends.
#[utoipa::path(post, path = "/v1/auth/password/reset", tag = "auth", request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password changed; every session was signed out"),
        (status = 401, description = "`invalid_token`: unknown, expired or used", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the new password breaks a rule (the token stays usable)", body = Problem, content_type = "application/problem+json"),
        RateLimited,
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    Client(client): Client,
    AppJson(request): AppJson<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let token = SecretString::from(request.token);
    state.recovery.reset_password(&token, SecretString::from(request.new_password), &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
