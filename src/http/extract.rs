//! Extractors: the edge's checks, done once for every handler.

use axum::body::{Body, HttpBody as _};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde::de::value::StrDeserializer;
use serde::de::{DeserializeOwned, Deserializer};

use super::client;
use super::error::ApiError;
use super::json_body;
use crate::domain::audit::ClientInfo;
use crate::domain::secrets::sha256_hex;
use crate::domain::session::SignInProof;
use crate::domain::{FieldError, Invalid};
use crate::http::state::AppState;
use crate::service::Error;
use crate::service::administration::Administrator;
use crate::service::auth::Principal;
use crate::service::transfers::IdempotencyKey;

/// A JSON body whose every failure is a problem: wrong content type `415`, too large `413`,
/// not JSON `400`, not an object, or unknown or mistyped fields `422` naming the field.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<json_body::JsonObject<T>>::from_request(request, state).await {
            Ok(axum::Json(json_body::JsonObject(value))) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

/// A JSON body (none reads as `{}`) sent under an `Idempotency-Key` (required): the key, the
/// body, and a digest of the request (method, path and body, as parsed) that tells a repeat
/// from a reuse of the key.
pub struct IdempotentJson<T> {
    pub key: IdempotencyKey,
    pub request_hash: String,
    pub body: T,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for IdempotentJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = request.headers().get("idempotency-key").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let key = match raw {
            Some(raw) => IdempotencyKey::parse(&raw).map_err(|e| Error::from(e.at("Idempotency-Key")))?,
            None => return Err(Error::invalid("Idempotency-Key", "required", "this header is required").into()),
        };
        let route = format!("{} {}", request.method(), request.uri().path());
        // No body at all (or `null`) reads as `{}`, for routes whose every field is optional.
        let value =
            optional_body(request, state).await?.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        let request_hash = sha256_hex(format!("{route}\n{value}").as_bytes());
        let body = from_value(value)?;
        Ok(Self { key, request_hash, body })
    }
}

/// Query parameters; one that cannot be parsed is `400 malformed_request` naming it.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let reason = text.split_once("query string: ").map_or(text.as_str(), |(_, r)| r);
                Err(ApiError::malformed(format!("query: {reason}")))
            }
        }
    }
}

/// A JSON body that may be left out entirely (no body, no content type) or sent as `null`:
/// then `None`.
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(optional_body(request, state).await?.map(from_value).transpose()?))
    }
}

/// Whether a request has a body: anything but one known to be empty. Asked of the body, not
/// the headers, so it holds whatever the protocol (an HTTP/2 body needs no length header).
pub fn carries_body(body: &Body) -> bool {
    body.size_hint().exact() != Some(0)
}

/// The body as JSON, read strictly (see [`json_body`]); `None` when there is none, or `null`.
async fn optional_body<S: Send + Sync>(request: Request, state: &S) -> Result<Option<serde_json::Value>, ApiError> {
    if !carries_body(request.body()) {
        return Ok(None);
    }
    let AppJson(json_body::StrictValue(value)) = AppJson::from_request(request, state).await?;
    Ok(Some(value).filter(|v| !v.is_null()))
}

fn json_problem(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::unsupported_media_type(),
        JsonRejection::JsonSyntaxError(_) => ApiError::malformed("the body is not valid JSON"),
        JsonRejection::JsonDataError(error) => ApiError::validation(vec![field_error(&error.body_text())]),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large")
                .detail("bodies may be at most 64 KiB")
        }
        _ => ApiError::malformed("the body could not be read"),
    }
}

/// A body already parsed as JSON, read as `T`; a refusal names the field, as axum's does.
fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| Error::from(field_error(&e.to_string())))
}

