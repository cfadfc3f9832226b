//! Sign-in lockout: parallel guesses check at most the threshold's worth of passwords, unknown
//! names are locked like accounts, the owner's known device still signs in, re-authentication
//! counts, and an administrator or a password reset lifts a lock.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mail::{NEW_PASSWORD, app_with_mail, email, forgot, reset};
use crate::smtp::MailCatcher;

/// An app that believes 127.0.0.1's X-Forwarded-For, so tests can speak from several networks.
async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |config| {
        config.trusted_proxies = flag("--trusted-proxies", "127.0.0.1").trusted_proxies;
    })
    .await
}

async fn login_from(app: &TestApp, client: &str, username: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", client)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

/// An answer as a client sees it, with what must differ between any two answers removed.
async fn observed(response: reqwest::Response) -> (u16, Vec<String>, Option<String>, Value) {
    let status = response.status().as_u16();
    let mut names: Vec<String> =
        response.headers().keys().map(ToString::to_string).filter(|n| n != "x-request-id" && n != "date").collect();
    names.sort();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let mut body: Value = response.json().await.unwrap();
    body["request_id"] = Value::Null;
    (status, names, retry_after, body)
}

async fn count_events(app: &TestApp, kind: &str, detail: &str) -> i64 {
    app.db.count(&format!("SELECT COUNT(*) FROM audit_events WHERE type = '{kind}' AND detail LIKE '%{detail}%'")).await
}

each_backend! {
    async fn fifty_parallel_wrong_guesses_check_at_most_five_passwords(backend) {
        let app = Arc::new(app(backend).await);
        app.register_user("ada").await;
        let guesses = (0..50).map(|n| {
            let app = app.clone();
            tokio::spawn(async move { login_from(&app, "203.0.113.5", "ada", &format!("guess number {n}")).await.status() })
        });
        let mut statuses = Vec::new();
        for guess in guesses.collect::<Vec<_>>() {
            statuses.push(guess.await.unwrap().as_u16());
        }
        let checked = statuses.iter().filter(|s| **s == 401).count();
        let refused = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!((checked, refused), (5, 45), "{statuses:?}");
        assert_eq!(count_events(&app, "login.failed", "wrong_password").await, 5);
        assert_eq!(count_events(&app, "login.locked", "locked_seconds\":60").await, 1);
        let locked = login_from(&app, "203.0.113.5", "ada", PASSWORD).await;
        assert_problem(locked, 429, "too_many_attempts").await;
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        assert!(metrics.contains("tessera_throttled_total{reason=\"too_many_attempts\"} 46"), "{metrics}");
    }

    async fn an_unknown_name_answers_exactly_as_an_account_does(backend) {
        let app = app(backend).await;
        app.register_user("ada").await;
        for attempt in 0..7 {
            let known = observed(login_from(&app, "203.0.113.1", "ada", "wrong password here").await).await;
            let unknown = observed(login_from(&app, "203.0.113.1", "nobody", "wrong password here").await).await;
            assert_eq!(known, unknown, "attempt {attempt}");
            assert_eq!(known.0, if attempt < 5 { 401 } else { 429 }, "attempt {attempt}");
        }
    }

    async fn the_owner_still_signs_in_from_a_device_that_signed_in_before(backend) {
        let app = app(backend).await;
        app.register_user("ada").await;
        assert_eq!(login_from(&app, "198.51.100.1", "ada", PASSWORD).await.status(), StatusCode::OK, "home");
        for _ in 0..5 {
            assert_eq!(login_from(&app, "203.0.113.66", "ada", "attacker guess").await.status(), 401);
        }
        assert_eq!(login_from(&app, "203.0.113.66", "ada", PASSWORD).await.status(), 429, "the attacker is locked out");
        assert_eq!(login_from(&app, "192.0.2.10", "ada", PASSWORD).await.status(), 429, "so is a new device");
        assert_eq!(login_from(&app, "198.51.100.1", "ada", PASSWORD).await.status(), 200, "home is not");
    }

    async fn wrong_passwords_confirming_a_change_count_toward_the_lockout(backend) {
        let app = app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let change = json!({"current_password": "not my password", "new_password": NEW_PASSWORD});
        for _ in 0..5 {
            let answer = app.send_json(Method::POST, "/v1/me/password", Some(&token), &change).await;
            assert_problem(answer, 403, "wrong_password").await;
        }
        let right = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
        let locked = app.send_json(Method::POST, "/v1/me/password", Some(&token), &right).await;
        let retry_after: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((55..=60).contains(&retry_after), "{retry_after}");
        assert_problem(locked, 429, "too_many_attempts").await;
        let delete = app.send_json(Method::DELETE, "/v1/me", Some(&token), &json!({"password": PASSWORD})).await;
        assert_problem(delete, 429, "too_many_attempts").await;
    }

    async fn an_administrator_clears_a_lock_and_it_is_audited(backend) {
        let app = app(backend).await;
        let (boss, boss_token) = app.signed_in("boss").await;
        app.db.execute(&format!("UPDATE users SET role = 'owner' WHERE id = '{boss}'")).await;
        app.register_user("ada").await;
        for _ in 0..5 {
            login_from(&app, "203.0.113.9", "ada", "wrong guess").await;
        }
        assert_eq!(login_from(&app, "203.0.113.9", "ada", PASSWORD).await.status(), 429);
        let (_, user_token) = app.signed_in("eve").await;
        let forbidden = app.send_json(Method::DELETE, "/v1/users/ada/lockout", Some(&user_token), &json!({})).await;
        assert_problem(forbidden, 403, "forbidden").await;
        let cleared = app.send_json(Method::DELETE, "/v1/users/ada/lockout", Some(&boss_token), &json!({})).await;
        assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
        assert_eq!(login_from(&app, "203.0.113.9", "ada", PASSWORD).await.status(), 200);
        assert_eq!(count_events(&app, "login.unlocked", "\"locked\":true").await, 1);
        let own = app.send_json(Method::DELETE, "/v1/users/boss/lockout", Some(&boss_token), &json!({})).await;
        assert_problem(own, 403, "forbidden").await;
        let missing = app.send_json(Method::DELETE, "/v1/users/nobody/lockout", Some(&boss_token), &json!({})).await;
        assert_problem(missing, 404, "not_found").await;
    }

    async fn a_lock_never_blocks_a_password_reset_and_the_reset_lifts_it(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |config| {
            config.trusted_proxies = flag("--trusted-proxies", "127.0.0.1").trusted_proxies;
        })
        .await;
        app.register_user("ken").await;
        for _ in 0..5 {
            login_from(&app, "203.0.113.4", "ken", "wrong guess").await;
        }
        assert_eq!(login_from(&app, "203.0.113.4", "ken", PASSWORD).await.status(), 429);
        assert_eq!(forgot(&app, &json!({"username": "ken"})).await.status(), 202);
        let token = catcher.nth_to(&email("ken"), 2).await.token("reset-password");
        assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(login_from(&app, "203.0.113.4", "ken", NEW_PASSWORD).await.status(), 200);
    }

    async fn lockout_can_be_turned_off(backend) {
        let app = spawn_app_with(backend, |config| config.lockout_threshold = 0).await;
        app.register_user("ada").await;
        for _ in 0..8 {
            assert_eq!(app.login("ada", "wrong guess").await.status(), 401);
        }
        assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
    }
}
