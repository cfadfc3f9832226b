//! What happens to every request, in one middleware, in this order: the request id (the
//! client's when it is usable, else a new one; echoed on the answer), the tracing span, the
//! request timeout, the client's address, the rate limits, refusal of control characters; on
//! the way out, problem rendering and the metrics.
//!
//! One `from_fn` instead of a layer each: every `from_fn` layer clones the service beneath it
//! and boxes a future for every request, and with ten of them the layers cost as much as the
//! route behind them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use tracing::Instrument as _;

use super::error::{ApiError, render_problem};
use super::metrics::{self, Metrics, Route};
use super::{client, limits};
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

/// The middleware.
pub async fn handle(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    let method = metrics::method_label(request.method());
    let route = Route::of(&request);
    // Only printable ASCII is ever kept (see `request_id`).
    let id_text = id.to_str().unwrap_or("");
    // Method, matched route and request id; never headers or bodies.
    let span = tracing::info_span!("request", method, route = route.as_str(), request_id = id_text);
    let response = edge.serve(request, next).instrument(span).await;
    let mut response = render_problem(response, Some(id_text));
    let elapsed = started.elapsed();
    edge.metrics.record(method, route, &response, elapsed);
    tracing::debug!(
        request_id = id_text,
        status = response.status().as_u16(),
        micros = elapsed.as_micros(),
        "answered"
    );
    response.headers_mut().insert(X_REQUEST_ID, id);
    response
}

impl Edge {
    /// Admits the request and runs it, within the time limit: a slow client or a stuck
    /// database holds nothing for long, and the work is dropped when the limit is reached.
    async fn serve(&self, mut request: Request, next: Next) -> Response {
        let admitted = async {
            self.admit(&mut request).await?;
            Ok::<_, ApiError>(next.run(request).await)
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

/// The client's `X-Request-Id` when it is usable (1 to 128 printable ASCII characters, so it
/// can go into logs and answers as it is), else a new UUIDv7: unique, and sorted by time in
/// the logs.
fn request_id(request: &Request) -> HeaderValue {
    let usable = |v: &&HeaderValue| {
        v.len() <= MAX_REQUEST_ID_LEN && !v.is_empty() && v.as_bytes().iter().all(u8::is_ascii_graphic)
    };
    if let Some(id) = request.headers().get(X_REQUEST_ID).filter(usable) {
        return id.clone();
    }
    let mut text = [0_u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
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
