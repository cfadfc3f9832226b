//! The HTTP edge: cache and sniffing headers, CORS, the client's address behind proxies, and
//! the limits that keep slow or idle clients from holding the server.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::*;

/// A raw connection to the app, for clients no HTTP library would be.
async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap()
}

/// Whether the server has closed `stream` (a read sees the end, or an error).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

each_backend! {
    async fn token_answers_are_never_cached_and_nothing_is_sniffed(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let login = app.login("ada", PASSWORD).await;
        assert_eq!(login.status(), StatusCode::OK);
        assert_eq!((login.headers()["cache-control"].to_str().unwrap(), login.headers()["pragma"].to_str().unwrap()), ("no-store", "no-cache"));
        let body: Value = login.json().await.unwrap();
        let refreshed = app.post("/v1/auth/refresh", &json!({"refresh_token": body["refresh_token"]})).await;
        assert_eq!(refreshed.headers()["cache-control"], "no-store");
        assert_eq!(refreshed.headers()["pragma"], "no-cache");
        let answers = [
            app.get("/healthz", None).await,
            app.get("/nowhere", None).await,
            app.get("/v1/me", None).await,
            app.client.put(app.url("/healthz")).send().await.unwrap(),
            app.get("/metrics", None).await,
        ];
        for answer in answers {
            assert_eq!(answer.headers()["x-content-type-options"], "nosniff", "{}", answer.url());
        }
    }

    async fn listed_origins_get_cors_and_others_get_nothing(backend) {
        let app = spawn_app_with(backend, |config| config.cors_origins = flag("--cors-origins", "https://app.example, http://localhost:3000").cors_origins).await;
        let preflight = |origin: &'static str| {
            app.client
                .request(Method::OPTIONS, app.url("/v1/auth/login"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .send()
        };
        let allowed = preflight("https://app.example").await.unwrap();
        assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
        assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
        assert!(allowed.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
        assert!(allowed.headers()["access-control-allow-headers"].to_str().unwrap().contains("content-type"));
        assert!(allowed.headers().get("access-control-allow-credentials").is_none(), "never credentials");
        let refused = preflight("https://evil.example").await.unwrap();
        assert!(refused.headers().get("access-control-allow-origin").is_none());
        let actual = app.client.get(app.url("/v1/me")).header("origin", "http://localhost:3000").send().await.unwrap();
        assert_eq!(actual.headers()["access-control-allow-origin"], "http://localhost:3000", "problems are readable too");
        assert!(actual.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));

        let closed_app = spawn_app(backend).await;
        let preflight = closed_app.client.request(Method::OPTIONS, closed_app.url("/v1/auth/login"))
            .header("origin", "https://app.example").header("access-control-request-method", "POST").send().await.unwrap();
        assert!(preflight.headers().get("access-control-allow-origin").is_none(), "off unless configured");
    }

    async fn the_client_is_the_right_most_untrusted_forwarded_address_only_behind_trusted_proxies(backend) {
        let forwarded = "198.51.100.7, 203.0.113.9, 10.1.2.3";
        let session_ip = |app: &TestApp, token: String| {
            let request = app.client.get(app.url("/v1/me/sessions")).bearer_auth(token).send();
            async move { request.await.unwrap().json::<Value>().await.unwrap()["items"][0]["ip"].clone() }
        };
        let behind_proxy = spawn_app_with(backend, |config| config.trusted_proxies = flag("--trusted-proxies", "127.0.0.0/8,10.0.0.0/8").trusted_proxies).await;
        behind_proxy.register_user("ada").await;
        let login = behind_proxy.client.post(behind_proxy.url("/v1/auth/login")).header("x-forwarded-for", forwarded)
            .json(&json!({"username": "ada", "password": PASSWORD})).send().await.unwrap();
        let token = login.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
        assert_eq!(session_ip(&behind_proxy, token).await, "203.0.113.9");

        let direct = spawn_app(backend).await;
        direct.register_user("ada").await;
        let login = direct.client.post(direct.url("/v1/auth/login")).header("x-forwarded-for", forwarded)
            .json(&json!({"username": "ada", "password": PASSWORD})).send().await.unwrap();
        let token = login.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
        assert_eq!(session_ip(&direct, token).await, "127.0.0.1", "a forwarded address from an untrusted peer is ignored");
    }

    async fn a_request_that_outlasts_the_timeout_is_answered_503(backend) {
        let app = spawn_app_with(backend, |config| config.request_timeout = Duration::from_secs(1)).await;
        let mut stream = connect(&app).await;
        // Headers promise a body that never comes.
        stream.write_all(b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"user").await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.to_lowercase().contains("retry-after: 1") && answer.contains("\"code\":\"unavailable\""), "{answer}");
    }

    async fn slow_clients_are_cut_off_and_do_not_stop_a_normal_one(backend) {
        let app = spawn_app_with(backend, |config| config.header_timeout = Duration::from_secs(2)).await;
        let mut slow = Vec::new();
        for _ in 0..500 {
            let mut stream = connect(&app).await;
            stream.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
            slow.push(stream);
        }
        // The slow ones send a byte a second; a normal client keeps being served meanwhile.
        for second in 0..3 {
            for stream in &mut slow {
                let _ = stream.write_all(b"x").await;
            }
            for _ in 0..5 {
                let response = app.get("/healthz", None).await;
                assert_eq!(response.status(), StatusCode::OK, "second {second}");
            }
            tokio::time::sleep(Duration::from_millis(1_000)).await;
        }
        let mut cut = 0;
        for stream in &mut slow {
            cut += usize::from(closed(stream).await);
        }
        assert_eq!(cut, 500, "every slow client was cut off at the header timeout");
    }

    async fn connections_beyond_the_cap_wait_and_idle_ones_are_closed(backend) {
        let app = spawn_app_with(backend, |config| {
            config.max_connections = 20;
            config.header_timeout = Duration::from_secs(2);
        }).await;
        let mut idle = Vec::new();
        for _ in 0..30 {
            idle.push(connect(&app).await);
        }
        // Served once the idle ones time out and free their slots.
        let text = app.get("/metrics", None).await.text().await.unwrap();
        let open: i64 = text.lines().find_map(|l| l.strip_prefix("tessera_http_connections ")).unwrap().parse().unwrap();
        assert!((1..=20).contains(&open), "{open} connections open with a cap of 20");
        let mut closed_count = 0;
        for stream in &mut idle {
            closed_count += usize::from(closed(stream).await);
        }
        assert!(closed_count >= 20, "idle connections were closed ({closed_count})");
    }
}
