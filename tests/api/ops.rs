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
        assert!(text.contains("tessera_ledger_retries_total 0"), "{text}");
        assert!(!text.contains("/v1/users/ada"), "raw paths are never labels");
    }

    async fn made_up_methods_and_paths_add_no_metric_series(backend) {
        let app = spawn_app(backend).await;
        let series = |text: &str| {
            let families = ["tessera_http_requests_total{", "tessera_http_request_duration_seconds_count{"];
            text.lines().filter(|l| families.iter().any(|f| l.starts_with(f))).count()
        };
        let odd = |i: usize| reqwest::Method::from_bytes(format!("M{i:04}{}", "X".repeat(2_000)).as_bytes()).unwrap();
        // One of each kind first, so the labels they need exist.
        app.client.request(odd(0), app.url("/nowhere/0")).send().await.unwrap();
        app.client.request(odd(0), app.url("/healthz")).send().await.unwrap();
        let before = app.get("/metrics", None).await.text().await.unwrap();
        for i in 1..=1_000 {
            let path = if i % 2 == 0 { format!("/nowhere/{i}") } else { "/healthz".to_owned() };
            let response = app.client.request(odd(i), app.url(&path)).send().await.unwrap();
            assert!(response.status().is_client_error(), "{}", response.status());
        }
        let after = app.get("/metrics", None).await.text().await.unwrap();
        assert_eq!(series(&after), series(&before) + 2, "only /metrics itself may add series:\n{after}");
        assert!(after.contains(r#"method="other",route="unmatched",status="404""#), "{after}");
        assert!(!after.contains("M0001") && after.len() < 64 * 1024, "no raw method is a label");
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

/// The pool hands out a connection used within the last half second without pinging it first
/// (a round trip saved per request). A request that meets a connection the database closed
/// within that window is answered `503` (never `500`), and the connection is replaced; one idle
/// for longer is pinged, and replaced before any request meets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_database_closed_are_replaced() {
    for backend in [Backend::Postgres, Backend::MySql] {
        if !backend.available() {
            continue;
        }
        let app = spawn_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let killed = close_server_connections(backend, &app.db).await;
        assert!(killed > 0, "{backend:?}: the server had connections open");
        // At once: what the request meets depends on how long ago each connection was used.
        for _ in 0..3 {
            let status = app.login("ada", PASSWORD).await.status();
            assert!(status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE, "{backend:?}: {status}");
        }
        close_server_connections(backend, &app.db).await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK, "{backend:?}");
        assert_eq!(app.login("ada", PASSWORD).await.status(), StatusCode::OK, "{backend:?}");
        assert_eq!(app.get("/v1/me", Some(&token)).await.status(), StatusCode::OK, "{backend:?}");
    }
}

/// Closes, from the database's side, every other client connection to the test's database;
/// answers how many there were.
async fn close_server_connections(backend: Backend, db: &TestDb) -> usize {
    use sqlx::{Connection as _, Executor as _, Row as _};
    let mut conn = sqlx::AnyConnection::connect(&db.direct_url).await.unwrap();
    let others = match backend {
        Backend::MySql => {
            "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
             WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        }
        _ => {
            "SELECT CAST(pid AS BIGINT) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        }
    };
    let ids: Vec<i64> = conn.fetch_all(others).await.unwrap().iter().map(|row| row.get(0)).collect();
    for id in &ids {
        let close = match backend {
            Backend::MySql => format!("KILL {id}"),
            _ => format!("SELECT pg_terminate_backend({id})"),
        };
        // A connection may have ended meanwhile (MySQL then answers "unknown thread").
        conn.execute(close.as_str()).await.ok();
    }
    conn.close().await.ok();
    ids.len()
}
