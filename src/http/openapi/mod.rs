//! The OpenAPI 3.1 document, generated from the handlers and DTOs, and Swagger UI at `/docs`,
//! served from the binary (no CDN, no outside validator).

mod contract;
mod field_rules;

use axum::Router;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::{dto, ops, routes};
use crate::http::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "tessera", description = "User accounts and authentication. Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`. With `TESSERA_REQUIRE_MFA`, a session that may only add a second factor answers `403 mfa_enrolment_required` on every authenticated route but `GET /v1/me/mfa`, `POST /v1/me/mfa/totp`, `POST /v1/me/mfa/totp/confirm`, `GET /v1/me/passkeys`, `POST /v1/me/passkeys/start`, `POST /v1/me/passkeys/finish` and `POST /v1/auth/logout`."),
    paths(
        routes::auth::register, routes::auth::login, routes::auth::refresh, routes::auth::logout, routes::auth::jwks,
        routes::recovery::verify_email, routes::recovery::resend_verification, routes::recovery::forgot_password, routes::recovery::reset_password,
        routes::me::get_me, routes::me::update_me, routes::me::delete_me, routes::me::change_password,
        routes::mfa::mfa_status, routes::mfa::start_totp, routes::mfa::confirm_totp, routes::mfa::remove_totp,
        routes::mfa::regenerate_recovery_codes, routes::mfa::complete_mfa,
        routes::passkeys::list_passkeys, routes::passkeys::start_passkey, routes::passkeys::finish_passkey,
        routes::passkeys::challenge_passkey, routes::passkeys::remove_passkey, routes::passkeys::start_passkey_sign_in,
        routes::passkeys::finish_passkey_sign_in,
        routes::sessions::list_sessions, routes::sessions::revoke_session,
        routes::users::list_users, routes::users::create_user, routes::users::get_user, routes::users::update_user, routes::users::delete_user,
        routes::users::list_user_sessions, routes::users::revoke_user_sessions, routes::users::clear_user_lockout, routes::users::reset_user_mfa,
        routes::audit::list_audit_events,
        routes::wallets::list_wallets, routes::wallets::create_wallet, routes::wallets::get_wallet, routes::wallets::update_wallet,
        routes::wallets::delete_wallet, routes::wallets::list_entries, routes::wallets::transfer,
        routes::wallets::list_user_wallets, routes::wallets::list_user_entries, routes::wallets::adjust,
        routes::holds::place_hold, routes::holds::get_hold, routes::holds::capture_hold, routes::holds::void_hold,
        ops::healthz, ops::readyz, ops::metrics,
    ),
    components(schemas(dto::Problem, dto::problems::ProblemField)),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Registration and sign-in"),
        (name = "me", description = "The signed-in user's account"),
        (name = "mfa", description = "The signed-in user's second factors"),
        (name = "wallets", description = "Wallets on a double-entry ledger: amounts in minor units"),
        (name = "admin", description = "Administration: admins and owners, under the rank rules"),
        (name = "ops", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document, versioned as the crate and completed by [`contract`].
fn api_doc() -> Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    contract::complete(&mut doc);
    doc
}

/// The document as pretty JSON, as `tessera openapi` prints it and `openapi.json` holds it.
pub fn document() -> String {
    serde_json::to_string_pretty(&api_doc()).unwrap_or_default()
}

/// `/openapi.json` and `/docs`.
pub fn router() -> Router<AppState> {
    let ui = SwaggerUi::new("/docs")
        .external_url_unchecked("/openapi.json", api_doc())
        .config(Config::default().validator_url("none"));
    Router::new().merge(ui)
}
