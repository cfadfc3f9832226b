//! Wallets (API.md, "Wallets"): the caller's own, transfers between any two, and, for
//! administrators, anyone's wallets, ledgers and adjustments.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use uuid::Uuid;

use crate::domain::fields::Note;
use crate::domain::ids::parse_id;
use crate::domain::money::{Adjustment, Amount, Currency};
use crate::domain::ranks::Action;
use crate::domain::wallet::LedgerEntry;
use crate::domain::{FieldError, Invalid};
use crate::http::dto::PageQuery;
use crate::http::dto::problems::{Forbidden, NotFound, Unauthenticated, ValidationFailed};
use crate::http::dto::wallets::{
    AdjustmentBody, CreateWalletRequest, EntryPage, LedgerEntryView, TransferBody, TransferView, UpdateWalletRequest,
    WalletList, WalletView,
};
use crate::http::error::ApiError;
use crate::http::extract::{AdminUser, AppJson, AppQuery, AuthUser, Client, IdempotentJson, checked, page_limit};
use crate::http::reply::Json;
use crate::http::state::AppState;
use crate::service::Error;
use crate::service::cursor::Page;
use crate::service::transfers::{Once, TransferRequest};
use crate::service::wallets::{NewWallet, WalletChanges};
use crate::validated;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me/wallets", get(list_wallets).post(create_wallet))
        .route("/v1/me/wallets/{id}", get(get_wallet).patch(update_wallet).delete(delete_wallet))
        .route("/v1/me/wallets/{id}/entries", get(list_entries))
        .route("/v1/transfers", post(transfer))
        .route("/v1/users/{reference}/wallets", get(list_user_wallets))
        .route("/v1/users/{reference}/wallets/{id}/entries", get(list_user_entries))
        .route("/v1/users/{reference}/wallets/{id}/adjustments", post(adjust))
}

/// A wallet id from the path; anything else names no wallet.
fn wallet_id(raw: &str) -> Result<Uuid, Error> {
    parse_id(raw).ok_or(Error::NotFound)
}

/// The fields every movement of money has (two wallet ids, an amount, a note) and one more of
/// the route's own, checked together so that every refusal is reported at once.
pub(super) fn movement<T>(
    from: &str,
    to: &str,
    amount: i64,
    description: Option<String>,
    extra: Result<T, FieldError>,
) -> Result<(Uuid, Uuid, Amount, Option<String>, T), Error> {
    let id =
        |raw: &str, field| parse_id(raw).ok_or_else(|| Invalid::new("invalid_id", "must be a wallet id").at(field));
    let from = id(from, "from_wallet_id");
    let to = id(to, "to_wallet_id");
    let amount = Amount::parse(amount).map_err(|e| e.at("amount"));
    let description = note(description, "description");
    validated!(from, to, amount, description, extra)
}

fn note(raw: Option<String>, field: &'static str) -> Result<Option<String>, FieldError> {
    raw.map(|text| Note::parse(&text).map(Note::into_inner).map_err(|e| e.at(field))).transpose()
}

fn entry_page(page: Page<LedgerEntry>) -> EntryPage {
    EntryPage { items: page.items.iter().map(LedgerEntryView::from).collect(), next_cursor: page.next_cursor }
}

/// The caller's wallets.
#[utoipa::path(get, path = "/v1/me/wallets", tag = "wallets", security(("bearer" = [])),
    responses((status = 200, body = WalletList), Unauthenticated))]
pub async fn list_wallets(State(state): State<AppState>, AuthUser(me): AuthUser) -> Result<Json<WalletList>, ApiError> {
    let wallets = state.wallets.list(me.user_id).await?;
    Ok(Json(WalletList { items: wallets.iter().map(WalletView::from).collect() }))
}

/// Open a wallet, with a balance of 0.
#[utoipa::path(post, path = "/v1/me/wallets", tag = "wallets", security(("bearer" = [])), request_body = CreateWalletRequest,
    responses((status = 201, body = WalletView), Unauthenticated, ValidationFailed))]