/// Turns serde's sentence ("Failed to deserialize …: username: invalid type: …") into a field
/// error naming the field, so clients can show it beside the right input.
fn field_error(text: &str) -> FieldError {
    let message = text.split_once("target type: ").map_or(text, |(_, rest)| rest);
    let message = message.split(" at line ").next().unwrap_or(message);
    if let Some(name) = between(message, "unknown field `", "`") {
        return FieldError {
            field: name.to_owned().into(),
            code: "unknown_field",
            message: "is not a known field".into(),
        };
    }
    if let Some(name) = between(message, "missing field `", "`") {
        return FieldError { field: name.to_owned().into(), code: "required", message: "is required".into() };
    }
    match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => {
            FieldError { field: path.to_owned().into(), code: "invalid_type", message: rest.to_owned() }
        }
        _ => FieldError { field: "body".into(), code: "invalid_type", message: message.to_owned() },
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// A string field that serde parses into `T` (a role, a status, an order, an instant), keeping
/// a refusal instead of failing the whole query or body, so that a handler can report every
/// bad field at once, each under its own name and code.
#[derive(Debug)]
pub struct Checked<T>(Result<T, String>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        let parsed = T::deserialize(StrDeserializer::<serde::de::value::Error>::new(&raw));
        Ok(Self(parsed.map_err(|_| raw)))
    }
}

impl<T> Checked<T> {
    /// The value, or `refusal` for `field`.
    pub fn or_refuse(self, field: &'static str, refusal: Invalid) -> Result<T, FieldError> {
        self.0.map_err(|_| refusal.at(field))
    }
}

/// A page's size: `limit` from 1 to 200, 50 when absent.
pub fn page_limit(limit: Option<u32>) -> Result<u32, FieldError> {
    Some(limit.unwrap_or(50))
        .filter(|limit| (1..=200).contains(limit))
        .ok_or_else(|| Invalid::new("out_of_range", "must be from 1 to 200").at("limit"))
}

/// An optional [`Checked`] field: absent is `None`, a bad value is `refusal` at `field`.
pub fn checked<T>(value: Option<Checked<T>>, field: &'static str, refusal: Invalid) -> Result<Option<T>, FieldError> {
    value.map(|v| v.or_refuse(field, refusal)).transpose()
}

/// The signed-in caller: a verified access token whose session is live, and not limited to
/// adding a second factor (`403 mfa_enrolment_required` then).
pub struct AuthUser(pub Principal);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let EnrollingUser(principal) = EnrollingUser::from_request_parts(parts, state).await?;
        if principal.state.proof == SignInProof::EnrolmentOnly || state.auth.must_enrol(&principal) {
            return Err(Error::EnrolmentRequired.into());
        }
        Ok(Self(principal))
    }
}

/// The signed-in caller, also in a session that may only add a second factor: for the routes
/// such a session needs (its factors, adding one, signing out).
pub struct EnrollingUser(pub Principal);

impl FromRequestParts<AppState> for EnrollingUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(ApiError::unauthenticated)?;
        Ok(Self(state.auth.authenticate(token).await?))
    }
}

/// A signed-in administrator (`admin` or `owner`); anyone else is `403 forbidden` before the
/// request is looked at further, so a refusal tells nothing about the targets or parameters.
pub struct AdminUser(pub Administrator);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
        Ok(Self(Administrator::try_from(principal)?))
    }
}

/// Where the request came from: the client's address (see [`super::client`]) and the
/// `User-Agent`, trimmed.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = client::of(&parts.extensions).map(|ip| ip.to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect());
        Ok(Self(ClientInfo { ip, user_agent }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_the_field() {
        let unknown = field_error(
            "Failed to deserialize the JSON body into the target type: unknown field `role`, expected one of `username`, `email` at line 1 column 7",
        );
        assert_eq!((unknown.field.as_ref(), unknown.code), ("role", "unknown_field"));
        let missing = field_error(
            "Failed to deserialize the JSON body into the target type: missing field `password` at line 1 column 2",
        );
        assert_eq!((missing.field.as_ref(), missing.code), ("password", "required"));
        let typed = field_error(
            "Failed to deserialize the JSON body into the target type: username: invalid type: integer `5`, expected a string at line 1 column 14",
        );
        assert_eq!((typed.field.as_ref(), typed.code), ("username", "invalid_type"));
        let unknown = field_error("Failed to deserialize the JSON body into the target type: unknown field `is_admin`");
        assert_eq!(unknown.field, "is_admin");
        let root = field_error(
            "Failed to deserialize the JSON body into the target type: invalid type: integer `5`, expected struct X",
        );
        assert_eq!(root.field, "body");
    }
}
