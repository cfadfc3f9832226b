use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn patch_me(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.send_json(Method::PATCH, "/v1/me", Some(token), &body).await
}

async fn make_owner(app: &TestApp, id: &str) {
    app.db.execute(&format!("UPDATE users SET role = 'owner' WHERE id = '{id}'")).await;
}

each_backend! {
    async fn me_returns_the_signed_in_user(backend) {
        let app = spawn_app(backend).await;
        let (id, token) = app.signed_in("ada").await;
        let response = app.get("/v1/me", Some(&token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let me: Value = response.json().await.unwrap();
        assert_eq!(me["id"], id.as_str());
        assert_eq!(me["username"], "ada");
    }

    async fn me_patch_changes_clears_and_keeps_fields(backend) {
        let app = spawn_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let response = patch_me(&app, &token, json!({"first_name": "Ada", "phone": "+15551234567", "metadata": {"a": 1}})).await;
        assert_eq!(response.status(), StatusCode::OK);
        let response = patch_me(&app, &token, json!({"phone": null, "display_name": "Countess"})).await;
        let me: Value = response.json().await.unwrap();
        assert_eq!(me["first_name"], "Ada");
        assert_eq!(me["phone"], Value::Null);
        assert_eq!(me["display_name"], "Countess");
        assert_eq!(me["metadata"], json!({"a": 1}));
        let me: Value = patch_me(&app, &token, json!({"metadata": null})).await.json().await.unwrap();
        assert_eq!(me["metadata"], json!({}));
        let me: Value = app.get("/v1/me", Some(&token)).await.json().await.unwrap();
        assert_eq!(me["display_name"], "Countess");
    }

    async fn me_patch_of_the_email_needs_the_password_and_keeps_the_address_until_confirmed(backend) {
        let app = spawn_app(backend).await;
        let (id, token) = app.signed_in("ada").await;
        app.db.execute(&format!("UPDATE users SET email_verified_at = 1 WHERE id = '{id}'")).await;
        let body = json!({"email": "ADA@example.com", "current_password": PASSWORD});
        let me: Value = patch_me(&app, &token, body).await.json().await.unwrap();
        assert_eq!(me["email"], "ADA@example.com", "a change of case is the same address, at once");
        assert_eq!(me["email_verified"], true, "a change of case keeps the verification");
        assert_problem(patch_me(&app, &token, json!({"email": "countess@example.com"})).await, 422, "validation_failed").await;
        let body = json!({"email": "countess@example.com", "current_password": "not my password"});
        assert_problem(patch_me(&app, &token, body).await, 403, "wrong_password").await;
        let body = json!({"email": "countess@example.com", "current_password": PASSWORD});
        let me: Value = patch_me(&app, &token, body).await.json().await.unwrap();
        assert_eq!((me["email"].as_str(), me["pending_email"].as_str()), (Some("ADA@example.com"), Some("countess@example.com")));
        assert_eq!(me["email_verified"], true, "the confirmed address stays the account's");
        let by_email = app.post("/v1/auth/login", &json!({"email": "ada@example.com", "password": PASSWORD})).await;
        assert_eq!(by_email.status(), StatusCode::OK, "the confirmed address still signs in");
        let body = json!({"email": "ada@example.com", "current_password": PASSWORD});
        let me: Value = patch_me(&app, &token, body).await.json().await.unwrap();
        assert_eq!(me["pending_email"], Value::Null, "asking for the current address drops the pending change");
    }

    async fn me_patch_refuses_taken_names_bad_values_unknown_fields_and_no_identifier(backend) {
        let app = spawn_app(backend).await;
        app.register_user("grace").await;
        let (_, token) = app.signed_in("ada").await;
        assert_problem(patch_me(&app, &token, json!({"username": "GRACE"})).await, 409, "username_taken").await;
        let taken = json!({"email": "Grace@example.com", "current_password": PASSWORD});
        assert_problem(patch_me(&app, &token, taken).await, 409, "email_taken").await;
        assert_problem(patch_me(&app, &token, json!({"phone": "12"})).await, 422, "validation_failed").await;
        assert_problem(patch_me(&app, &token, json!({"role": "owner"})).await, 422, "validation_failed").await;
        let nothing_left = json!({"username": null, "email": null, "current_password": PASSWORD});
        let problem = assert_problem(patch_me(&app, &token, nothing_left).await, 422, "validation_failed").await;
        assert_eq!(field_codes(&problem), vec![("username".to_owned(), "required".to_owned())]);
        let me: Value = patch_me(&app, &token, json!({"username": null})).await.json().await.unwrap();
        assert_eq!(me["username"], Value::Null, "an e-mail alone is enough");
        let me: Value = app.get("/v1/me", Some(&token)).await.json().await.unwrap();
        assert_eq!(me["role"], "user");
    }

    async fn me_delete_needs_the_password_and_then_signs_out(backend) {
        let app = spawn_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let response = app.send_json(Method::DELETE, "/v1/me", Some(&token), &json!({"password": "wrong password!"})).await;
        assert_problem(response, 403, "wrong_password").await;
        assert_eq!(app.get("/v1/me", Some(&token)).await.status(), StatusCode::OK, "the session stays valid");
        let response = app.send_json(Method::DELETE, "/v1/me", Some(&token), &json!({"password": PASSWORD})).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_problem(app.get("/v1/me", Some(&token)).await, 401, "unauthenticated").await;
        assert_problem(app.login("ada", PASSWORD).await, 401, "invalid_credentials").await;
        // The name is free again.
        app.register_user("ada").await;
    }

    async fn me_delete_refuses_the_last_owner(backend) {
        let app = spawn_app(backend).await;
        let (ada, ada_token) = app.signed_in("ada").await;
        make_owner(&app, &ada).await;
        let response = app.send_json(Method::DELETE, "/v1/me", Some(&ada_token), &json!({"password": PASSWORD})).await;
        assert_problem(response, 409, "last_owner").await;
        let (grace, _) = app.signed_in("grace").await;
        make_owner(&app, &grace).await;
        let response = app.send_json(Method::DELETE, "/v1/me", Some(&ada_token), &json!({"password": PASSWORD})).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    async fn change_password_checks_the_current_one_and_the_policy(backend) {
        let app = spawn_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let wrong = json!({"current_password": "not it at all", "new_password": "a brand new secret"});
        assert_problem(app.send_json(Method::POST, "/v1/me/password", Some(&token), &wrong).await, 403, "wrong_password").await;
        let weak = json!({"current_password": PASSWORD, "new_password": "password"});
        let problem = assert_problem(app.send_json(Method::POST, "/v1/me/password", Some(&token), &weak).await, 422, "validation_failed").await;
        assert_eq!(field_codes(&problem), vec![("new_password".to_owned(), "too_common".to_owned())]);
        assert_eq!(app.login("ada", PASSWORD).await.status(), StatusCode::OK, "nothing changed");
    }

    async fn change_password_revokes_every_other_session(backend) {
        let app = spawn_app(backend).await;
        let (_, here) = app.signed_in("ada").await;
        let elsewhere = app.token("ada", PASSWORD).await;
        let body = json!({"current_password": PASSWORD, "new_password": "a brand new secret"});
        let response = app.send_json(Method::POST, "/v1/me/password", Some(&here), &body).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.get("/v1/me", Some(&here)).await.status(), StatusCode::OK);
        assert_problem(app.get("/v1/me", Some(&elsewhere)).await, 401, "unauthenticated").await;
        assert_problem(app.login("ada", PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(app.login("ada", "a brand new secret").await.status(), StatusCode::OK);
    }
}
