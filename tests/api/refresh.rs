//! Refresh rotation, the grace for racing tabs, reuse detection and sliding sessions.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/v1/auth/refresh", &json!({"refresh_token": token})).await
}

async fn login(app: &TestApp) -> Value {
    app.login("ada", PASSWORD).await.json().await.unwrap()
}

fn field<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name].as_str().unwrap()
}

each_backend! {
    async fn each_refresh_returns_a_new_refresh_token_and_a_working_access_token(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let first = login(&app).await;
        let second: Value = refresh(&app, field(&first, "refresh_token")).await.json().await.unwrap();
        assert_ne!(second["refresh_token"], first["refresh_token"]);
        assert_ne!(second["access_token"], first["access_token"]);
        assert_eq!(second["token_type"], "Bearer");
        assert_eq!(second["user"]["username"], "ada");
        assert_eq!(app.get("/v1/me", Some(field(&second, "access_token"))).await.status(), StatusCode::OK);
        let third = refresh(&app, field(&second, "refresh_token")).await;
        assert_eq!(third.status(), StatusCode::OK);
    }

    async fn concurrent_refreshes_of_one_token_within_the_grace_get_the_identical_pair(backend) {
        let app = Arc::new(spawn_app(backend).await);
        app.register_user("ada").await;
        let token = field(&login(&app).await, "refresh_token").to_owned();
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let (app, token) = (app.clone(), token.clone());
                tokio::spawn(async move {
                    let response = refresh(&app, &token).await;
                    assert_eq!(response.status(), StatusCode::OK);
                    response.json::<Value>().await.unwrap()
                })
            })
            .collect();
        let mut pairs = Vec::new();
        for racer in racers {
            let body = racer.await.unwrap();
            pairs.push((body["access_token"].clone(), body["refresh_token"].clone(), body["refresh_expires_in"].clone()));
        }
        assert!(pairs.windows(2).all(|w| w[0] == w[1]), "{pairs:#?}");
        // The one successor works, and only one session exists.
        let successor = pairs[0].1.as_str().unwrap();
        assert_eq!(refresh(&app, successor).await.status(), StatusCode::OK);
        let access = pairs[0].0.as_str().unwrap();
        let sessions: Value = app.get("/v1/me/sessions", Some(access)).await.json().await.unwrap();
        assert_eq!(sessions["items"].as_array().unwrap().len(), 1);
    }

    async fn without_a_grace_reusing_a_rotated_token_revokes_the_whole_session(backend) {
        let app = spawn_app_with(backend, |config| config.refresh_reuse_grace = Duration::ZERO).await;
        app.register_user("ada").await;
        let first = login(&app).await;
        let stolen = field(&first, "refresh_token");
        let rotated: Value = refresh(&app, stolen).await.json().await.unwrap();
        assert_problem(refresh(&app, stolen).await, 401, "refresh_token_reused").await;
        assert_problem(app.get("/v1/me", Some(field(&rotated, "access_token"))).await, 401, "unauthenticated").await;
        assert_problem(app.get("/v1/me", Some(field(&first, "access_token"))).await, 401, "unauthenticated").await;
        assert_problem(refresh(&app, field(&rotated, "refresh_token")).await, 401, "invalid_token").await;
    }

    async fn after_the_grace_reusing_a_rotated_token_revokes_the_whole_session(backend) {
        let app = spawn_app_with(backend, |config| config.refresh_reuse_grace = Duration::from_secs(1)).await;
        app.register_user("ada").await;
        let stolen = field(&login(&app).await, "refresh_token").to_owned();
        let rotated: Value = refresh(&app, &stolen).await.json().await.unwrap();
        let again: Value = refresh(&app, &stolen).await.json().await.unwrap();
        assert_eq!(again["refresh_token"], rotated["refresh_token"], "inside the grace: the same pair");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_problem(refresh(&app, &stolen).await, 401, "refresh_token_reused").await;
        assert_problem(app.get("/v1/me", Some(field(&rotated, "access_token"))).await, 401, "unauthenticated").await;
        assert_problem(refresh(&app, field(&rotated, "refresh_token")).await, 401, "invalid_token").await;
    }

    async fn unknown_tokens_and_access_tokens_are_not_refresh_tokens(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let body = login(&app).await;
        assert_problem(refresh(&app, "nonsense").await, 401, "invalid_token").await;
        assert_problem(refresh(&app, field(&body, "access_token")).await, 401, "invalid_token").await;
        let unknown_field = app.post("/v1/auth/refresh", &json!({"refresh_token": "x", "user_id": "y"})).await;
        assert_problem(unknown_field, 422, "validation_failed").await;
    }

    async fn refresh_by_a_disabled_or_deleted_user_fails(backend) {
        let app = spawn_app(backend).await;
        let user = app.register_user("ada").await;
        let first = login(&app).await;
        let second = login(&app).await;
        let id = user["id"].as_str().unwrap();
        app.db.execute(&format!("UPDATE users SET status = 'disabled' WHERE id = '{id}'")).await;
        assert_problem(refresh(&app, field(&first, "refresh_token")).await, 403, "account_disabled").await;
        app.db.execute(&format!("UPDATE users SET status = 'active' WHERE id = '{id}'")).await;
        let response = app.send_json(reqwest::Method::DELETE, "/v1/me", Some(field(&second, "access_token")), &json!({"password": PASSWORD})).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_problem(refresh(&app, field(&first, "refresh_token")).await, 401, "invalid_token").await;
    }

    async fn sessions_slide_on_refresh_but_never_past_their_maximum_age(backend) {
        let app = spawn_app_with(backend, |config| {
            config.access_token_ttl = Duration::from_secs(30);
            config.refresh_token_ttl = Duration::from_secs(60);
            config.session_max_age = Duration::from_secs(60);
        })
        .await;
        app.register_user("ada").await;
        let first = login(&app).await;
        assert_eq!(first["refresh_expires_in"], 60);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let refreshed: Value = refresh(&app, field(&first, "refresh_token")).await.json().await.unwrap();
        let left = refreshed["refresh_expires_in"].as_u64().unwrap();
        assert!(left < 60, "capped by the maximum age, not extended to a full 60 s: {left}");
    }

    async fn a_password_change_kills_the_refresh_tokens_of_other_sessions(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let here = login(&app).await;
        let there = login(&app).await;
        let body = json!({"current_password": PASSWORD, "new_password": "a brand new secret"});
        let response = app.send_json(reqwest::Method::POST, "/v1/me/password", Some(field(&here, "access_token")), &body).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_problem(refresh(&app, field(&there, "refresh_token")).await, 401, "invalid_token").await;
        assert_eq!(refresh(&app, field(&here, "refresh_token")).await.status(), StatusCode::OK);
    }

    async fn many_sessions_refreshing_at_once_each_rotate_once_and_signed_out_ones_fail(backend) {
        // On SQLite the rotations arriving together are written as one batch: every live
        // chain must still move on by exactly one token, and a signed-out session must not.
        let app = Arc::new(spawn_app(backend).await);
        app.register_user("ada").await;
        let mut bodies = Vec::new();
        for _ in 0..24 {
            bodies.push(login(&app).await);
        }
        for body in bodies.iter().skip(16) {
            let response = app.send_json(reqwest::Method::POST, "/v1/auth/logout", Some(field(body, "access_token")), &json!({})).await;
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
        }
        let mut tokens: Vec<String> = bodies.iter().map(|b| field(b, "refresh_token").to_owned()).collect();
        for _round in 0..3 {
            let racers: Vec<_> = tokens
                .iter()
                .map(|token| {
                    let (app, token) = (app.clone(), token.clone());
                    tokio::spawn(async move {
                        let response = refresh(&app, &token).await;
                        (response.status(), response.json::<Value>().await.unwrap())
                    })
                })
                .collect();
            let mut next = Vec::new();
            for (n, racer) in racers.into_iter().enumerate() {
                let (status, body) = racer.await.unwrap();
                if n < 16 {
                    assert_eq!(status, StatusCode::OK, "{body}");
                    assert_eq!(app.get("/v1/me", Some(field(&body, "access_token"))).await.status(), StatusCode::OK);
                    next.push(field(&body, "refresh_token").to_owned());
                } else {
                    assert_eq!((status.as_u16(), body["code"].as_str()), (401, Some("invalid_token")));
                    next.push(tokens[n].clone());
                }
            }
            tokens = next;
        }
        // The live sessions are exactly the sixteen, each with one unrotated token.
        let live = app.db.count("SELECT COUNT(*) FROM refresh_tokens WHERE rotated_at IS NULL AND session_id IN \
            (SELECT id FROM sessions WHERE revoked_at IS NULL)").await;
        assert_eq!(live, 16);
    }
}
