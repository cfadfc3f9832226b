//! JSON answers.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;

/// Room for a typical answer (an account is about 400 bytes, a token pair with its account
/// about 1.5 KiB): axum's own `Json` starts at 128 bytes and grows, moving the text each time.
const TYPICAL_ANSWER: usize = 2048;

/// A JSON answer, as `axum::Json` writes one, into a buffer sized for a typical answer.
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(TYPICAL_ANSWER);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
            // Only a map with non-text keys or a failing `Serialize` impl could get here.
            Err(error) => ApiError::internal(format!("could not write the answer: {error}")).into_response(),
        }
    }
}
