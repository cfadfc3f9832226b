//! Second factors: the signed-in user's authenticator app and recovery codes, and the second
//! step of a sign-in.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use secrecy::SecretString;

use crate::http::dto::mfa::{
    FactorConfirmation, MfaRequest, MfaStatus, RecoveryCodes, TotpConfirmation, TotpEnrolmentView,
};
use crate::http::dto::problems::{
    AccountDisabled, FactorState, RateLimited, Throttled, TooManyAttempts, Unauthenticated,
    UnauthenticatedOrInvalidCode, ValidationFailed, WrongPassword,
};
use crate::http::dto::{Problem, TokenResponse};
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AuthUser, Client, EnrollingUser};
use crate::http::reply::Json;
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me/mfa", get(mfa_status))
        .route("/v1/me/mfa/totp", post(start_totp).delete(remove_totp))
        .route("/v1/me/mfa/totp/confirm", post(confirm_totp))
        .route("/v1/me/mfa/recovery-codes", post(regenerate_recovery_codes))
        .route("/v1/auth/mfa", post(complete_mfa))
}

/// The signed-in user's second factors.
#[utoipa::path(get, path = "/v1/me/mfa", tag = "mfa", security(("bearer" = [])),
    responses((status = 200, body = MfaStatus), Unauthenticated))]
pub async fn mfa_status(
    State(state): State<AppState>,
    EnrollingUser(me): EnrollingUser,
) -> Result<Json<MfaStatus>, ApiError> {
    Ok(Json(state.factors.status(me.user_id).await?.into()))
}

/// Start adding an authenticator app: its secret, `otpauth://` URL and QR code. It is not in
/// force until a code from it is confirmed; starting again replaces an unconfirmed one. Needs
/// the password, and on an account with a passkey a current factor too.
#[utoipa::path(post, path = "/v1/me/mfa/totp", tag = "mfa", security(("bearer" = [])), request_body = FactorConfirmation,
    responses(
        (status = 200, body = TotpEnrolmentView, headers(("Cache-Control" = String, description = "`no-store`"))),
        UnauthenticatedOrInvalidCode,
        WrongPassword,
        FactorState,
        TooManyAttempts,
        ValidationFailed,
    ))]
pub async fn start_totp(
    State(state): State<AppState>,
    EnrollingUser(me): EnrollingUser,
    Client(client): Client,
    AppJson(request): AppJson<FactorConfirmation>,
) -> Result<impl IntoResponse, ApiError> {
    let (password, proof) = request.password_and_proof()?;
    let enrolment = state.factors.start_totp(&me.state.user, password, proof.as_ref(), &client).await?;
    Ok(no_store(TotpEnrolmentView::from(enrolment)))
}

/// Put the authenticator app in force with a code it shows now (within 15 minutes of the
/// start). As the account's first factor it answers ten recovery codes, shown this once, and
/// the account's other sessions end; beside a passkey the codes the owner keeps stand and the
/// list is empty. Wrong codes count toward the lockout.
#[utoipa::path(post, path = "/v1/me/mfa/totp/confirm", tag = "mfa", security(("bearer" = [])), request_body = TotpConfirmation,
    responses(
        (status = 200, body = RecoveryCodes, headers(("Cache-Control" = String, description = "`no-store`"))),
        UnauthenticatedOrInvalidCode,
        FactorState,
        ValidationFailed,
    ))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    EnrollingUser(me): EnrollingUser,
    Client(client): Client,
    AppJson(request): AppJson<TotpConfirmation>,
) -> Result<impl IntoResponse, ApiError> {
    let codes = state.factors.confirm_totp(&me.state.user, me.session_id, &request.code()?, &client).await?;
    Ok(no_store(RecoveryCodes::from(codes)))
}

/// Remove the authenticator app, with the password and a current factor (a code from the app,
/// a recovery code or a passkey). When it is the last factor the recovery codes go with it.
#[utoipa::path(delete, path = "/v1/me/mfa/totp", tag = "mfa", security(("bearer" = [])), request_body = FactorConfirmation,
    responses(
        (status = 204, description = "Removed"),
        UnauthenticatedOrInvalidCode,
        WrongPassword,
        FactorState,
        TooManyAttempts,
        ValidationFailed,
    ))]
pub async fn remove_totp(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    AppJson(request): AppJson<FactorConfirmation>,
) -> Result<StatusCode, ApiError> {
    let (password, proof) = request.password_and_required_proof()?;
    state.factors.disable_totp(&me.state.user, password, &proof, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ten new recovery codes, shown this once; the old ones stop working. Needs the password and
/// a current factor (a code from the app, a recovery code or a passkey).
#[utoipa::path(post, path = "/v1/me/mfa/recovery-codes", tag = "mfa", security(("bearer" = [])), request_body = FactorConfirmation,
    responses(
        (status = 200, body = RecoveryCodes, headers(("Cache-Control" = String, description = "`no-store`"))),
        UnauthenticatedOrInvalidCode,
        WrongPassword,
        FactorState,
        TooManyAttempts,
        ValidationFailed,
    ))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    AppJson(request): AppJson<FactorConfirmation>,
) -> Result<impl IntoResponse, ApiError> {
    let (password, proof) = request.password_and_required_proof()?;
    let codes = state.factors.regenerate_recovery_codes(&me.state.user, password, &proof, &client).await?;
    Ok(no_store(RecoveryCodes::from(codes)))
}

/// Finish a sign-in that answered `mfa_required`, with a code from the authenticator app or a
/// recovery code. The `mfa_token` works for five minutes and is used up by a right code; wrong
/// codes count toward the account's lockout.
#[utoipa::path(post, path = "/v1/auth/mfa", tag = "auth", request_body = MfaRequest,
    responses(
        (status = 200, description = "Signed in; the access token's `amr` is `[\"pwd\", \"otp\", \"mfa\"]`", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        (status = 401, description = "`invalid_code` (wrong, or used already) or `invalid_token` (the `mfa_token` is unknown, expired or used)", body = Problem, content_type = "application/problem+json"),
        AccountDisabled,
        ValidationFailed,
        Throttled,
        RateLimited,
    ))]
pub async fn complete_mfa(
    State(state): State<AppState>,
    Client(client): Client,
    AppJson(request): AppJson<MfaRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let proof = request.proof()?;
    let tokens = state.auth.complete_mfa(SecretString::from(request.mfa_token), proof, client).await?;
    Ok(TokenResponse::answer(tokens))
}

/// An answer that carries secrets shown once: no cache may keep it.
pub(super) fn no_store<T: serde::Serialize>(body: T) -> impl IntoResponse {
    ([(axum::http::header::CACHE_CONTROL, "no-store")], Json(body))
}
