//! Bytes an attacker picks: control characters, invisible characters and Unicode that changes
//! length or shape when normalised. Each is refused with 400 or 422, never a 500.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn owner_token(app: &TestApp) -> String {
    let (id, _) = app.signed_in("olga").await;
    app.db.execute(&format!("UPDATE users SET role = 'owner' WHERE id = '{id}'")).await;
    app.token("olga", PASSWORD).await
}

each_backend! {
    async fn nul_and_control_characters_are_refused_wherever_a_name_or_filter_goes(backend) {
        let app = spawn_app(backend).await;
        let owner = owner_token(&app).await;
        for body in [json!({"username": "ol\u{0}ga", "password": PASSWORD}), json!({"email": "olga\u{0}@example.com", "password": PASSWORD})] {
            let problem = assert_problem(app.post("/v1/auth/login", &body).await, 422, "validation_failed").await;
            assert_eq!(problem["errors"][0]["code"], "invalid_characters", "{problem}");
        }
        assert_problem(app.post("/v1/auth/password/forgot", &json!({"username": "ol\u{1b}ga"})).await, 422, "validation_failed").await;
        for path in ["/v1/users?q=%00", "/v1/users?q=a%0Ab", "/v1/audit-events?type=login%00failed", "/v1/users/ol%00ga", "/v1/users/olga%00/sessions"] {
            assert_problem(app.get(path, Some(&owner)).await, 400, "malformed_request").await;
        }
        assert_problem(app.get("/v1/users/%00", None).await, 400, "malformed_request").await;
        assert_eq!(app.get("/v1/users/olga", Some(&owner)).await.status(), StatusCode::OK, "a clean name still works");
    }

    async fn names_refuse_direction_overrides_and_zero_width_characters(backend) {
        let app = spawn_app(backend).await;
        for (field, value) in [("first_name", "Ada\u{202E}ecalvoL"), ("display_name", "A\u{200B}da"), ("last_name", "Love\u{2066}lace")] {
            let body = json!({"username": "ada", "password": PASSWORD, field: value});
            let problem = assert_problem(app.register(&body).await, 422, "validation_failed").await;
            assert_eq!(field_codes(&problem), vec![(field.to_owned(), "invalid_characters".to_owned())]);
        }
        let hidden = json!({"email": "ada\u{200B}@example.com", "password": PASSWORD});
        assert_problem(app.register(&hidden).await, 422, "validation_failed").await;
    }

    async fn addresses_are_composed_and_folded_so_one_mailbox_is_one_account(backend) {
        let app = spawn_app(backend).await;
        let decomposed = json!({"email": "A\u{30A}sa@Example.com", "password": PASSWORD});
        let response = app.register(&decomposed).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let user = response.json::<serde_json::Value>().await.unwrap()["user"].clone();
        assert_eq!(user["email"], "\u{C5}sa@Example.com", "stored composed, as typed otherwise");
        for taken in ["\u{C5}SA@example.com", "\u{E5}sa@EXAMPLE.COM"] {
            assert_problem(app.register(&json!({"email": taken, "password": PASSWORD})).await, 409, "email_taken").await;
        }
        let login = app.post("/v1/auth/login", &json!({"email": "a\u{30A}SA@example.com", "password": PASSWORD})).await;
        assert_eq!(login.status(), StatusCode::OK);
        assert_eq!(app.register(&json!({"email": "strasse@example.de", "password": PASSWORD})).await.status(), StatusCode::CREATED);
        assert_problem(app.register(&json!({"email": "STRAßE@example.de", "password": PASSWORD})).await, 409, "email_taken").await;
        // Folding joins `ß` and `ss`, which may still be two mailboxes: moving between them
        // is a change to confirm; another ASCII case is the same mailbox, taken at once.
        let token = app.token_by_email("strasse@example.de").await;
        let folded = json!({"email": "straße@example.de", "current_password": PASSWORD});
        let me: Value = app.send_json(reqwest::Method::PATCH, "/v1/me", Some(&token), &folded).await.json().await.unwrap();
        assert_eq!((me["email"].as_str(), me["pending_email"].as_str()), (Some("strasse@example.de"), Some("straße@example.de")));
        let cased = json!({"email": "Strasse@Example.de", "current_password": PASSWORD});
        let me: Value = app.send_json(reqwest::Method::PATCH, "/v1/me", Some(&token), &cased).await.json().await.unwrap();
        assert_eq!((me["email"].as_str(), me["pending_email"].as_str()), (Some("Strasse@Example.de"), None));
    }

    async fn an_address_that_grows_when_folded_is_refused_not_a_500(backend) {
        let app = spawn_app(backend).await;
        // 247 characters; lower-cased or folded, each İ becomes two: 487.
        let long = format!("{}@{}com", "İ".repeat(60), format!("{}.", "İ".repeat(60)).repeat(3));
        let problem = assert_problem(app.register(&json!({"email": long, "password": PASSWORD})).await, 422, "validation_failed").await;
        assert_eq!(field_codes(&problem), vec![("email".to_owned(), "too_long".to_owned())]);
        let short = format!("{}@example.com", "İ".repeat(20));
        assert_eq!(app.register(&json!({"email": short, "password": PASSWORD})).await.status(), StatusCode::CREATED);
    }

    async fn addresses_keyed_before_folding_are_rekeyed(backend) {
        use tessera::storage::{Store, users};
        let app = spawn_app(backend).await;
        assert_eq!(app.register(&json!({"email": "straße@example.de", "password": PASSWORD})).await.status(), StatusCode::CREATED);
        // As a row written before addresses were folded: keyed by its lower case.
        app.db.execute("UPDATE users SET email_lower = 'straße@example.de', sort_name = 'straße@example.de'").await;
        let credentials = json!({"email": "STRASSE@example.de", "password": PASSWORD});
        let login = || app.post("/v1/auth/login", &credentials);
        assert_problem(login().await, 401, "invalid_credentials").await;
        let store = Store::connect(&app.db.url, 1).await.unwrap();
        let rekey = || store.write(async |conn| users::rekey_emails(conn).await);
        assert_eq!(rekey().await.unwrap(), 1);
        assert_eq!(login().await.status(), StatusCode::OK);
        assert_eq!(rekey().await.unwrap(), 0, "once is enough");
        store.close().await;
    }
}
