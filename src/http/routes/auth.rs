//! Public account routes: registration and sign-in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::SecretString;

use crate::app::AppState;
use crate::domain::Error;
use crate::domain::accounts::NewAccount;
use crate::http::dto::{
    LoginRequest, Problem, RegisterRequest, TokenResponse, UserEnvelope, UserView,
};
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, Client};
use crate::storage::users::LoginName;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
}

/// Create an account.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserEnvelope),
        (status = 409, description = "`username_taken` or `email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    AppJson(request): AppJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserEnvelope>), ApiError> {
    let account = NewAccount::parse(request.into())?;
    let user = state.accounts.register(account).await?;
    Ok((
        StatusCode::CREATED,
        Json(UserEnvelope {
            user: UserView::from(&user),
        }),
    ))
}

/// Sign in with a username or an e-mail and a password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "`invalid_credentials`: unknown account or wrong password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    AppJson(request): AppJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let name = match (&request.username, &request.email) {
        (Some(username), None) => LoginName::Username(username),
        (None, Some(email)) => LoginName::Email(email),
        _ => {
            return Err(Error::invalid(
                "username",
                "exactly_one",
                "give exactly one of username and email",
            )
            .into());
        }
    };
    let tokens = state
        .auth
        .login(name, SecretString::from(request.password), client)
        .await?;
    Ok(Json(tokens.into()))
}
