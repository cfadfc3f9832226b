//! `X-Request-Id`: echoed when the client sent a sane one, otherwise a fresh UUIDv7; carried in
//! the request extensions for logs and problem bodies, and set on every response.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Longest client-chosen id we echo; longer or odd ones are replaced.
const MAX_LEN: usize = 128;

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let header = HeaderValue::from_str(&id).ok();
    if let Some(value) = &header {
        request.headers_mut().insert(X_REQUEST_ID.clone(), value.clone());
    }
    request.extensions_mut().insert(RequestId(id));
    let mut response = next.run(request).await;
    if let Some(value) = header {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

fn is_sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}
