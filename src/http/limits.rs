//! The per-client rate limits at the edge: the limited routes, by method and matched path, are
//! checked before their body is read; an over-limit request is answered `429 rate_limited`
//! with `Retry-After`, and nothing of it runs.

use std::net::IpAddr;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;

use super::client;
use super::error::ApiError;
use crate::domain::limits::LimitedRoute;
use crate::service::abuse::limiter::{Admission, RateLimiter};

/// The limited routes: the API's and the hosted pages' forms that do the same. A sign-in's
/// second step, and a passkey sign-in, count as sign-in.
const ROUTES: [(&str, LimitedRoute); 12] = [
    ("/v1/auth/register", LimitedRoute::Register),
    ("/v1/auth/login", LimitedRoute::Login),
    ("/v1/auth/mfa", LimitedRoute::Login),
    ("/v1/auth/passkey/start", LimitedRoute::Login),
    ("/v1/auth/passkey/finish", LimitedRoute::Login),
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

/// The limited route a request is for and its client, when the request must be checked.
/// (Read before the check: a request is not `Sync`, so no reference to it may be held across
/// the limiter's await.)
pub fn checked(request: &Request) -> Option<(LimitedRoute, IpAddr)> {
    let client = client::of(request.extensions())?;
    Some((limited_route(request)?, client))
}

/// Refuses a request to a limited route when its client network is over the limit.
pub async fn enforce(limiter: &RateLimiter, (route, client): (LimitedRoute, IpAddr)) -> Result<(), ApiError> {
    match limiter.admit(route, client).await {
        Admission::Limited { retry_after_secs } => Err(ApiError::rate_limited(retry_after_secs)),
        Admission::Admitted => Ok(()),
    }
}
