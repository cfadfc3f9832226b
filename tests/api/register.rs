use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Registers `body` and asserts a 422 naming `field` with `code`.
async fn refused(app: &TestApp, body: Value, field: &str, code: &str) {
    let problem = assert_problem(app.register(&body).await, 422, "validation_failed").await;
    let codes = field_codes(&problem);
    assert!(codes.contains(&(field.to_owned(), code.to_owned())), "{body} gave {codes:?}, wanted {field}/{code}");
}

each_backend! {
    async fn register_returns_201_with_the_user_and_never_the_password(backend) {
        let app = spawn_app(backend).await;
        let body = json!({"username": "ada", "email": " Ada@Example.com ", "password": PASSWORD,
            "phone": "+15551234567", "first_name": "Ada", "last_name": "Lovelace", "display_name": "Ada L.",
            "metadata": {"theme": "dark"}});
        let response = app.register(&body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let text = response.text().await.unwrap();
        assert!(!text.contains(PASSWORD) && !text.contains("argon2"), "{text}");
        let user: Value = serde_json::from_str::<Value>(&text).unwrap()["user"].clone();
        assert_eq!(user["username"], "ada");
        assert_eq!(user["email"], "Ada@Example.com");
        assert_eq!(user["email_verified"], false);
        assert_eq!(user["role"], "user");
        assert_eq!(user["status"], "active");
        assert_eq!(user["metadata"], json!({"theme": "dark"}));
        assert_eq!(user["last_login_at"], Value::Null);
        assert_eq!(user["id"].as_str().unwrap().len(), 36);
        assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    }

    async fn register_accepts_an_email_alone_or_a_username_alone(backend) {
        let app = spawn_app(backend).await;
        let response = app.register(&json!({"email": "grace@example.com", "password": PASSWORD})).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let response = app.register(&json!({"username": "grace", "password": PASSWORD})).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    async fn register_returns_409_when_the_username_differs_only_in_case(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let response = app.register(&json!({"username": "ADA", "password": PASSWORD})).await;
        assert_problem(response, 409, "username_taken").await;
    }

    async fn register_returns_409_when_the_email_differs_only_in_case(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let response = app.register(&json!({"username": "other", "email": "ADA@EXAMPLE.COM", "password": PASSWORD})).await;
        assert_problem(response, 409, "email_taken").await;
    }

    async fn register_enforces_every_username_rule(backend) {
        let app = spawn_app(backend).await;
        for (username, code) in [
            ("ab", "too_short"),
            ("a".repeat(33).as_str(), "too_long"),
            ("ada lovelace", "invalid_characters"),
            ("_ada", "invalid_start"),
            ("0193a1b2c3d4e5f60718293a4b5c6d7e", "uuid_shaped"),
        ] {
            refused(&app, json!({"username": username, "password": PASSWORD}), "username", code).await;
        }
    }

    async fn register_enforces_every_other_field_rule(backend) {
        let app = spawn_app(backend).await;
        refused(&app, json!({"email": "not-an-address", "password": PASSWORD}), "email", "invalid_email").await;
        refused(&app, json!({"username": "ada", "phone": "555-1234", "password": PASSWORD}), "phone", "invalid_phone").await;
        refused(&app, json!({"username": "ada", "first_name": "x".repeat(101), "password": PASSWORD}), "first_name", "too_long").await;
        refused(&app, json!({"username": "ada", "last_name": " ", "password": PASSWORD}), "last_name", "blank").await;
        refused(&app, json!({"username": "ada", "display_name": "a\u{0}b", "password": PASSWORD}), "display_name", "invalid_characters").await;
        refused(&app, json!({"username": "ada", "metadata": [1], "password": PASSWORD}), "metadata", "not_an_object").await;
        refused(&app, json!({"username": "ada", "metadata": {"k": "x".repeat(16 * 1024)}, "password": PASSWORD}), "metadata", "too_large").await;
        refused(&app, json!({"password": PASSWORD}), "username", "required").await;
    }

    async fn register_enforces_the_password_policy(backend) {
        let app = spawn_app(backend).await;
        refused(&app, json!({"username": "ada", "password": "short"}), "password", "too_short").await;
        refused(&app, json!({"username": "ada", "password": "é".repeat(129)}), "password", "too_long").await;
        refused(&app, json!({"username": "ada", "password": "password1"}), "password", "too_common").await;
        refused(&app, json!({"username": "ada", "password": "Qwertyuiop"}), "password", "too_common").await;
        refused(&app, json!({"username": "ada.lovelace", "password": "ADA.LOVELACE"}), "password", "matches_identifier").await;
        refused(&app, json!({"email": "ada@example.com", "password": "ada@example.com"}), "password", "matches_identifier").await;
        refused(&app, json!({"username": "ada"}), "password", "required").await;
        // Eight characters counted as Unicode, not bytes, pass.
        let response = app.register(&json!({"username": "ada", "password": "ééééééé1"})).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    async fn register_reports_every_refused_field_at_once(backend) {
        let app = spawn_app(backend).await;
        let response = app.register(&json!({"username": "a", "email": "nope", "password": "short"})).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        let fields: Vec<String> = field_codes(&problem).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["password", "username", "email"]);
    }

    async fn register_rejects_unknown_fields_so_nobody_can_choose_a_role(backend) {
        let app = spawn_app(backend).await;
        for field in ["role", "status", "email_verified", "is_admin"] {
            let mut body = json!({"username": "ada", "password": PASSWORD});
            body[field] = json!("owner");
            refused(&app, body, field, "unknown_field").await;
        }
    }

    async fn register_rejects_mistyped_fields_by_name(backend) {
        let app = spawn_app(backend).await;
        refused(&app, json!({"username": 42, "password": PASSWORD}), "username", "invalid_type").await;
    }
}