pub async fn create_wallet(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    AppJson(request): AppJson<CreateWalletRequest>,
) -> Result<(StatusCode, Json<WalletView>), ApiError> {
    let currency = Currency::parse(&request.currency).map_err(|e| e.at("currency"));
    let kind = checked(request.kind, "kind", Invalid::new("invalid_kind", "must be personal, business or savings"));
    let description = note(request.description, "description");
    let (currency, kind, description) = validated!(currency, kind, description)?;
    let new = NewWallet { currency, kind: kind.unwrap_or_default(), description };
    let wallet = state.wallets.create(me.user_id, new, &client).await?;
    Ok((StatusCode::CREATED, Json(WalletView::from(&wallet))))
}

/// One of the caller's wallets; anyone else's is 404.
#[utoipa::path(get, path = "/v1/me/wallets/{id}", tag = "wallets", security(("bearer" = [])),
    params(("id" = String, Path, description = "A wallet id")),
    responses((status = 200, body = WalletView), Unauthenticated, NotFound))]
pub async fn get_wallet(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<WalletView>, ApiError> {
    Ok(Json(WalletView::from(&state.wallets.get(me.user_id, wallet_id(&id)?).await?)))
}

/// Change a wallet's kind, description or status (`frozen` stops it sending and receiving).
#[utoipa::path(patch, path = "/v1/me/wallets/{id}", tag = "wallets", security(("bearer" = [])), request_body = UpdateWalletRequest,
    params(("id" = String, Path, description = "A wallet id")),
    responses((status = 200, body = WalletView), Unauthenticated, NotFound, ValidationFailed))]
pub async fn update_wallet(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    AppJson(request): AppJson<UpdateWalletRequest>,
) -> Result<Json<WalletView>, ApiError> {
    let id = wallet_id(&id)?;
    let kind = checked(request.kind, "kind", Invalid::new("invalid_kind", "must be personal, business or savings"));
    let status = checked(request.status, "status", Invalid::new("invalid_status", "must be active or frozen"));
    let description = request.description.map(|d| note(d, "description")).transpose();
    let (kind, status, description) = validated!(kind, status, description)?;
    let wallet = state.wallets.update(me.user_id, id, WalletChanges { kind, description, status }).await?;
    Ok(Json(WalletView::from(&wallet)))
}

/// Close a wallet; one that holds money is `409 wallet_not_empty`.
#[utoipa::path(delete, path = "/v1/me/wallets/{id}", tag = "wallets", security(("bearer" = [])),
    params(("id" = String, Path, description = "A wallet id")),
    responses((status = 204, description = "Closed"), Unauthenticated, NotFound,
        (status = 409, description = "`wallet_not_empty`", body = crate::http::dto::Problem, content_type = "application/problem+json")))]
pub async fn delete_wallet(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.wallets.delete(me.user_id, wallet_id(&id)?, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A wallet's ledger, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/me/wallets/{id}/entries", tag = "wallets", security(("bearer" = [])),
    params(("id" = String, Path, description = "A wallet id"), PageQuery),
    responses((status = 200, body = EntryPage), Unauthenticated, NotFound, ValidationFailed))]
pub async fn list_entries(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<Json<EntryPage>, ApiError> {
    let limit = page_limit(query.limit).map_err(Error::from)?;
    let page = state.wallets.entries(me.user_id, wallet_id(&id)?, query.cursor.as_deref(), limit).await?;
    Ok(Json(entry_page(page)))
}

/// Move money from a wallet of the caller's to any open wallet of the same currency, in one
/// transaction. `Idempotency-Key` is required: a repeat answers the same transfer.
#[utoipa::path(post, path = "/v1/transfers", tag = "wallets", security(("bearer" = [])), request_body = TransferBody,
    params(("Idempotency-Key" = String, Header, description = "1–255 visible ASCII characters, unique per request")),
    responses((status = 201, body = TransferView), Unauthenticated, NotFound, ValidationFailed,
        (status = 409, description = "`insufficient_funds`, `wallet_frozen` or `idempotency_conflict`", body = crate::http::dto::Problem, content_type = "application/problem+json")))]
