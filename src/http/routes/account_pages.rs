//! The hosted sign-in and security pages, `/sign-in` and `/account/security`, for deployments
//! without a front-end of their own: sign in with a password then a code or a passkey, or with a
//! passkey alone; add an authenticator app (with its QR code), passkeys, and see recovery codes
//! once. Server-rendered shells driven by one small script of this origin's (WebAuthn needs
//! one), which calls the JSON API; the policy allows no other script, no inline script and no
//! other origin.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::html;

use super::pages::page_with_policy;
use crate::http::state::AppState;

/// The script, and what it may reach: this origin's API, and the QR code as a `data:` image.
const SCRIPTED: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; img-src data:; \
    style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

const SCRIPT: &str = include_str!("assets/account.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sign-in", get(sign_in))
        .route("/account/security", get(security))
        .route("/assets/account.js", get(script))
}

async fn sign_in(State(state): State<AppState>) -> Response {
    let body = html! {
        h1 { "Sign in" }
        form #password-form {
            label for="login" { "Username or e-mail" }
            input #login name="login" autocomplete="username" required;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
        div #second-step hidden {
            form #code-form {
                label for="code" { "Code from your app, or a recovery code" }
                input #code name="code" autocomplete="one-time-code";
                button type="submit" { "Continue" }
            }
            button #passkey-second type="button" { "Use a passkey" }
        }
        p { button #passkey-button type="button" { "Sign in with a passkey" } }
        div #done hidden {
            h2.ok { "Signed in" }
            p { a href="account/security" { "Your sign-in methods" } }
        }
        p #message role="status" {}
        script src="assets/account.js" {}
    };
    page_with_policy(&state, StatusCode::OK, "Sign in", body, SCRIPTED)
}

async fn security(State(state): State<AppState>) -> Response {
    let body = html! {
        h1 { "Sign-in methods" }
        div #signed-in {
            p #status {}
            h2 { "Passkeys" }
            ul #passkeys {}
            label for="current-password" { "Your password (to confirm a change)" }
            input #current-password type="password" autocomplete="current-password";
            label for="current-code" { "A current code, when you have a second factor" }
            input #current-code autocomplete="one-time-code";
            label for="passkey-name" { "Name of the new passkey" }
            input #passkey-name placeholder="Passkey";
            button #add-passkey type="button" { "Add a passkey" }
            h2 { "Authenticator app" }
            button #add-app type="button" { "Add an authenticator app" }
            div #app-setup hidden {
                img #qr alt="QR code for the authenticator app" width="200" height="200";
                p { "Or type this key: " code #secret {} }
                label for="app-code" { "Code the app shows" }
                input #app-code autocomplete="one-time-code";
                button #confirm-app type="button" { "Confirm" }
            }
            div #codes hidden {
                h2 { "Recovery codes" }
                p.rules { "Keep these somewhere safe: each signs in once if you lose your devices. They are shown only now." }
                ol #recovery-codes {}
            }
            p { button #sign-out type="button" { "Sign out" } }
        }
        p #message role="status" {}
        script src="../assets/account.js" {}
    };
    page_with_policy(&state, StatusCode::OK, "Sign-in methods", body, SCRIPTED)
}

async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], SCRIPT)
}
