//! Administration of accounts (API.md, "Administration"): admins and owners only.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};

use crate::domain::listing::UserFilter;
use crate::domain::ranks::Action;
use crate::domain::time::Timestamp;
use crate::domain::user::{Role, UserStatus};
use crate::domain::{FieldError, Invalid};
use crate::http::dto::admin::{CreateUserRequest, UpdateUserRequest, UserListQuery, UserPageView};
use crate::http::dto::problems::{Forbidden, NotFound, Taken, ValidationFailed};
use crate::http::dto::{PageQuery, Problem, SessionList, UserView};
use crate::http::error::ApiError;
use crate::http::extract::{AdminUser, AppJson, AppQuery, Checked, Client, checked, page_limit};
use crate::http::reply::Json;
use crate::http::state::AppState;
use crate::service::Error;
use crate::service::accounts::NewAccount;
use crate::service::administration::AccountChanges;
use crate::validated;

/// The longest search prefix: the longest searchable field, an e-mail address.
const MAX_QUERY_CHARS: usize = 254;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/{reference}", get(get_user).patch(update_user).delete(delete_user))
        .route("/v1/users/{reference}/sessions", get(list_user_sessions).delete(revoke_user_sessions))
        .route("/v1/users/{reference}/lockout", delete(clear_user_lockout))
        .route("/v1/users/{reference}/mfa", delete(reset_user_mfa))
}

fn role(value: Option<Checked<Role>>) -> Result<Option<Role>, FieldError> {
    checked(value, "role", Invalid::new("invalid_role", "must be user, admin or owner"))
}

fn status(value: Option<Checked<UserStatus>>) -> Result<Option<UserStatus>, FieldError> {
    checked(value, "status", Invalid::new("invalid_status", "must be active or disabled"))
}

fn instant(field: &'static str, value: Option<Checked<Timestamp>>) -> Result<Option<Timestamp>, FieldError> {
    checked(value, field, Invalid::new("invalid_instant", "must be an RFC 3339 instant"))
}

/// Accounts, a page at a time, filtered, searched by prefix and sorted.
#[utoipa::path(get, path = "/v1/users", tag = "admin", security(("bearer" = [])), params(UserListQuery),
    responses(
        (status = 200, body = UserPageView),
        (status = 400, description = "`malformed_request`: an unreadable parameter, or a cursor this service did not make for this order", body = Problem, content_type = "application/problem+json"),
        Forbidden,
        (status = 422, description = "`validation_failed`: `limit` outside 1..200, an unknown `role`, `status` or `sort`, a bad instant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    AppQuery(query): AppQuery<UserListQuery>,
) -> Result<Json<UserPageView>, ApiError> {
    let limit = page_limit(query.limit);
    let sort = checked(
        query.sort,
        "sort",
        Invalid::new("invalid_sort", "must be created_at, -created_at, username or -username"),
    )
    .map(Option::unwrap_or_default);
    let q = match query.q.as_deref().map(str::trim) {
        Some(q) if q.chars().count() > MAX_QUERY_CHARS => {
            Err(Invalid::new("too_long", format!("at most {MAX_QUERY_CHARS} characters")).at("q"))
        }
        q => Ok(q.filter(|q| !q.is_empty()).map(str::to_owned)),
    };
    let role = role(query.role);
    let status = status(query.status);
    let created_after = instant("created_after", query.created_after);
    let created_before = instant("created_before", query.created_before);
    let (limit, sort, q, role, status, created_after, created_before) =
        validated!(limit, sort, q, role, status, created_after, created_before)?;
    let filter = UserFilter { role, status, email_verified: query.email_verified, created_after, created_before, q };
    let include_total = query.include_total.unwrap_or(false);
    let page = state.admin.list(&me, &filter, sort, query.cursor.as_deref(), limit, include_total).await?;
    let items = page.users.iter().map(UserView::from).collect();
    Ok(Json(UserPageView { items, next_cursor: page.next_cursor, total: page.total }))
}

/// Create an account, with a role below the caller's own.
#[utoipa::path(post, path = "/v1/users", tag = "admin", security(("bearer" = [])), request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserView),
        (status = 403, description = "`forbidden`: not an administrator, or a role not below yours", body = Problem, content_type = "application/problem+json"),
        Taken,
        ValidationFailed,
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Client(client): Client,
    AppJson(request): AppJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let (registration, fields) = request.split();
    let mut account = NewAccount::parse(registration)?;
    let (role, status) = (role(fields.role), status(fields.status));
    let (role, status) = validated!(role, status)?;
    account.role = role.unwrap_or(Role::User);
    account.status = status.unwrap_or(UserStatus::Active);
    account.email_verified = fields.email_verified.unwrap_or(false);
    let user = state.admin.create(&me, account, &client).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// An account by id or username.
#[utoipa::path(get, path = "/v1/users/{reference}", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 200, body = UserView),
        Forbidden,
        NotFound,
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Path(reference): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(&state.admin.find(&me, &reference).await?)))
}

