use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

each_backend! {
    async fn login_by_username_returns_a_token_response(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let response = app.login("Ada", PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        assert_eq!(body["refresh_expires_in"], 2_592_000);
        assert_eq!(body["refresh_token"].as_str().unwrap().len(), 43);
        assert_eq!(body["user"]["username"], "ada");
        assert!(body["user"]["last_login_at"].is_string());
        assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    }

    async fn login_by_email_ignores_case_and_surrounding_space(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let response = app.post("/v1/auth/login", &json!({"email": " ADA@example.com", "password": PASSWORD})).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    async fn login_access_token_carries_the_documented_claims(backend) {
        use base64::Engine as _;
        let app = spawn_app(backend).await;
        let (id, token) = app.signed_in("ada").await;
        let parts: Vec<&str> = token.split('.').collect();
        let decode = |part: &str| -> Value {
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "EdDSA");
        assert!(header["kid"].is_string());
        let claims = decode(parts[1]);
        assert_eq!(claims["sub"], id.as_str());
        assert_eq!(claims["iss"], PUBLIC_URL);
        assert_eq!(claims["aud"], "tessera");
        assert_eq!(claims["role"], "user");
        for claim in ["sid", "jti"] {
            assert!(claims[claim].is_string(), "{claim}");
        }
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    }

    async fn login_gives_the_same_answer_for_an_unknown_user_and_a_wrong_password(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let wrong = assert_problem(app.login("ada", "not the password").await, 401, "invalid_credentials").await;
        let unknown = assert_problem(app.login("nobody", PASSWORD).await, 401, "invalid_credentials").await;
        let strip = |mut v: Value| {
            v.as_object_mut().unwrap().remove("request_id");
            v
        };
        assert_eq!(strip(wrong), strip(unknown));
    }

    async fn login_requires_exactly_one_of_username_and_email(backend) {
        let app = spawn_app(backend).await;
        let both = json!({"username": "ada", "email": "ada@example.com", "password": PASSWORD});
        assert_problem(app.post("/v1/auth/login", &both).await, 422, "validation_failed").await;
        let neither = json!({"password": PASSWORD});
        assert_problem(app.post("/v1/auth/login", &neither).await, 422, "validation_failed").await;
    }

    async fn login_by_a_disabled_account_is_refused_only_after_a_correct_password(backend) {
        let app = spawn_app(backend).await;
        let user = app.register_user("ada").await;
        app.db.execute(&format!("UPDATE users SET status = 'disabled' WHERE id = '{}'", user["id"].as_str().unwrap())).await;
        assert_problem(app.login("ada", "not the password").await, 401, "invalid_credentials").await;
        assert_problem(app.login("ada", PASSWORD).await, 403, "account_disabled").await;
    }

    async fn login_upgrades_a_hash_made_with_older_parameters(backend) {
        use argon2::password_hash::{PasswordHasher as _, SaltString};
        let app = spawn_app(backend).await;
        let user = app.register_user("ada").await;
        let id = user["id"].as_str().unwrap();
        let params = argon2::Params::new(4096, 1, 1, None).unwrap();
        let weak = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(PASSWORD.as_bytes(), &SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap())
            .unwrap()
            .to_string();
        app.db.execute(&format!("UPDATE users SET password_hash = '{weak}' WHERE id = '{id}'")).await;
        assert_eq!(app.login("ada", PASSWORD).await.status(), StatusCode::OK);
        let stored = app.db.fetch_string(&format!("SELECT password_hash FROM users WHERE id = '{id}'")).await;
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert_eq!(app.login("ada", PASSWORD).await.status(), StatusCode::OK);
    }
}
