//! The edge: routing, extractors, errors, OpenAPI and the DTOs. No SQL here.

pub mod dto;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod request_id;
pub mod routes;
pub mod state;

use std::any::Any;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::http::state::AppState;
use error::ApiError;
use request_id::RequestId;

/// Request bodies larger than this are refused with `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole HTTP surface with its middleware, outermost first: request id, tracing, metrics,
/// problem rendering, panic catching, body limit.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .merge(routes::auth::router())
        .merge(routes::recovery::router())
        .merge(routes::pages::router())
        .merge(routes::me::router())
        .merge(routes::sessions::router())
        .merge(routes::users::router())
        .merge(routes::audit::router())
        .merge(ops::router())
        .merge(openapi::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(from_fn(error::render_problems))
        .layer(from_fn_with_state(metrics, metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(span))
        .layer(from_fn(request_id::request_id))
        .with_state(state)
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

/// The span of one request: method, matched route and request id; never headers or bodies.
fn span(request: &Request) -> tracing::Span {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let id = request.extensions().get::<RequestId>().map_or("", |id| id.0.as_str());
    tracing::info_span!("request", method = %request.method(), route, request_id = id)
}
