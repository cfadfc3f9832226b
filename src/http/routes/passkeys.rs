//! Passkeys: the signed-in user's (register, list, remove, prove one), and signing in with one.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use secrecy::SecretString;

use super::mfa::no_store;
use crate::domain::ids::parse_id;
use crate::http::dto::mfa::FactorConfirmation;
use crate::http::dto::passkeys::{
    CeremonyView, PasskeyAnswer, PasskeyCreated, PasskeyList, PasskeyRegistration, PasskeySignInStart,
};
use crate::http::dto::problems::{
    RateLimited, TooManyAttempts, Unauthenticated, UnauthenticatedOrInvalidCode, ValidationFailed, WrongPassword,
};
use crate::http::dto::{Problem, TokenResponse};
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AuthUser, Client, EnrollingUser, OptionalJson};
use crate::http::reply::Json;
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me/passkeys", get(list_passkeys))
        .route("/v1/me/passkeys/start", post(start_passkey))
        .route("/v1/me/passkeys/finish", post(finish_passkey))
        .route("/v1/me/passkeys/challenge", post(challenge_passkey))
        .route("/v1/me/passkeys/{id}", delete(remove_passkey))
        .route("/v1/auth/passkey/start", post(start_passkey_sign_in))
        .route("/v1/auth/passkey/finish", post(finish_passkey_sign_in))
}

/// The signed-in user's passkeys, oldest first.
#[utoipa::path(get, path = "/v1/me/passkeys", tag = "mfa", security(("bearer" = [])),
    responses((status = 200, body = PasskeyList), Unauthenticated))]
pub async fn list_passkeys(
    State(state): State<AppState>,
    EnrollingUser(me): EnrollingUser,
) -> Result<Json<PasskeyList>, ApiError> {
    let items = state.factors.passkeys(me.user_id).await?.into_iter().map(Into::into).collect();
    Ok(Json(PasskeyList { items }))
}

/// Begin registering a passkey: WebAuthn creation options for `navigator.credentials.create()`.
/// Needs the password, and on an account that has a second factor a current one too (`code` or
/// `passkey`), so that a stolen token cannot add a passkey its thief holds.
#[utoipa::path(post, path = "/v1/me/passkeys/start", tag = "mfa", security(("bearer" = [])), request_body = FactorConfirmation,
    responses(
        (status = 200, body = CeremonyView, headers(("Cache-Control" = String, description = "`no-store`"))),
        UnauthenticatedOrInvalidCode,
        WrongPassword,
        (status = 409, description = "`too_many_passkeys` (10 per account)", body = Problem, content_type = "application/problem+json"),
        TooManyAttempts,
        ValidationFailed,
    ))]
pub async fn start_passkey(
    State(state): State<AppState>,
    EnrollingUser(me): EnrollingUser,
    Client(client): Client,
    AppJson(request): AppJson<FactorConfirmation>,
) -> Result<impl IntoResponse, ApiError> {
    let (password, proof) = request.password_and_proof()?;
    let ceremony = state.factors.start_passkey(&me.state.user, password, proof.as_ref(), &client).await?;
    Ok(no_store(CeremonyView::from(ceremony)))
}

/// Finish registering a passkey with what `navigator.credentials.create()` gave. When it is the
/// account's first factor, the account's other sessions end and the answer carries ten
/// recovery codes, shown this once.
#[utoipa::path(post, path = "/v1/me/passkeys/finish", tag = "mfa", security(("bearer" = [])), request_body = PasskeyRegistration,
    responses(
        (status = 201, body = PasskeyCreated, headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "`unauthenticated` (no valid bearer token) or `invalid_code` (the challenge is unknown, expired or used, or the credential does not verify against it)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`passkey_already_registered` or `too_many_passkeys`", body = Problem, content_type = "application/problem+json"),
        ValidationFailed,
    ))]
