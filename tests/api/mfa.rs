//! Second factors: an authenticator app (TOTP) enrolled with the password and confirmed with a
//! code, sign-in in two steps, codes accepted once, recovery codes used once and replaced,
//! wrong codes locked out like wrong passwords. Codes are computed here from the secret.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::Method;
use serde_json::{Value, json};
use tessera::domain::second_factor::TotpSecret;

use crate::helpers::*;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The app's code `steps` 30-second steps from now.
pub fn code(secret: &str, steps: i64) -> String {
    let at = now_secs().saturating_add_signed(steps * 30);
    TotpSecret::from_base32(secret).unwrap().code_at(at).unwrap()
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

pub fn amr_of(token: &str) -> Value {
    claims_of(token)["amr"].clone()
}

async fn status(app: &TestApp, token: &str) -> Value {
    app.get("/v1/me/mfa", Some(token)).await.json().await.unwrap()
}

/// Enrols and confirms an authenticator app for the holder of `token`; answers the secret and
/// the recovery codes.
pub async fn enrol(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let started: Value = app
        .send_json(Method::POST, "/v1/me/mfa/totp", Some(token), &json!({"current_password": PASSWORD}))
        .await
        .json()
        .await
        .unwrap();
    let secret = started["secret"].as_str().unwrap().to_owned();
    let confirmed =
        app.send_json(Method::POST, "/v1/me/mfa/totp/confirm", Some(token), &json!({"code": code(&secret, 0)})).await;
    assert_eq!(confirmed.status().as_u16(), 200);
    let codes: Value = confirmed.json().await.unwrap();
    let codes = codes["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (secret, codes)
}

/// Signs in with the password; answers the `mfa_token` the second step needs.
pub async fn first_step(app: &TestApp, username: &str) -> String {
    let problem = assert_problem(app.login(username, PASSWORD).await, 403, "mfa_required").await;
    assert_eq!(problem["mfa_methods"], json!(["totp", "recovery_code"]));
    problem["mfa_token"].as_str().unwrap().to_owned()
}

pub async fn second_step(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post("/v1/auth/mfa", body).await
}

each_backend! {
    async fn an_authenticator_app_is_enrolled_confirmed_and_then_asked_for_at_every_sign_in(backend) {
        let app = spawn_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        assert_eq!(status(&app, &token).await, json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}));
        let wrong = app.send_json(Method::POST, "/v1/me/mfa/totp", Some(&token), &json!({"current_password": "not the password"})).await;
        assert_problem(wrong, 403, "wrong_password").await;
        let started = app.send_json(Method::POST, "/v1/me/mfa/totp", Some(&token), &json!({"current_password": PASSWORD})).await;
        assert_eq!(started.headers()["cache-control"], "no-store");
        let started: Value = started.json().await.unwrap();
        let secret = started["secret"].as_str().unwrap().to_owned();
        assert!(started["otpauth_url"].as_str().unwrap().starts_with("otpauth://totp/"), "{started}");
        assert!(started["otpauth_url"].as_str().unwrap().contains(&secret));
        assert!(started["qr_svg"].as_str().unwrap().contains("<svg"));
        // Not in force until confirmed: the password alone still signs in.
        let before: Value = app.login("ada", PASSWORD).await.json().await.unwrap();
        let before = before["access_token"].as_str().unwrap().to_owned();
        let bad = app.send_json(Method::POST, "/v1/me/mfa/totp/confirm", Some(&token), &json!({"code": "12345"})).await;
        assert_problem(bad, 422, "validation_failed").await;
        let wrong_code = format!("{:06}", (code(&secret, 0).parse::<u32>().unwrap() + 1) % 1_000_000);
        let wrong = app.send_json(Method::POST, "/v1/me/mfa/totp/confirm", Some(&token), &json!({"code": wrong_code})).await;
        assert_problem(wrong, 401, "invalid_code").await;
        // Each code is computed once: one computed again might fall in the next step.
        let (confirming, next) = (code(&secret, 0), code(&secret, 1));
        let confirmed: Value = app.send_json(Method::POST, "/v1/me/mfa/totp/confirm", Some(&token), &json!({"code": confirming})).await.json().await.unwrap();
        let recovery: Vec<String> = confirmed["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        assert_eq!(recovery.len(), 10);
        assert_problem(app.get("/v1/me", Some(&before)).await, 401, "unauthenticated").await;
        assert_eq!(app.get("/v1/me", Some(&token)).await.status().as_u16(), 200, "the confirming session stays");
        assert_eq!(status(&app, &token).await, json!({"totp": true, "passkeys": 0, "recovery_codes_left": 10}));
        let again = app.send_json(Method::POST, "/v1/me/mfa/totp", Some(&token), &json!({"current_password": PASSWORD})).await;
        assert_problem(again, 409, "totp_already_enabled").await;

        // The password alone no longer signs in; the code it was confirmed with is spent.
        let mfa_token = first_step(&app, "ada").await;
        let replay = second_step(&app, &json!({"mfa_token": mfa_token, "totp_code": confirming})).await;
        assert_problem(replay, 401, "invalid_code").await;
        let both = second_step(&app, &json!({"mfa_token": mfa_token, "totp_code": "123456", "recovery_code": recovery[0]})).await;
        assert_problem(both, 422, "validation_failed").await;
        let signed_in = second_step(&app, &json!({"mfa_token": mfa_token, "totp_code": next})).await;
        assert_eq!(signed_in.status().as_u16(), 200);
        let tokens: Value = signed_in.json().await.unwrap();
        assert_eq!(amr_of(tokens["access_token"].as_str().unwrap()), json!(["pwd", "otp", "mfa"]));
        let refreshed: Value = app.post("/v1/auth/refresh", &json!({"refresh_token": tokens["refresh_token"]})).await.json().await.unwrap();
        assert_eq!(amr_of(refreshed["access_token"].as_str().unwrap()), json!(["pwd", "otp", "mfa"]), "a refresh keeps the proof");
        let used = second_step(&app, &json!({"mfa_token": mfa_token, "totp_code": next})).await;
        assert_problem(used, 401, "invalid_token").await;
        let other = first_step(&app, "ada").await;
        assert_problem(second_step(&app, &json!({"mfa_token": other, "totp_code": next})).await, 401, "invalid_code").await;

        // A recovery code signs in once, however it is typed, and the owner is told.
        let typed = recovery[0].to_lowercase().replace('-', " ");
        assert_eq!(second_step(&app, &json!({"mfa_token": other, "recovery_code": typed})).await.status().as_u16(), 200);
        let third = first_step(&app, "ada").await;
        assert_problem(second_step(&app, &json!({"mfa_token": third, "recovery_code": recovery[0]})).await, 401, "invalid_code").await;
        assert_eq!(status(&app, &token).await["recovery_codes_left"], 9);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM audit_events WHERE type = 'mfa.recovery_code_used'").await, 1);

        // New codes replace the old.
        let password_only = app.send_json(Method::POST, "/v1/me/mfa/recovery-codes", Some(&token), &json!({"current_password": PASSWORD})).await;
        assert_problem(password_only, 422, "validation_failed").await;
        let renewal = json!({"current_password": PASSWORD, "code": recovery[2]});
        let renewed: Value = app.send_json(Method::POST, "/v1/me/mfa/recovery-codes", Some(&token), &renewal).await.json().await.unwrap();
        let renewed: Vec<String> = renewed["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        assert_problem(second_step(&app, &json!({"mfa_token": third, "recovery_code": recovery[1]})).await, 401, "invalid_code").await;

        // Removing the app takes the password and a current code.
        let removal = |code: &str| json!({"current_password": PASSWORD, "code": code});
        let wrong = app.send_json(Method::DELETE, "/v1/me/mfa/totp", Some(&token), &removal(&wrong_code)).await;
        assert_problem(wrong, 401, "invalid_code").await;
        let no_password = app.send_json(Method::DELETE, "/v1/me/mfa/totp", Some(&token), &json!({"current_password": "nope", "code": renewed[0]})).await;
        assert_problem(no_password, 403, "wrong_password").await;
        let removed = app.send_json(Method::DELETE, "/v1/me/mfa/totp", Some(&token), &removal(&renewed[0])).await;
        assert_eq!(removed.status().as_u16(), 204);
        assert_eq!(status(&app, &token).await, json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}));
        let plain: Value = app.login("ada", PASSWORD).await.json().await.unwrap();
        assert_eq!(amr_of(plain["access_token"].as_str().unwrap()), json!(["pwd"]));
        for kind in ["mfa.totp_enabled", "mfa.totp_disabled", "mfa.recovery_codes_regenerated"] {
            assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM audit_events WHERE type = '{kind}'")).await, 1, "{kind}");
        }
    }

    async fn an_enrolment_left_unconfirmed_for_fifteen_minutes_must_start_again(backend) {
        let app = spawn_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let started: Value = app.send_json(Method::POST, "/v1/me/mfa/totp", Some(&token), &json!({"current_password": PASSWORD})).await.json().await.unwrap();
        let secret = started["secret"].as_str().unwrap();
        let stale = (now_secs() as i64 - 16 * 60) * 1_000_000;
        app.db.execute(&format!("UPDATE totp_factors SET created_at = {stale}")).await;
        let late = app.send_json(Method::POST, "/v1/me/mfa/totp/confirm", Some(&token), &json!({"code": code(secret, 0)})).await;
        assert_problem(late, 409, "totp_not_pending").await;
        assert_eq!(status(&app, &token).await["totp"], false);
    }

    async fn one_code_raced_by_several_sign_ins_signs_in_once(backend) {
        let app = Arc::new(spawn_app(backend).await);
        let (_, token) = app.signed_in("ada").await;
        let (secret, _) = enrol(&app, &token).await;
        let mut tokens = Vec::new();
        for _ in 0..6 {
            tokens.push(first_step(&app, "ada").await);
        }
        let next = code(&secret, 1);
        let tasks: Vec<_> = tokens
            .into_iter()
            .map(|mfa_token| {
                let (app, next) = (app.clone(), next.clone());
                tokio::spawn(async move { second_step(&app, &json!({"mfa_token": mfa_token, "totp_code": next})).await.status().as_u16() })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses.sort_unstable();
        assert_eq!(statuses, vec![200, 401, 401, 401, 401, 401], "one code, one sign-in");
    }

    async fn wrong_codes_lock_the_account_and_a_known_password_does_not_unlock_it(backend) {
        let app = spawn_app_with(backend, |config| {
            config.trusted_proxies = flag("--trusted-proxies", "127.0.0.1").trusted_proxies;
        })
        .await;
        let (_, token) = app.signed_in("ada").await;
        let (secret, _) = enrol(&app, &token).await;
        let from_attacker = |path: &str, body: Value| {
            app.client.post(app.url(path)).header("x-forwarded-for", "203.0.113.9").json(&body).send()
        };
        let wrong = format!("{:06}", (code(&secret, 1).parse::<u32>().unwrap() + 500_000) % 1_000_000);
        let mut answers = Vec::new();
        for _ in 0..3 {
            // The attacker knows the password: each time it is right, and each time the wrong
            // codes before stay counted.
            let first = from_attacker("/v1/auth/login", json!({"username": "ada", "password": PASSWORD})).await.unwrap();
            let mfa_token = assert_problem(first, 403, "mfa_required").await["mfa_token"].as_str().unwrap().to_owned();
            for _ in 0..2 {
                let answer = from_attacker("/v1/auth/mfa", json!({"mfa_token": mfa_token, "totp_code": wrong})).await.unwrap();
                answers.push(answer.status().as_u16());
            }
            // Nor does a right password confirming a change (with a stolen token) reset them.
            let confirmed = app.send_json(Method::POST, "/v1/me/mfa/totp", Some(&token), &json!({"current_password": PASSWORD})).await;
            assert!([409, 429].contains(&confirmed.status().as_u16()), "{}", confirmed.status());
        }
        assert_eq!(&answers[..5], &[401, 401, 401, 401, 401], "{answers:?}");
        assert_eq!(answers[5], 429, "the sixth wrong code is not checked: {answers:?}");
        let locked = from_attacker("/v1/auth/login", json!({"username": "ada", "password": PASSWORD})).await.unwrap();
        assert_problem(locked, 429, "too_many_attempts").await;
        assert!(app.db.count("SELECT COUNT(*) FROM audit_events WHERE type = 'login.failed' AND detail LIKE '%wrong_code%'").await >= 5);
    }

    async fn an_administrator_resets_a_lost_app_but_never_their_own(backend) {
        let app = spawn_app(backend).await;
        let (boss, boss_token) = app.signed_in("boss").await;
        app.db.execute(&format!("UPDATE users SET role = 'owner' WHERE id = '{boss}'")).await;
        let (_, token) = app.signed_in("ada").await;
        enrol(&app, &token).await;
        let (_, eve) = app.signed_in("eve").await;
        assert_problem(app.send_json(Method::DELETE, "/v1/users/ada/mfa", Some(&eve), &json!({})).await, 403, "forbidden").await;
        assert_problem(app.send_json(Method::DELETE, "/v1/users/boss/mfa", Some(&boss_token), &json!({})).await, 403, "forbidden").await;
        assert_problem(app.send_json(Method::DELETE, "/v1/users/nobody/mfa", Some(&boss_token), &json!({})).await, 404, "not_found").await;
        let pending = first_step(&app, "ada").await;
        let reset = app.send_json(Method::DELETE, "/v1/users/ada/mfa", Some(&boss_token), &json!({})).await;
        assert_eq!(reset.status().as_u16(), 204);
        assert_problem(app.get("/v1/me", Some(&token)).await, 401, "unauthenticated").await;
        let again = app.token("ada", PASSWORD).await;
        assert_eq!(status(&app, &again).await, json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}));
        assert_problem(second_step(&app, &json!({"mfa_token": pending, "totp_code": "123456"})).await, 401, "invalid_token").await;
        let audited = format!("SELECT COUNT(*) FROM audit_events WHERE type = 'mfa.reset' AND actor_id = '{boss}'");
        assert_eq!(app.db.count(&audited).await, 1);
        // No one outranks an owner: the operator resets one at the command line.
        enrol(&app, &boss_token).await;
        first_step(&app, "boss").await;
        let reset = |name: &str| {
            tessera().env("TESSERA_DATABASE_URL", &app.db.url).args(["admin", "reset-mfa", "--username", name]).output().unwrap()
        };
        let done = reset("boss");
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
        assert_eq!(app.login("boss", PASSWORD).await.status().as_u16(), 200);
        assert!(!reset("nobody").status.success());
        assert_eq!(app.db.count("SELECT COUNT(*) FROM audit_events WHERE type = 'mfa.reset' AND actor_id IS NULL").await, 1);
    }

    async fn required_second_factors_leave_a_session_that_can_only_add_one(backend) {
        let app = spawn_app_with(backend, |config| {
            config.require_mfa = tessera::domain::second_factor::MfaPolicy::Admin;
            // Every request reads its session: a promotion counts at once.
            config.session_cache_ttl = std::time::Duration::ZERO;
        })
        .await;
        let (boss, _) = app.signed_in("boss").await;
        app.db.execute(&format!("UPDATE users SET role = 'admin' WHERE id = '{boss}'")).await;
        let (_, user_token) = app.signed_in("ada").await;
        assert_eq!(app.get("/v1/me/sessions", Some(&user_token)).await.status().as_u16(), 200, "users are not covered");
        let signed_in: Value = app.login("boss", PASSWORD).await.json().await.unwrap();
        let token = signed_in["access_token"].as_str().unwrap().to_owned();
        assert!(signed_in["refresh_expires_in"].as_u64().unwrap() <= 15 * 60, "{signed_in}");
        let claims = claims_of(&token);
        assert_eq!(claims["scope"], "mfa_enrolment", "other services can tell this token apart: {claims}");
        assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 15 * 60);
        assert_eq!(app.get("/v1/me/mfa", Some(&token)).await.status().as_u16(), 200);
        assert_problem(app.get("/v1/me", Some(&token)).await, 403, "mfa_enrolment_required").await;
        assert_problem(app.get("/v1/users", Some(&token)).await, 403, "mfa_enrolment_required").await;
        assert_problem(app.get("/v1/me/sessions", Some(&token)).await, 403, "mfa_enrolment_required").await;
        let change = json!({"current_password": PASSWORD, "new_password": "another long passphrase"});
        assert_problem(app.send_json(Method::POST, "/v1/me/password", Some(&token), &change).await, 403, "mfa_enrolment_required").await;
        let (secret, _) = enrol(&app, &token).await;
        assert_problem(app.get("/v1/users", Some(&token)).await, 403, "mfa_enrolment_required").await;
        let mfa_token = first_step(&app, "boss").await;
        let full: Value = second_step(&app, &json!({"mfa_token": mfa_token, "totp_code": code(&secret, 1)})).await.json().await.unwrap();
        let full = full["access_token"].as_str().unwrap();
        assert_eq!(app.get("/v1/users", Some(full)).await.status().as_u16(), 200);
        assert!(claims_of(full)["scope"].is_null());
        let removal = json!({"current_password": PASSWORD, "code": code(&secret, 1)});
        let kept = app.send_json(Method::DELETE, "/v1/me/mfa/totp", Some(full), &removal).await;
        assert_problem(kept, 409, "mfa_required_by_policy").await;
        let logout = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(logout.status().as_u16(), 204, "an enrolment-only session can sign out");
        // The policy holds on every request: an account promoted into it keeps no full session.
        app.db.execute("UPDATE users SET role = 'admin' WHERE username = 'ada'").await;
        assert_problem(app.get("/v1/me/sessions", Some(&user_token)).await, 403, "mfa_enrolment_required").await;
        assert_eq!(app.get("/v1/me/mfa", Some(&user_token)).await.status().as_u16(), 200, "but it can add a factor");
    }
}
