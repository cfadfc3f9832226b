//! Every failure is problem+json with the documented status and code.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

each_backend! {
    async fn unknown_routes_are_404_problems(backend) {
        let app = spawn_app(backend).await;
        assert_problem(app.get("/v1/nothing-here", None).await, 404, "not_found").await;
    }

    async fn wrong_methods_are_405_problems_with_allow(backend) {
        let app = spawn_app(backend).await;
        let response = app.client.put(app.url("/v1/auth/login")).send().await.unwrap();
        let allow = response.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(allow.as_deref(), Some("POST"));
        assert_problem(response, 405, "method_not_allowed").await;
    }

    async fn bodies_without_a_json_content_type_are_415(backend) {
        let app = spawn_app(backend).await;
        let response = app.client.post(app.url("/v1/auth/register")).body(r#"{"username":"ada"}"#).send().await.unwrap();
        assert_problem(response, 415, "unsupported_media_type").await;
    }

    async fn malformed_json_is_400(backend) {
        let app = spawn_app(backend).await;
        let response = app
            .client
            .post(app.url("/v1/auth/register"))
            .header("content-type", "application/json")
            .body(r#"{"username": "ada","#)
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "malformed_request").await;
    }

    async fn bodies_over_64_kib_are_413(backend) {
        let app = spawn_app(backend).await;
        let body = json!({"username": "ada", "password": PASSWORD, "display_name": "x".repeat(70 * 1024)});
        assert_problem(app.register(&body).await, 413, "payload_too_large").await;
    }

    async fn missing_and_bad_bearer_tokens_are_401_with_www_authenticate(backend) {
        let app = spawn_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        for bearer in [None, Some("garbage"), Some("a.b.c"), Some(tampered.as_str())] {
            let response = app.get("/v1/me", bearer).await;
            let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(challenge.as_deref(), Some("Bearer error=\"invalid_token\""));
            assert_problem(response, 401, "unauthenticated").await;
        }
        let basic = app.client.get(app.url("/v1/me")).header("authorization", format!("Basic {token}")).send().await.unwrap();
        assert_problem(basic, 401, "unauthenticated").await;
    }

    async fn server_errors_never_show_internals(backend) {
        let app = spawn_app(backend).await;
        let (id, token) = app.signed_in("ada").await;
        app.db.execute(&format!("UPDATE users SET role = 'emperor' WHERE id = '{id}'")).await;
        let response = app.get("/v1/me", Some(&token)).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = response.text().await.unwrap();
        assert!(text.contains("\"code\":\"internal\""), "{text}");
        for secret in ["emperor", "corrupt", "users", "SELECT", "sqlx", ".rs"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    async fn a_database_outage_is_503_with_retry_after_and_heals_without_a_restart(backend) {
        if backend == Backend::Sqlite {
            return; // An embedded database has no connection to lose.
        }
        let db = TestDb::create(backend).await;
        let proxy = Proxy::start(&db.url).await;
        let url = proxy.url.clone();
        let app = spawn_on(db, |config| config.database_url = SecretUrl::new(&url)).await;
        let (_, token) = app.signed_in("ada").await;
        assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK);
        proxy.cut();
        for path in ["/readyz", "/v1/me"] {
            let response = app.get(path, Some(&token)).await;
            assert!(response.headers().contains_key("retry-after"), "{path}");
            assert_problem(response, 503, "unavailable").await;
        }
        assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK, "the process lives on");
        // Under load, reads and writes alike: every answer is 503 with Retry-After, none a 500.
        let (app, token) = (&app, &token);
        let load = (0..24).map(|i| async move {
            let response = match i % 3 {
                0 => app.get("/v1/me", Some(token)).await,
                1 => app.login("ada", PASSWORD).await,
                _ => app.register(&json!({"username": format!("newcomer{i}"), "password": PASSWORD})).await,
            };
            (response.status().as_u16(), response.headers().contains_key("retry-after"))
        });
        let answers = futures_util::future::join_all(load).await;
        assert!(answers.iter().all(|answer| *answer == (503, true)), "{answers:?}");
        assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);

        // The database comes back: the same process heals, with no restart.
        proxy.heal();
        let mut ready = StatusCode::SERVICE_UNAVAILABLE;
        for _ in 0..100 {
            ready = app.get("/readyz", None).await.status();
            if ready == StatusCode::OK {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(ready, StatusCode::OK, "ready again");
        assert_eq!(app.get("/v1/me", Some(token)).await.status(), StatusCode::OK);
        assert_eq!(app.login("ada", PASSWORD).await.status(), StatusCode::OK);
        assert_eq!(app.register(&json!({"username": "after", "password": PASSWORD})).await.status(), StatusCode::CREATED);
    }
}
