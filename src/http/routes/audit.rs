//! The audit trail, for administrators.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::domain::audit::AuditFilter;
use crate::domain::ids::parse_id;
use crate::http::dto::Problem;
use crate::http::dto::admin::{AuditEventPage, AuditQuery};
use crate::http::dto::problems::Forbidden;
use crate::http::error::ApiError;
use crate::http::extract::{AdminUser, AppQuery, page_limit};
use crate::http::reply::Json;
use crate::http::state::AppState;
use crate::service::Error;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/audit-events", get(list_audit_events))
}

/// Audit events, newest first, with keyset pagination.
#[utoipa::path(get, path = "/v1/audit-events", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses(
        (status = 200, body = AuditEventPage),
        (status = 400, description = "`malformed_request`: an unreadable parameter or a cursor this service did not make", body = Problem, content_type = "application/problem+json"),
        Forbidden,
        (status = 422, description = "`validation_failed`: `limit` outside 1..200", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<Json<AuditEventPage>, ApiError> {
    let limit = page_limit(query.limit).map_err(Error::from)?;
    let user_id = match query.user_id.as_deref() {
        Some(raw) => Some(parse_id(raw).ok_or_else(|| ApiError::malformed("user_id: not an id"))?),
        None => None,
    };
    let filter = AuditFilter { user_id, kind: query.r#type };
    let page = state.admin.audit_events(&me, &filter, query.cursor.as_deref(), limit).await?;
    Ok(Json(AuditEventPage { items: page.items.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
}
