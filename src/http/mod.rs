//! The edge: routing, extractors, errors, OpenAPI and the DTOs. No SQL here.

pub mod client;
pub mod dto;
pub mod error;
pub mod extract;
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
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state, map_request, map_response};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::http::state::AppState;
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
/// request id (the client's when it is usable, else a new one; echoed on the response),
/// tracing, metrics, CORS (when origins are configured), problem rendering, the request
/// timeout, panic catching, the client's address, the rate limits, refusal of control
/// characters, body limit.
pub fn router(state: AppState, edge: &EdgeSettings) -> Router {
    let metrics = state.metrics.clone();
    let trusted: Arc<[IpNet]> = edge.trusted_proxies.clone().into();
    let limiter = state.limiter.clone();
    let router = Router::new()
        .merge(routes::auth::router())
        .merge(routes::recovery::router())
        .merge(routes::pages::router())
        .merge(routes::me::router())
        .merge(routes::sessions::router())
        .merge(routes::users::router())
        .merge(routes::audit::router())
        .merge(routes::wallets::router())
        .merge(routes::holds::router())
        .merge(ops::router())
        .merge(openapi::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(map_request(refuse_control_characters))
        .layer(from_fn_with_state(limiter, limits::enforce))
        .layer(from_fn_with_state(trusted, client::resolve))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(from_fn_with_state(edge.request_timeout, time_limit))
        .layer(from_fn(error::render_problems))
        .with_state(state);
    let router = match cors(&edge.cors_origins) {
        Some(cors) => router.layer(cors).layer(map_response(preflight_without_content)),
        None => router,
    };
    router
        .layer(from_fn_with_state(metrics, metrics::track))
        .layer(TraceLayer::new_for_http().make_span_with(span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(NewRequestId))
        .layer(map_request(drop_unusable_request_id))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

/// Answers `503 unavailable` (with `Retry-After`) when a request, body included, takes longer
/// than `limit`, and drops the work: a slow client or a stuck database holds nothing for long.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable("the request took longer than TESSERA_REQUEST_TIMEOUT", 1).into_response(),
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

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
