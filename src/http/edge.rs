//! What happens to every request, in one layer, in this order: panic catching, the request id
//! (the client's when it is usable, else a new one; echoed on the answer), the tracing span, the
//! request timeout, the client's address, the rate limits, refusal of control characters, the
//! body limit; on the way out, problem rendering, the metrics and `nosniff`.
//!
//! One hand-written layer instead of a layer each: `Router::layer` wraps every route in every
//! layer, and each wrapping clones a boxed service and boxes a future per request. With six of
//! them (`from_fn`, two panic catchers, the body limit, the header) the layers cost more than
//! `/v1/me` itself; here there is one clone and one box.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::Route as Endpoint;
use futures_util::FutureExt as _;
use ipnet::IpNet;
use tower::util::Either;
use tower::{Layer, Service, ServiceExt as _};
use tracing::Instrument as _;

use super::error::{ApiError, render_problem};
use super::extract::carries_body;
use super::metrics::{self, Metrics, Route};
use super::{MAX_BODY_BYTES, client, limits};
use crate::service::abuse::limiter::RateLimiter;

/// Longest client-chosen request id that is echoed; a longer or odd one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the edge needs: built once, shared by every request.
pub struct Edge {
    pub metrics: Arc<Metrics>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[IpNet]>,
    pub limiter: RateLimiter,
    /// Longest a request may take before it is answered `503`.
    pub request_timeout: Duration,
}

/// The edge as a layer for `Router::layer`.
#[derive(Clone)]
pub struct EdgeLayer(pub Arc<Edge>);

/// A route behind the body limit, which the JSON extractors read from the request.
type Limited = <DefaultBodyLimit as Layer<Endpoint>>::Service;

impl Layer<Endpoint> for EdgeLayer {
    type Service = EdgeService;

    fn layer(&self, endpoint: Endpoint) -> EdgeService {
        let limited = DefaultBodyLimit::max(MAX_BODY_BYTES).layer(endpoint.clone());
        EdgeService { edge: self.0.clone(), endpoint, limited }
    }
}

/// One route with the edge around it.
#[derive(Clone)]
pub struct EdgeService {
    edge: Arc<Edge>,
    endpoint: Endpoint,
    /// The same route behind the body limit, for requests that have a body.
    limited: Limited,
}

impl Service<Request> for EdgeService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A route is always ready; it is called through a clone (`oneshot`) below.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let edge = self.edge.clone();
        // The body limit is a request extension for the body extractors: not worth its
        // allocation on a request with no body.
        let endpoint = if carries_body(request.body()) {
            Either::Left(self.limited.clone())
        } else {
            Either::Right(self.endpoint.clone())
        };
        Box::pin(async move {
            // A panic in the edge itself: still a problem answer (without the request id).
            let answered = AssertUnwindSafe(edge.handle(request, endpoint)).catch_unwind().await;
            Ok(answered.unwrap_or_else(|panic| {
                let mut response = panicked(&*panic);
                tracing::error!(cause = %panic_message(&*panic), "the edge panicked");
                response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
                response
            }))
        })
    }
}

/// A panic's message, as a `500` problem whose cause is logged.
fn panicked(panic: &(dyn Any + Send)) -> Response {
    ApiError::internal(format!("handler panicked: {}", panic_message(panic))).into_response()
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("panic")
}

/// `nosniff` on every answer: no browser guesses a type other than the one declared.
pub const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

impl Edge {
    async fn handle(&self, request: Request, endpoint: Either<Limited, Endpoint>) -> Response {
        let started = Instant::now();
        let id = request_id(&request);
        let method = metrics::method_label(request.method());
        let route = Route::of(&request);
        // Only printable ASCII is ever kept (see `request_id`).
        let id_text = id.to_str().unwrap_or("");
        // Method, matched route and request id; never headers or bodies.
        let span = tracing::info_span!("request", method, route = route.as_str(), request_id = id_text);
        let response = self.serve(request, endpoint).instrument(span).await;
        let mut response = render_problem(response, Some(id_text));
        let elapsed = started.elapsed();
        self.metrics.record(method, route, &response, elapsed);
        tracing::debug!(
            request_id = id_text,
            status = response.status().as_u16(),
            micros = elapsed.as_micros(),
            "answered"
        );
        let headers = response.headers_mut();
        headers.insert(X_REQUEST_ID, id);
        headers.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(NOSNIFF);
        response
    }

    /// Admits the request and runs it, within the time limit: a slow client or a stuck
    /// database holds nothing for long, and the work is dropped when the limit is reached.
    /// A panic in the route is answered `500` here, so it is still rendered, counted and
    /// carries the request id.
    async fn serve(&self, mut request: Request, endpoint: Either<Limited, Endpoint>) -> Response {
        let admitted = async {
            self.admit(&mut request).await?;
            let answered = AssertUnwindSafe(endpoint.oneshot(request)).catch_unwind().await;
            Ok::<_, ApiError>(match answered {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(panic) => panicked(&*panic),
            })
        };
        match tokio::time::timeout(self.request_timeout, admitted).await {
            Ok(Ok(response)) => response,
            Ok(Err(refused)) => refused.into_response(),
            Err(_) => ApiError::unavailable("the request took longer than TESSERA_REQUEST_TIMEOUT", 1).into_response(),
        }
    }

    async fn admit(&self, request: &mut Request) -> Result<(), ApiError> {
        client::resolve(request, &self.trusted_proxies);
        if let Some(limited) = limits::checked(request) {
            limits::enforce(&self.limiter, limited).await?;
        }
        if holds_control_characters(request) {
            return Err(ApiError::malformed("the path or query holds control characters"));
        }
        Ok(())
    }
}