/// Edit an account of a lower rank: profile, `role`, `status`, `email_verified`. Disabling signs it out.
#[utoipa::path(patch, path = "/v1/users/{reference}", tag = "admin", security(("bearer" = [])), request_body = UpdateUserRequest,
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 200, body = UserView),
        Forbidden,
        NotFound,
        Taken,
        ValidationFailed,
    ))]
pub async fn update_user(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Client(client): Client,
    Path(reference): Path<String>,
    AppJson(request): AppJson<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    let profile = request.profile_patch();
    let (role, status) = (role(request.role), status(request.status));
    let (role, status) = validated!(role, status)?;
    let changes = AccountChanges { profile, role, status, email_verified: request.email_verified };
    Ok(Json(UserView::from(&state.admin.update(&me, &reference, changes, &client).await?)))
}

/// Delete an account of a lower rank.
#[utoipa::path(delete, path = "/v1/users/{reference}", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
    ))]
pub async fn delete_user(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Client(client): Client,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.admin.delete(&me, &reference, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An account's live sessions, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/users/{reference}/sessions", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username"), PageQuery),
    responses(
        (status = 200, body = SessionList),
        (status = 400, description = "`malformed_request`: an unreadable parameter or a cursor this service did not make", body = Problem, content_type = "application/problem+json"),
        Forbidden,
        NotFound,
        (status = 422, description = "`validation_failed`: `limit` outside 1..200", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_user_sessions(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Path(reference): Path<String>,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let limit = page_limit(query.limit).map_err(Error::from)?;
    let page = state.admin.sessions(&me, &reference, query.cursor.as_deref(), limit).await?;
    Ok(Json(SessionList::new(page, me.session_id)))
}

/// Sign an account out everywhere (forced sign-out); its access tokens stop at once.
#[utoipa::path(delete, path = "/v1/users/{reference}/sessions", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 204, description = "Signed out everywhere"),
        Forbidden,
        NotFound,
    ))]
pub async fn revoke_user_sessions(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Client(client): Client,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.admin.revoke_sessions(&me, &reference, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clear the sign-in locks on an account, so that it may sign in at once (audited).
#[utoipa::path(delete, path = "/v1/users/{reference}/lockout", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 204, description = "Unlocked (also when it was not locked)"),
        Forbidden,
        NotFound,
    ))]
pub async fn clear_user_lockout(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Client(client): Client,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.admin.clear_lockout(&me, &reference, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove an account's second factors (a lost authenticator app): the app, its recovery codes
/// and pending second steps. Never one's own; audited, and the owner is told by mail.
#[utoipa::path(delete, path = "/v1/users/{reference}/mfa", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username")),
    responses(
        (status = 204, description = "Reset (also when there was nothing to remove)"),
        Forbidden,
        NotFound,
    ))]
pub async fn reset_user_mfa(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Client(client): Client,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = state.admin.target(&me, &reference, Action::ResetSecondFactors).await?;
    state.factors.reset(&user, Some(me.user_id), &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
