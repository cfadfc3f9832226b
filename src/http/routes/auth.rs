//! Account routes: registration, sign-in, refresh, sign-out and the public keys.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use secrecy::SecretString;

use crate::domain::user::LoginName;
use crate::http::dto::problems::{AccountDisabled, RateLimited, Taken, Throttled, Unauthenticated, ValidationFailed};
use crate::http::dto::{
    Jwks, LoginRequest, LogoutRequest, Problem, RefreshRequest, RegisterRequest, TokenResponse, UserEnvelope, UserView,
};
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, Client, EnrollingUser, OptionalJson};
use crate::http::reply::Json;
use crate::http::state::AppState;
use crate::service::Error;
use crate::service::accounts::NewAccount;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/.well-known/jwks.json", get(jwks))
}

/// Create an account.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserEnvelope),
        Taken,
        ValidationFailed,
        RateLimited,
    ))]
pub async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    AppJson(request): AppJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserEnvelope>), ApiError> {
    let account = NewAccount::parse(request.into())?;
    let user = state.accounts.register(account, None, &client).await?;
    Ok((StatusCode::CREATED, Json(UserEnvelope { user: UserView::from(&user) })))
}

/// Sign in with a username or an e-mail and a password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        (status = 401, description = "`invalid_credentials`: unknown account or wrong password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`mfa_required`: the password is right and the account has a second factor; the problem carries `mfa_token` and `mfa_methods` for `POST /v1/auth/mfa`. Also `account_disabled` and `email_unverified`", body = Problem, content_type = "application/problem+json"),
        ValidationFailed,
        Throttled,
    ))]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    AppJson(request): AppJson<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = match (request.username, request.email) {
        (Some(username), None) => LoginName::username(username).map_err(|e| Error::from(e.at("username")))?,
        (None, Some(email)) => LoginName::email(email).map_err(|e| Error::from(e.at("email")))?,
        _ => {
            return Err(Error::invalid("username", "exactly_one", "give exactly one of username and email").into());
        }
    };
    let tokens = state.auth.login(name, SecretString::from(request.password), client).await?;
    Ok(TokenResponse::answer(tokens))
}

/// Exchange a refresh token for a new pair; the old token is rotated out.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair; the refresh token is a new one", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        (status = 401, description = "`invalid_token` (unknown, expired, revoked) or `refresh_token_reused` (the session is now revoked)", body = Problem, content_type = "application/problem+json"),
        AccountDisabled,
        RateLimited,
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    AppJson(request): AppJson<RefreshRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let tokens = state.auth.refresh(SecretString::from(request.refresh_token), &client).await?;
    Ok(TokenResponse::answer(tokens))
}

/// Sign out this session, or with `{"all": true}` every session; access tokens stop at once.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])), request_body(content = Option<LogoutRequest>),
    responses(
        (status = 204, description = "Signed out"),
        Unauthenticated,
    ))]
pub async fn logout(
    State(state): State<AppState>,
    EnrollingUser(me): EnrollingUser,
    Client(client): Client,
    OptionalJson(request): OptionalJson<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    state.auth.logout(&me, request.unwrap_or_default().all, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public keys that verify access tokens (RFC 7517); empty when tokens are HS256.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, body = Jwks)))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.auth.tokens().keys().jwks())
}
