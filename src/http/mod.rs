//! The edge: routing, extractors, errors, OpenAPI and the DTOs. No SQL here.

pub mod dto;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod state;

use std::any::Any;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::{from_fn, from_fn_with_state, map_request};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::http::state::AppState;
use error::ApiError;

/// Request bodies larger than this are refused with `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole HTTP surface with its middleware, outermost first: request id (the client's when
/// it is usable, else a new one; echoed on the response), tracing, metrics, problem rendering,
/// panic catching, body limit.
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
        .layer(map_request(refuse_control_characters))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(from_fn(error::render_problems))
        .layer(from_fn_with_state(metrics, metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(NewRequestId))
        .layer(map_request(drop_unusable_request_id))
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
    let id = request_id(request).unwrap_or("");
    tracing::info_span!("request", method = metrics::method_label(request.method()), route, request_id = id)
}

/// Refuses a request whose path or query, once percent-decoded, holds a control character
/// (`%00` above all): no route, id, name or filter has one, and PostgreSQL cannot even compare
/// text with a NUL in it. Answered `400 malformed_request` before any handler runs.
async fn refuse_control_characters(request: Request) -> Result<Request, ApiError> {
    let path = percent_encoding::percent_decode_str(request.uri().path()).decode_utf8_lossy();
    let query = request.uri().query().unwrap_or_default().as_bytes();
    let in_query = url::form_urlencoded::parse(query).any(|(k, v)| k.chars().chain(v.chars()).any(char::is_control));
    if path.chars().any(char::is_control) || in_query {
        return Err(ApiError::malformed("the path or query holds control characters"));
    }
    Ok(request)
}

/// The id of the request being served, as set by the request-id layer.
pub fn request_id(request: &Request) -> Option<&str> {
    request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok())
}

/// Longest client-chosen request id that is echoed; a longer or odd one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

const X_REQUEST_ID: &str = "x-request-id";

/// Removes a client's `X-Request-Id` that is empty, long or not printable ASCII, so that the
/// request-id layer replaces it instead of copying it into logs and answers.
async fn drop_unusable_request_id(mut request: Request) -> Request {
    let usable = |v: &HeaderValue| {
        !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN && v.as_bytes().iter().all(u8::is_ascii_graphic)
    };
    if request.headers().get(X_REQUEST_ID).is_some_and(|v| !usable(v)) {
        request.headers_mut().remove(X_REQUEST_ID);
    }
    request
}

/// New request ids are UUIDv7: unique, and sorted by time in the logs.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).ok().map(RequestId::new)
    }
}
