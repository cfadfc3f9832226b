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
pub mod reply;
pub mod routes;
pub mod serve;
pub mod state;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::map_response;
use axum::response::Response;
use ipnet::IpNet;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::http::state::AppState;
use edge::{Edge, EdgeLayer, X_REQUEST_ID};
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

/// The whole HTTP surface with its middleware, outermost first: CORS (when origins are
/// configured), then the [`edge`] (panic catching, request id, tracing, metrics, problem
/// rendering, the request timeout, the client's address, the rate limits, refusal of control
/// characters, the body limit, `nosniff`).
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
        .layer(EdgeLayer(edge))
        .with_state(state);
    match cors(&settings.cors_origins) {
        Some(cors) => router.layer(cors).layer(map_response(cors_answer)),
        None => router,
    }
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
/// The CORS layer answers preflights before the edge, so `nosniff` is added here too.
async fn cors_answer(mut response: Response) -> Response {
    if response.status() == StatusCode::OK && response.headers().contains_key(header::ACCESS_CONTROL_ALLOW_METHODS) {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response.headers_mut().entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(edge::NOSNIFF);
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found().detail("no such route")
}
