//! The signed-in user's sessions.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};

use crate::domain::ids::parse_id;
use crate::http::dto::problems::Unauthenticated;
use crate::http::dto::{PageQuery, Problem, SessionList};
use crate::http::error::ApiError;
use crate::http::extract::{AppQuery, AuthUser, Client, page_limit};
use crate::http::reply::Json;
use crate::http::state::AppState;
use crate::service::Error;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/me/sessions", get(list_sessions)).route("/v1/me/sessions/{id}", delete(revoke_session))
}

/// The live sessions, newest first, a page at a time; `current` marks the caller's.
#[utoipa::path(get, path = "/v1/me/sessions", tag = "me", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, body = SessionList),
        (status = 400, description = "`malformed_request`: an unreadable parameter or a cursor this service did not make", body = Problem, content_type = "application/problem+json"),
        Unauthenticated,
        (status = 422, description = "`validation_failed`: `limit` outside 1..200", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let limit = page_limit(query.limit).map_err(Error::from)?;
    let page = state.auth.sessions(&me, query.cursor.as_deref(), limit).await?;
    Ok(Json(SessionList::new(page, me.session_id)))
}

/// Sign out one of the caller's sessions; its access tokens stop at once.
#[utoipa::path(delete, path = "/v1/me/sessions/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path, description = "A session id")),
    responses(
        (status = 204, description = "Revoked"),
        Unauthenticated,
        (status = 404, description = "`not_found`: no such live session of yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_session(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id).ok_or_else(ApiError::not_found)?;
    state.auth.revoke_session(&me, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