/// The client's `X-Request-Id` when it is usable (1 to 128 letters, digits, `.`, `_`, `:` or
/// `-`, so it goes into logs and answers as it is and cannot open a quote or end a field in
/// either), else a new UUIDv7: unique, and sorted by time (to the millisecond) in the logs.
fn request_id(request: &Request) -> HeaderValue {
    let allowed = |byte: &u8| byte.is_ascii_alphanumeric() || b"._:-".contains(byte);
    let usable = |v: &&HeaderValue| v.len() <= MAX_REQUEST_ID_LEN && !v.is_empty() && v.as_bytes().iter().all(allowed);
    if let Some(id) = request.headers().get(X_REQUEST_ID).filter(usable) {
        return id.clone();
    }
    let mut text = [0_u8; uuid::fmt::Hyphenated::LENGTH];
    // Without a shared context: the random bits are drawn per thread, so two workers never
    // wait on one lock for an id; ids in the same millisecond are unique but unordered.
    let now = uuid::Timestamp::now(uuid::NoContext);
    let text = uuid::Uuid::new_v7(now).hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"))
}

/// Whether the path or query, once percent-decoded, holds a control character (`%00` above
/// all): no route, id, name or filter has one, and PostgreSQL cannot even compare text with a
/// NUL in it, so such a request is answered `400 malformed_request` before any handler runs.
fn holds_control_characters(request: &Request) -> bool {
    let path = percent_encoding::percent_decode_str(request.uri().path()).decode_utf8_lossy();
    let query = request.uri().query().unwrap_or_default().as_bytes();
    let in_query = url::form_urlencoded::parse(query).any(|(k, v)| k.chars().chain(v.chars()).any(char::is_control));
    path.chars().any(char::is_control) || in_query
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::{get, post};

    use super::*;
    use crate::domain::limits::RouteLimits;
    use crate::service::abuse::AbuseStats;
    use crate::service::abuse::limiter::Counters;
    use crate::service::abuse::redis_counters::RedisCounters;

    /// A router with a route that panics and one that reads a body, behind the edge.
    async fn router() -> Router {
        // No route is limited (the default limits are none), so the counters, which connect
        // lazily, are never asked.
        let counters = Counters::Redis(RedisCounters::new("redis://127.0.0.1:6379").expect("a Redis URL"));
        let abuse = AbuseStats::default();
        let edge = Edge {
            metrics: Metrics::new(&Default::default(), &Default::default(), &abuse),
            trusted_proxies: Arc::from([]),
            limiter: RateLimiter::new(counters, RouteLimits::default(), abuse),
            request_timeout: Duration::from_secs(5),
        };
        Router::new()
            .route("/boom", get(boom))
            .route("/echo", post(|body: axum::body::Bytes| async move { body.len().to_string() }))
            .layer(EdgeLayer(Arc::new(edge)))
    }

    async fn boom() -> &'static str {
        panic!("boom")
    }

    /// `bytes` as a body of 1 KiB chunks whose length nobody knows beforehand.
    fn streamed(bytes: &[u8]) -> Body {
        let chunks: Vec<_> = bytes.chunks(1024).map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec())).collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    async fn call(router: &Router, request: axum::http::Request<Body>) -> Response {
        router.clone().oneshot(request).await.unwrap_or_else(|never| match never {})
    }

    /// A route that panics is answered by the edge: a `500` problem with the request id,
    /// `nosniff`, and the service goes on answering.
    #[tokio::test]
    async fn a_panic_is_a_problem_answer_with_the_request_id() {
        let router = router().await;
        for _ in 0..2 {
            let request = axum::http::Request::get("/boom").header(X_REQUEST_ID, "abc-123").body(Body::empty());
            let response = call(&router, request.expect("a request")).await;
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let headers = response.headers();
            assert_eq!(headers.get(X_REQUEST_ID).and_then(|v| v.to_str().ok()), Some("abc-123"));
            assert_eq!(
                headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
                Some("application/problem+json")
            );
            assert_eq!(headers.get(header::X_CONTENT_TYPE_OPTIONS).and_then(|v| v.to_str().ok()), Some("nosniff"));
            let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("a body");
            let problem: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(problem["code"], "internal");
            assert_eq!(problem["request_id"], "abc-123");
        }
    }

    /// The body limit holds for a request with a body, whether its length is declared or it
    /// comes in chunks, whatever the headers say.
    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let router = router().await;
        let over = vec![b'x'; MAX_BODY_BYTES + 1];
        let declared = axum::http::Request::post("/echo")
            .header(header::CONTENT_LENGTH, over.len())
            .body(Body::from(over.clone()))
            .expect("a request");
        assert_eq!(call(&router, declared).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let chunked = axum::http::Request::post("/echo")
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(streamed(&over))
            .expect("a request");
        assert_eq!(call(&router, chunked).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // A `Content-Length: 0` beside the chunks does not hide them from the limit.
        let disguised = axum::http::Request::post("/echo")
            .header(header::CONTENT_LENGTH, 0)
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(streamed(&over))
            .expect("a request");
        assert_eq!(call(&router, disguised).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Nor does sending no header at all (as HTTP/2 may).
        let bare = axum::http::Request::post("/echo").body(streamed(&over)).expect("a request");
        assert_eq!(call(&router, bare).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let within =
            axum::http::Request::post("/echo").header(header::CONTENT_LENGTH, 10).body(Body::from(vec![b'x'; 10]));
        assert_eq!(call(&router, within.expect("a request")).await.status(), StatusCode::OK);
        let empty = axum::http::Request::post("/echo").header(header::CONTENT_LENGTH, 0).body(Body::empty());
        assert_eq!(call(&router, empty.expect("a request")).await.status(), StatusCode::OK);
    }
}
