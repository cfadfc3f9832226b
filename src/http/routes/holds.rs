//! Holds (API.md, "Wallets"): two-phase transfers. The payer places, captures or voids one;
//! payer and payee may read it.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use uuid::Uuid;

use crate::domain::Invalid;
use crate::domain::ids::parse_id;
use crate::domain::money::Amount;
use crate::http::dto::problems::{NotFound, Unauthenticated, ValidationFailed};
use crate::http::dto::wallets::{CaptureBody, HoldBody, HoldView, VoidBody};
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, Client, IdempotentJson};
use crate::http::reply::Json;
use crate::http::state::AppState;
use crate::service::Error;
use crate::service::holds::{DEFAULT_EXPIRY, HoldRequest, MAX_EXPIRY};
use crate::service::transfers::Once;

use super::wallets::movement;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/holds", post(place_hold))
        .route("/v1/holds/{id}", get(get_hold))
        .route("/v1/holds/{id}/capture", post(capture_hold))
        .route("/v1/holds/{id}/void", post(void_hold))
}

fn hold_id(raw: &str) -> Result<Uuid, Error> {
    parse_id(raw).ok_or(Error::NotFound)
}

/// Reserve money in a wallet of the caller's for another wallet: `available` falls by the
/// amount until the hold is captured, voided or expires.
#[utoipa::path(post, path = "/v1/holds", tag = "wallets", security(("bearer" = [])), request_body = HoldBody,
    params(("Idempotency-Key" = String, Header, description = "1–255 visible ASCII characters, unique per request")),
    responses((status = 201, body = HoldView), Unauthenticated, NotFound, ValidationFailed,
        (status = 409, description = "`insufficient_funds`, `wallet_frozen` or `idempotency_conflict`", body = crate::http::dto::Problem, content_type = "application/problem+json")))]
pub async fn place_hold(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    request: IdempotentJson<HoldBody>,
) -> Result<(StatusCode, Json<HoldView>), ApiError> {
    let IdempotentJson { key, request_hash, body } = request;
    let expires_in = match body.expires_in.map(Duration::from_secs) {
        None => Ok(DEFAULT_EXPIRY),
        Some(d) if d >= Duration::from_secs(1) && d <= MAX_EXPIRY => Ok(d),
        Some(_) => Err(Invalid::new("out_of_range", "must be from 1 to 2592000 seconds").at("expires_in")),
    };
    let (from_wallet_id, to_wallet_id, amount, description, expires_in) =
        movement(&body.from_wallet_id, &body.to_wallet_id, body.amount, body.description, expires_in)?;
    let once = Once { actor: me.user_id, key, request_hash };
    let request = HoldRequest { from_wallet_id, to_wallet_id, amount, expires_in, description };
    let hold = state.transfers.place_hold(&once, &request, &client).await?;
    Ok((StatusCode::CREATED, Json(HoldView::from(&hold))))
}

/// A hold, for its payer or its payee; anyone else gets 404.
#[utoipa::path(get, path = "/v1/holds/{id}", tag = "wallets", security(("bearer" = [])),
    params(("id" = String, Path, description = "A hold id")),
    responses((status = 200, body = HoldView), Unauthenticated, NotFound))]
pub async fn get_hold(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<HoldView>, ApiError> {
    Ok(Json(HoldView::from(&state.transfers.hold(me.user_id, hold_id(&id)?).await?)))
}

/// Turn a pending hold into a transfer of its amount (or less; the rest is released).
#[utoipa::path(post, path = "/v1/holds/{id}/capture", tag = "wallets", security(("bearer" = [])), request_body = Option<CaptureBody>,
    params(("id" = String, Path, description = "A hold id"),
        ("Idempotency-Key" = String, Header, description = "1–255 visible ASCII characters, unique per request")),
    responses((status = 200, body = HoldView), Unauthenticated, NotFound, ValidationFailed,
        (status = 409, description = "`hold_expired`, `hold_not_pending`, `wallet_frozen` or `idempotency_conflict`", body = crate::http::dto::Problem, content_type = "application/problem+json")))]
pub async fn capture_hold(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
    request: IdempotentJson<CaptureBody>,
) -> Result<Json<HoldView>, ApiError> {
    let IdempotentJson { key, request_hash, body } = request;
    let amount = body.amount.map(Amount::parse).transpose().map_err(|e| Error::from(e.at("amount")))?;
    let once = Once { actor: me.user_id, key, request_hash };
    Ok(Json(HoldView::from(&state.transfers.capture(&once, hold_id(&id)?, amount, &client).await?)))
}

/// Release a pending hold.
#[utoipa::path(post, path = "/v1/holds/{id}/void", tag = "wallets", security(("bearer" = [])), request_body = Option<VoidBody>,
    params(("id" = String, Path, description = "A hold id"),
        ("Idempotency-Key" = String, Header, description = "1–255 visible ASCII characters, unique per request")),
    responses((status = 200, body = HoldView), Unauthenticated, NotFound, ValidationFailed,
        (status = 409, description = "`hold_expired`, `hold_not_pending` or `idempotency_conflict`", body = crate::http::dto::Problem, content_type = "application/problem+json")))]
pub async fn void_hold(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
    request: IdempotentJson<VoidBody>,
) -> Result<Json<HoldView>, ApiError> {
    let IdempotentJson { key, request_hash, body: VoidBody {} } = request;
    let once = Once { actor: me.user_id, key, request_hash };
    Ok(Json(HoldView::from(&state.transfers.void(&once, hold_id(&id)?, &client).await?)))
}
