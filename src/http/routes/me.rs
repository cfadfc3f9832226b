//! The signed-in user's own account.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use secrecy::SecretString;

use crate::http::dto::problems::{Taken, TooManyAttempts, Unauthenticated, ValidationFailed, WrongPassword};
use crate::http::dto::{ChangePasswordRequest, PasswordConfirmation, Problem, UpdateMeRequest, UserView};
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AuthUser, Client};
use crate::http::reply::Json;
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me", get(get_me).patch(update_me).delete(delete_me))
        .route("/v1/me/password", post(change_password))
}

/// The signed-in user.
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, body = UserView),
        Unauthenticated,
    ))]
pub async fn get_me(AuthUser(me): AuthUser) -> Json<UserView> {
    // The account was read with the session, just now or at most the cache's time-to-live ago.
    Json(UserView::from(&me.state.user))
}

/// Edit the profile; `null` clears a field. A new e-mail needs `current_password` and becomes
/// `pending_email` until the link mailed to it is followed; the current address is told at once.
#[utoipa::path(patch, path = "/v1/me", tag = "me", security(("bearer" = [])), request_body = UpdateMeRequest,
    responses(
        (status = 200, body = UserView),
        Unauthenticated,
        WrongPassword,
        TooManyAttempts,
        Taken,
        ValidationFailed,
    ))]
pub async fn update_me(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    AppJson(request): AppJson<UpdateMeRequest>,
) -> Result<Json<UserView>, ApiError> {
    let password = request.current_password.clone().map(SecretString::from);
    let user = state.accounts.update_profile(me.user_id, request.profile_patch(), password, &client).await?;
    Ok(Json(UserView::from(&user)))
}

/// Delete the account, confirming with the password.
#[utoipa::path(delete, path = "/v1/me", tag = "me", security(("bearer" = [])), request_body = PasswordConfirmation,
    responses(
        (status = 204, description = "Deleted"),
        Unauthenticated,
        WrongPassword,
        TooManyAttempts,
        (status = 409, description = "`last_owner` or `wallet_not_empty`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_me(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    AppJson(request): AppJson<PasswordConfirmation>,
) -> Result<StatusCode, ApiError> {
    state.accounts.delete_self(me.user_id, SecretString::from(request.password), &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the password; every other session is signed out.
#[utoipa::path(post, path = "/v1/me/password", tag = "me", security(("bearer" = [])), request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        Unauthenticated,
        WrongPassword,
        TooManyAttempts,
        ValidationFailed,
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    AppJson(request): AppJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let current = SecretString::from(request.current_password);
    let new = SecretString::from(request.new_password);
    state.accounts.change_password(me.user_id, me.session_id, current, new, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
