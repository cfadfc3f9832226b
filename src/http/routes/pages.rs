//! The pages behind the mailed links, `/verify-email` and `/reset-password`: small HTML forms
//! rendered here, with no script and nothing fetched from elsewhere, for deployments without a
//! front-end of their own. They post back to themselves and show the outcome.
//!
//! Following a link only shows a button or a form; the token is used when the form is sent, so
//! a mail scanner that opens links cannot use it up.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::password::Password;
use crate::http::error::HtmlPage;
use crate::http::extract::Client;
use crate::http::state::AppState;
use crate::service::Error;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/verify-email", get(verify_form).post(verify))
        .route("/reset-password", get(reset_form).post(reset))
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
pub struct VerifyForm {
    token: String,
}

#[derive(Deserialize)]
pub struct ResetForm {
    token: String,
    new_password: String,
    confirm_password: String,
}

async fn verify_form(State(state): State<AppState>, Query(query): Query<TokenQuery>) -> Response {
    let Some(token) = query.token.filter(|t| !t.is_empty()) else { return missing_token(&state) };
    let body = html! {
        h1 { "Confirm your e-mail address" }
        p { "Press the button to confirm that this address is yours." }
        form method="post" action="verify-email" {
            input type="hidden" name="token" value=(token);
            button type="submit" { "Confirm my address" }
        }
    };
    page(&state, StatusCode::OK, "Confirm your e-mail address", body)
}

async fn verify(State(state): State<AppState>, Client(client): Client, Form(form): Form<VerifyForm>) -> Response {
    match state.recovery.verify_email(&SecretString::from(form.token), &client).await {
        Ok(user) => {
            let body = html! {
                h1.ok { "Address confirmed" }
                p {
                    "Thank you: " strong { (user.profile.email.as_deref().unwrap_or_default()) }
                    " is confirmed. You can close this page and sign in."
                }
            };
            page(&state, StatusCode::OK, "Address confirmed", body)
        }
        Err(Error::InvalidToken) => invalid_link(&state, "confirmation"),
        Err(Error::EmailTaken) => {
            let body = html! {
                h1.error { "Address already in use" }
                p { "Another account uses this address now, so it cannot become yours. Sign in and choose another." }
            };
            page(&state, StatusCode::CONFLICT, "Address already in use", body)
        }
        Err(error) => failure(&state, error),
    }
}

async fn reset_form(State(state): State<AppState>, Query(query): Query<TokenQuery>) -> Response {
    let Some(token) = query.token.filter(|t| !t.is_empty()) else { return missing_token(&state) };
    page(&state, StatusCode::OK, "Choose a new password", reset_body(&token, &[]))
}

async fn reset(State(state): State<AppState>, Client(client): Client, Form(form): Form<ResetForm>) -> Response {
    if form.new_password != form.confirm_password {
        let body = reset_body(&form.token, &["The two passwords differ.".to_owned()]);
        return page(&state, StatusCode::UNPROCESSABLE_ENTITY, "Choose a new password", body);
    }
    let token = SecretString::from(form.token.clone());
    match state.recovery.reset_password(&token, SecretString::from(form.new_password), &client).await {
        Ok(()) => {
            let body = html! {
                h1.ok { "Password changed" }
                p {
                    "Your new password is set, and every session of your account was signed out. "
                    "You can now sign in with the new password."
                }
            };
            page(&state, StatusCode::OK, "Password changed", body)
        }
        Err(Error::Validation(errors)) => {
            let messages: Vec<String> = errors.iter().map(|e| format!("The new password {}.", e.message)).collect();
            page(&state, StatusCode::UNPROCESSABLE_ENTITY, "Choose a new password", reset_body(&form.token, &messages))
        }
        Err(Error::InvalidToken) => invalid_link(&state, "reset"),
        Err(error) => failure(&state, error),
    }
}

/// The reset form, with the rules a password must meet and any refusal of the last try.
fn reset_body(token: &str, problems: &[String]) -> Markup {
    let (min, max) = (Password::MIN_CHARS, Password::MAX_CHARS);
    html! {
        h1 { "Choose a new password" }
        @for problem in problems { p.error role="alert" { (problem) } }
        form method="post" action="reset-password" {
            input type="hidden" name="token" value=(token);
            label for="new_password" { "New password" }
            input #new_password name="new_password" type="password" autocomplete="new-password"
                minlength=(min) maxlength=(max) required;
            label for="confirm_password" { "The same again" }
            input #confirm_password name="confirm_password" type="password" autocomplete="new-password"
                minlength=(min) maxlength=(max) required;
            ul.rules {
                li { (min) " to " (max) " characters; a long phrase is best" }
                li { "not one of the commonly used passwords" }
                li { "not your username or e-mail address" }
            }
            button type="submit" { "Set my new password" }
        }
    }
}

fn missing_token(state: &AppState) -> Response {
    let body = html! {
        h1.error { "Link incomplete" }
        p {
            "This address lacks its token. Open the link from the mail again, or copy the whole address "
            "into your browser."
        }
    };
    page(state, StatusCode::BAD_REQUEST, "Link incomplete", body)
}

fn invalid_link(state: &AppState, kind: &str) -> Response {
    let body = html! {
        h1.error { "This link does not work" }
        p {
            "The " (kind) " link is unknown, has expired or was already used. Ask for a new one and use the "
            "newest mail."
        }
    };
    page(state, StatusCode::UNAUTHORIZED, "This link does not work", body)
}

fn failure(state: &AppState, error: Error) -> Response {
    tracing::error!(%error, "hosted page failed");
    let body = html! {
        h1.error { "Something went wrong" }
        p { "Please try again in a minute." }
    };
    page(state, StatusCode::SERVICE_UNAVAILABLE, "Something went wrong", body)
}

const STYLE: &str = "[hidden]{display:none!important}body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;\
    line-height:1.5;color:#222}h1{font-size:1.4rem}.ok{color:#1a6b2f}.error{color:#a4262c}\
    label{display:block;margin-top:1rem;font-weight:600}input{width:100%;padding:.5rem;font-size:1rem;\
    box-sizing:border-box}button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;background:#1f4f8f;\
    color:#fff;border:0;border-radius:4px}.rules{font-size:.9rem;color:#555}footer{margin-top:2rem;\
    font-size:.8rem;color:#777}";

/// What the pages behind mailed links may do: nothing but their own style and form.
const NO_SCRIPT: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A whole page. The token is in the page's own address, so it is never sent on as a referrer;
/// the policy allows nothing but this page's own style and form.
fn page(state: &AppState, status: StatusCode, title: &str, body: Markup) -> Response {
    page_with_policy(state, status, title, body, NO_SCRIPT)
}

/// A whole page under the content security policy `policy`.
pub(super) fn page_with_policy(
    state: &AppState,
    status: StatusCode,
    title: &str,
    body: Markup,
    policy: &'static str,
) -> Response {
    let product = state.accounts.notices().product();
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · " (product) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main { (body) }
                footer { (product) }
            }
        }
    };
    let mut response = (status, html.into_string()).into_response();
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, policy),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response.extensions_mut().insert(HtmlPage);
    response
}
