//! The signed-in user's sessions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};

use crate::domain::ids::parse_id;
use crate::http::dto::problems::Unauthenticated;
use crate::http::dto::{Problem, SessionList, SessionView};
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, Client};
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/me/sessions", get(list_sessions)).route("/v1/me/sessions/{id}", delete(revoke_session))
}

/// The live sessions, newest first; `current` marks the caller's.
#[utoipa::path(get, path = "/v1/me/sessions", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, body = SessionList),
        Unauthenticated,
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = state.auth.sessions(&me).await?;
    let items = sessions.iter().map(|s| SessionView::new(s, me.session_id)).collect();
    Ok(Json(SessionList { items }))
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
