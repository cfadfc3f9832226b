//! Administration of accounts (API.md, "Administration"): admins and owners only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use crate::app::AppState;
use crate::domain::Error;
use crate::domain::accounts::NewAccount;
use crate::domain::administration::AccountChanges;
use crate::domain::user::{Role, UserStatus};
use crate::http::dto::admin::{CreateUserRequest, UpdateUserRequest};
use crate::http::dto::{Problem, SessionList, SessionView, UserView};
use crate::http::error::ApiError;
use crate::http::extract::{AppJson, AuthUser, Client};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users", axum::routing::post(create_user))
        .route("/v1/users/{reference}", get(get_user).patch(update_user).delete(delete_user))
        .route("/v1/users/{reference}/sessions", get(list_user_sessions).delete(revoke_user_sessions))
}

fn parse_role(raw: Option<String>) -> Result<Option<Role>, Error> {
    raw.map(|r| Role::parse(&r).ok_or_else(|| Error::invalid("role", "invalid_role", "must be user, admin or owner")))
        .transpose()
}

fn parse_status(raw: Option<String>) -> Result<Option<UserStatus>, Error> {
    raw.map(|s| {
        UserStatus::parse(&s).ok_or_else(|| Error::invalid("status", "invalid_status", "must be active or disabled"))
    })
    .transpose()
}

/// Create an account, with a role below the caller's own.
#[utoipa::path(post, path = "/v1/users", tag = "admin", security(("bearer" = [])), request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserView),
        (status = 403, description = "`forbidden`: not an administrator, or a role not below yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`username_taken` or `email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    AppJson(request): AppJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    if !crate::domain::ranks::is_administrator(me.role) {
        return Err(Error::Forbidden.into());
    }
    let (registration, role, status, email_verified) = request.split();
    let mut account = NewAccount::parse(registration)?;
    account.role = parse_role(role)?.unwrap_or(Role::User);
    account.status = parse_status(status)?.unwrap_or(UserStatus::Active);
    account.email_verified = email_verified.unwrap_or(false);
    let user = state.admin.create(&me, account, &client).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// An account by id or username.
#[utoipa::path(get, path = "/v1/users/{reference}", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 200, body = UserView),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(reference): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(&state.admin.find(&me, &reference).await?)))
}

/// Edit an account of a lower rank: profile, `role`, `status`, `email_verified`. Disabling signs it out.
#[utoipa::path(patch, path = "/v1/users/{reference}", tag = "admin", security(("bearer" = [])), request_body = UpdateUserRequest,
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 200, body = UserView),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`username_taken` or `email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_user(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    Path(reference): Path<String>,
    AppJson(request): AppJson<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    if !crate::domain::ranks::is_administrator(me.role) {
        return Err(Error::Forbidden.into());
    }
    let changes = AccountChanges {
        profile: request.profile_patch(),
        role: parse_role(request.role)?,
        status: parse_status(request.status)?,
        email_verified: request.email_verified,
    };
    Ok(Json(UserView::from(&state.admin.update(&me, &reference, changes, &client).await?)))
}

/// Delete an account of a lower rank.
#[utoipa::path(delete, path = "/v1/users/{reference}", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_user(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.admin.delete(&me, &reference, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An account's live sessions.
#[utoipa::path(get, path = "/v1/users/{reference}/sessions", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 200, body = SessionList),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_user_sessions(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(reference): Path<String>,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = state.admin.sessions(&me, &reference).await?;
    Ok(Json(SessionList { items: sessions.iter().map(|s| SessionView::new(s, me.session_id)).collect() }))
}

/// Sign an account out everywhere (forced sign-out); its access tokens stop at once.
#[utoipa::path(delete, path = "/v1/users/{reference}/sessions", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 204, description = "Signed out everywhere"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_user_sessions(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.admin.revoke_sessions(&me, &reference, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
