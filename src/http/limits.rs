//! The per-client rate limits at the edge: the limited routes, by method and matched path, are
//! checked before their body is read; an over-limit request is answered `429 rate_limited`
//! with `Retry-After`, and nothing of it runs.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client::ClientAddr;
use super::error::ApiError;
use crate::domain::limits::LimitedRoute;
use crate::service::abuse::limiter::{Admission, RateLimiter};

/// The limited routes: the API's and the hosted pages' forms that do the same.
const ROUTES: [(&str, LimitedRoute); 9] = [
    ("/v1/auth/register", LimitedRoute::Register),
    ("/v1/auth/login", LimitedRoute::Login),
    ("/v1/auth/refresh", LimitedRoute::Refresh),
    ("/v1/auth/password/forgot", LimitedRoute::Forgot),
    ("/v1/auth/verify-email/resend", LimitedRoute::Resend),
    ("/v1/auth/verify-email", LimitedRoute::Verify),
    ("/verify-email", LimitedRoute::Verify),
    ("/v1/auth/password/reset", LimitedRoute::Reset),
    ("/reset-password", LimitedRoute::Reset),
];

/// The limited route a request is for, if any.
fn limited_route(request: &Request) -> Option<LimitedRoute> {
    if request.method() != Method::POST {
        return None;
    }
    let path = request.extensions().get::<MatchedPath>()?.as_str();
    ROUTES.iter().find(|(pattern, _)| *pattern == path).map(|(_, route)| *route)
}

/// Lets a request to a limited route through only when its client network is within the limit.
pub async fn enforce(State(limiter): State<RateLimiter>, request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
    if let (Some(route), Some(client)) = (limited_route(&request), client) {
        if let Admission::Limited { retry_after_secs } = limiter.admit(route, client).await {
            return ApiError::rate_limited(retry_after_secs).into_response();
        }
    }
    next.run(request).await
}
