use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

each_backend! {
    async fn healthz_and_readyz_answer_200(backend) {
        let app = spawn_app(backend).await;
        let health: Value = app.get("/healthz", None).await.json().await.unwrap();
        assert_eq!(health["status"], "ok");
        let ready = app.get("/readyz", None).await;
        assert_eq!(ready.status(), StatusCode::OK);
    }

    async fn every_response_carries_a_request_id_and_echoes_the_clients(backend) {
        let app = spawn_app(backend).await;
        let response = app.get("/healthz", None).await;
        let generated = response.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
        assert_eq!(generated.len(), 36);
        let response = app.client.get(app.url("/nowhere")).header("x-request-id", "trace-me-123").send().await.unwrap();
        assert_eq!(response.headers().get("x-request-id").unwrap(), "trace-me-123");
        let body = assert_problem(response, 404, "not_found").await;
        assert_eq!(body["request_id"], "trace-me-123");
        let response = app.client.get(app.url("/healthz")).header("x-request-id", "x".repeat(500)).send().await.unwrap();
        assert_ne!(response.headers().get("x-request-id").unwrap().len(), 500, "an absurd id is replaced");
    }

    async fn metrics_count_requests_by_route_and_show_the_hash_pool(backend) {
        let app = spawn_app(backend).await;
        app.signed_in("ada").await;
        app.get("/v1/users/ada/does-not-exist", None).await;
        let response = app.get("/metrics", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.unwrap();
        assert!(text.contains(r#"tessera_http_requests_total{method="POST",route="/v1/auth/login",status="200"} 1"#), "{text}");
        assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
        assert!(text.contains("tessera_http_request_duration_seconds_bucket"));
        assert!(text.contains("tessera_hash_pool_capacity 2"), "{text}");
        assert!(text.contains("tessera_hash_pool_waiting 0"));
        assert!(!text.contains("/v1/users/ada"), "raw paths are never labels");
    }

    async fn the_openapi_document_is_served_and_matches_the_committed_file(backend) {
        let app = spawn_app(backend).await;
        let served: Value = app.get("/openapi.json", None).await.json().await.unwrap();
        assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
        let committed: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
        assert_eq!(served, committed, "openapi.json is stale: run `cargo run -- openapi > openapi.json`");
        for path in ["/v1/auth/register", "/v1/auth/login", "/v1/me", "/v1/me/password", "/healthz", "/readyz", "/metrics"] {
            assert!(served["paths"][path].is_object(), "{path} missing");
        }
        assert_eq!(served["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    }

    async fn swagger_ui_is_served_from_the_binary(backend) {
        let app = spawn_app(backend).await;
        let page = app.get("/docs/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("swagger-ui"), "{html}");
        assert!(!html.contains("cdn") && !html.contains("unpkg"), "no CDN");
        let init = app.get("/docs/swagger-initializer.js", None).await.text().await.unwrap();
        assert!(init.contains("/openapi.json"), "{init}");
        assert!(init.contains(r#""validatorUrl": "none""#), "{init}");
    }
}

#[tokio::test]
async fn sqlite_databases_run_in_wal_mode() {
    let app = spawn_app(Backend::Sqlite).await;
    let mode = app.db.fetch_string("PRAGMA journal_mode").await;
    assert_eq!(mode, "wal");
}
