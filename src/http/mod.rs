//! The edge: routing, extractors, errors, OpenAPI and the DTOs. No SQL here.

pub mod client;
pub mod dto;
pub mod edge;
pub mod error;
pub mod extract;
mod json_body;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod serve;
pub mod state;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::http::state::AppState;
use edge::{Edge, X_REQUEST_ID};
use error::ApiError;

/// Request bodies larger than this are refused with `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the edge is told by the configuration.
#[derive(Debug, Clone, Default)]
pub struct EdgeSettings {
    /// Longest a request may take before it is answered `503`.
    pub request_timeout: Duration,
    /// Origins allowed to call across origins; none turns CORS off.
    pub cors_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
}

/// The whole HTTP surface with its middleware, outermost first: `nosniff` on every answer,
/// CORS (when origins are configured), the [`edge`] (request id, tracing, metrics, problem
/// rendering, the request timeout, the client's address, the rate limits, refusal of control
/// characters), panic catching, the body limit. (Panics are caught on both sides of the edge.)
pub fn router(state: AppState, settings: &EdgeSettings) -> Router {
    let edge = Arc::new(Edge {
        metrics: state.metrics.clone(),
        trusted_proxies: settings.trusted_proxies.clone().into(),
        limiter: state.limiter.clone(),
        request_timeout: settings.request_timeout,
    });
    let router = Router::new()
        .merge(routes::auth::router())
        .merge(routes::recovery::router())
        .merge(routes::pages::router())
        .merge(routes::account_pages::router())
        .merge(routes::me::router())
        .merge(routes::mfa::router())
        .merge(routes::passkeys::router())
        .merge(routes::sessions::router())
        .merge(routes::users::router())
        .merge(routes::audit::router())
        .merge(routes::wallets::router())
        .merge(routes::holds::router())
        .merge(ops::router())
        .merge(openapi::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(from_fn_with_state(edge, edge::handle))
        // A panic in the edge itself: still a problem answer (without the request id), logged here.
        .layer(CatchPanicLayer::custom(|panic| {
            tracing::error!("the edge middleware panicked");
            panicked(panic)
        }))
        .with_state(state);
    let router = match cors(&settings.cors_origins) {
        Some(cors) => router.layer(cors).layer(map_response(preflight_without_content)),
        None => router,
    };
    router.layer(SetResponseHeaderLayer::if_not_present(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
}

/// CORS for the listed origins, exactly: their preflights are answered with the methods and
/// headers the API uses, credentials are never allowed (tokens travel in headers, not cookies),
/// and other origins get no CORS headers at all.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    let methods = [Method::GET, Method::POST, Method::PATCH, Method::DELETE];
    let headers =
        [header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("idempotency-key"), X_REQUEST_ID];
    let exposed = [X_REQUEST_ID, header::RETRY_AFTER, header::WWW_AUTHENTICATE];
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods(methods)
            .allow_headers(headers)
            .expose_headers(exposed)
            .max_age(Duration::from_secs(600)),
    )
}

/// A preflight is answered `204 No Content` (the CORS layer says `200` with an empty body).
async fn preflight_without_content(mut response: Response) -> Response {
    if response.status() == StatusCode::OK && response.headers().contains_key(header::ACCESS_CONTROL_ALLOW_METHODS) {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found().detail("no such route")
}

fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    ApiError::internal(format!("handler panicked: {message}")).into_response()
}