pub async fn transfer(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Client(client): Client,
    request: IdempotentJson<TransferBody>,
) -> Result<(StatusCode, Json<TransferView>), ApiError> {
    let IdempotentJson { key, request_hash, body } = request;
    let (from_wallet_id, to_wallet_id, amount, description, ()) =
        movement(&body.from_wallet_id, &body.to_wallet_id, body.amount, body.description, Ok(()))?;
    let once = Once { actor: me.user_id, key, request_hash };
    let request = TransferRequest { from_wallet_id, to_wallet_id, amount, description };
    let made = state.transfers.transfer(&once, &request, &client).await?;
    Ok((StatusCode::CREATED, Json(TransferView::from(&made))))
}

/// Any user's wallets, for administrators.
#[utoipa::path(get, path = "/v1/users/{reference}/wallets", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username")),
    responses((status = 200, body = WalletList), Forbidden, NotFound))]
pub async fn list_user_wallets(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Path(reference): Path<String>,
) -> Result<Json<WalletList>, ApiError> {
    let user = state.admin.find(&me, &reference).await?;
    let wallets = state.wallets.list(user.id).await?;
    Ok(Json(WalletList { items: wallets.iter().map(WalletView::from).collect() }))
}

/// Any user's wallet ledger, newest first, for administrators.
#[utoipa::path(get, path = "/v1/users/{reference}/wallets/{id}/entries", tag = "admin", security(("bearer" = [])),
    params(("reference" = String, Path, description = "An id or a username"), ("id" = String, Path, description = "A wallet id"), PageQuery),
    responses((status = 200, body = EntryPage), Forbidden, NotFound, ValidationFailed))]
pub async fn list_user_entries(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Path((reference, id)): Path<(String, String)>,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<Json<EntryPage>, ApiError> {
    let limit = page_limit(query.limit).map_err(Error::from)?;
    let user = state.admin.find(&me, &reference).await?;
    let page = state.wallets.entries(user.id, wallet_id(&id)?, query.cursor.as_deref(), limit).await?;
    Ok(Json(entry_page(page)))
}

/// Add money to, or take it from, a user's wallet: the only way money enters or leaves.
/// Administrators only, never on their own account or one of equal rank; audited.
#[utoipa::path(post, path = "/v1/users/{reference}/wallets/{id}/adjustments", tag = "admin", security(("bearer" = [])),
    request_body = AdjustmentBody,
    params(("reference" = String, Path, description = "An id or a username"), ("id" = String, Path, description = "A wallet id"),
        ("Idempotency-Key" = String, Header, description = "1–255 visible ASCII characters, unique per request")),
    responses((status = 201, body = LedgerEntryView), Forbidden, NotFound, ValidationFailed,
        (status = 409, description = "`insufficient_funds` or `idempotency_conflict`", body = crate::http::dto::Problem, content_type = "application/problem+json")))]
pub async fn adjust(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Client(client): Client,
    Path((reference, id)): Path<(String, String)>,
    request: IdempotentJson<AdjustmentBody>,
) -> Result<(StatusCode, Json<LedgerEntryView>), ApiError> {
    let IdempotentJson { key, request_hash, body } = request;
    let amount = Adjustment::parse(body.amount).map_err(|e| e.at("amount"));
    let reason = Note::parse(&body.reason).map(Note::into_inner).map_err(|e| e.at("reason"));
    let (amount, reason) = validated!(amount, reason)?;
    let wallet = wallet_id(&id)?;
    let user = state.admin.target(&me, &reference, Action::AdjustBalance).await?;
    let once = Once { actor: me.user_id, key, request_hash };
    let entry = state.transfers.adjust(&once, user.id, wallet, amount, &reason, &client).await?;
    Ok((StatusCode::CREATED, Json(LedgerEntryView::from(&entry))))
}