pub async fn finish_passkey(
    State(state): State<AppState>,
    EnrollingUser(me): EnrollingUser,
    Client(client): Client,
    AppJson(request): AppJson<PasskeyRegistration>,
) -> Result<impl IntoResponse, ApiError> {
    let (challenge_id, credential, name) = request.parts()?;
    let registered =
        state.factors.finish_passkey(&me.state.user, me.session_id, &challenge_id, &credential, name, &client).await?;
    Ok((StatusCode::CREATED, no_store(PasskeyCreated::from(registered))))
}

/// Begin proving one of your passkeys, to confirm a change of your factors: its answer goes in
/// the change's `passkey` field.
#[utoipa::path(post, path = "/v1/me/passkeys/challenge", tag = "mfa", security(("bearer" = [])),
    responses(
        (status = 200, body = CeremonyView),
        Unauthenticated,
        (status = 409, description = "`no_passkeys`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn challenge_passkey(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<CeremonyView>, ApiError> {
    Ok(Json(state.factors.challenge_passkey(me.user_id, None).await?.into()))
}

/// Remove one of your passkeys, with the password and a current factor (which may be this
/// passkey). When it is the last factor the recovery codes go with it.
#[utoipa::path(delete, path = "/v1/me/passkeys/{id}", tag = "mfa", security(("bearer" = [])), request_body = FactorConfirmation,
    params(("id" = String, Path, description = "A passkey id")),
    responses(
        (status = 204, description = "Removed"),
        UnauthenticatedOrInvalidCode,
        WrongPassword,
        (status = 404, description = "`not_found`: no such passkey of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`mfa_required_by_policy`: the account must keep a second factor", body = Problem, content_type = "application/problem+json"),
        TooManyAttempts,
        ValidationFailed,
    ))]
pub async fn remove_passkey(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
    AppJson(request): AppJson<FactorConfirmation>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id).ok_or_else(ApiError::not_found)?;
    let (password, proof) = request.password_and_required_proof()?;
    state.factors.remove_passkey(&me.state.user, me.session_id, id, password, &proof, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Begin a passkey sign-in: with the `mfa_token` of `mfa_required`, for that account's passkeys
/// (the second step); with no body, for any passkey of this site that names its account (a
/// discoverable credential: no password, no username).
#[utoipa::path(post, path = "/v1/auth/passkey/start", tag = "auth", request_body(content = Option<PasskeySignInStart>, description = "Optional"),
    responses(
        (status = 200, body = CeremonyView),
        (status = 401, description = "`invalid_token`: the `mfa_token` is unknown, expired or used", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`no_passkeys`: the account has none", body = Problem, content_type = "application/problem+json"),
        ValidationFailed,
        RateLimited,
    ))]
pub async fn start_passkey_sign_in(
    State(state): State<AppState>,
    OptionalJson(request): OptionalJson<PasskeySignInStart>,
) -> Result<Json<CeremonyView>, ApiError> {
    let token = request.unwrap_or_default().mfa_token.map(SecretString::from);
    Ok(Json(state.auth.start_passkey_sign_in(token).await?.into()))
}

/// Finish a passkey sign-in with what `navigator.credentials.get()` gave. The access token's
/// `amr` is `["hwk", "mfa"]` for a passkey alone, `["pwd", "hwk", "mfa"]` after a password.
#[utoipa::path(post, path = "/v1/auth/passkey/finish", tag = "auth", request_body = PasskeyAnswer,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        (status = 401, description = "`invalid_code`: the challenge is unknown, expired or used, or the answer does not verify; `invalid_token`: the second step's `mfa_token` was used meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled` or `email_unverified`", body = Problem, content_type = "application/problem+json"),
        ValidationFailed,
        (status = 429, description = "`rate_limited` (this client network) or `too_many_attempts` (a second step on a locked account); with `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn finish_passkey_sign_in(
    State(state): State<AppState>,
    Client(client): Client,
    AppJson(request): AppJson<PasskeyAnswer>,
) -> Result<impl IntoResponse, ApiError> {
    let assertion = request.assertion()?;
    let tokens = state.auth.finish_passkey_sign_in(assertion, client).await?;
    Ok(TokenResponse::answer(tokens))
}
