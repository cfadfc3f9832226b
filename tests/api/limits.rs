//! Per-client rate limits: `429 rate_limited` with `Retry-After`, per client network, behind
//! trusted proxies, shared by every node (database or Redis counters), failing open.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// An app that allows `per_minute` requests per route and believes 127.0.0.1's X-Forwarded-For.
/// Lockout is off: the sign-ins here all name one unknown account, and the limit is the subject.
async fn limited_app(backend: Backend, per_minute: u32, adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(backend, move |config| {
        config.rate_limit = per_minute;
        config.lockout_threshold = 0;
        config.trusted_proxies = flag("--trusted-proxies", "127.0.0.1").trusted_proxies;
        adjust(config);
    })
    .await
}

/// A sign-in with a wrong password from `client`, as a proxy in front of the app reports it.
async fn login_from(app: &TestApp, client: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", client)
        .json(&json!({"username": "nobody", "password": "not the password"}))
        .send()
        .await
        .unwrap()
}

/// An address no other test (nor an earlier run, for Redis) uses.
fn fresh_client() -> String {
    let id = uuid::Uuid::now_v7().as_u128();
    format!("2001:db8:{:x}:{:x}::1", (id >> 16) & 0xffff, id & 0xffff)
}

/// Sends `count` sign-ins from `client`, spread over `nodes` at once; answers how many were not limited.
async fn admitted_across(nodes: &[Arc<TestApp>], client: &str, count: usize) -> usize {
    let requests = (0..count).map(|n| {
        let node = nodes[n % nodes.len()].clone();
        let client = client.to_owned();
        tokio::spawn(async move { login_from(&node, &client).await.status() })
    });
    let mut admitted = 0;
    for request in requests.collect::<Vec<_>>() {
        let status = request.await.unwrap();
        assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS, "{status}");
        admitted += usize::from(status == StatusCode::UNAUTHORIZED);
    }
    admitted
}

each_backend! {
    async fn over_the_limit_is_429_with_retry_after_for_that_client_network_only(backend) {
        let app = limited_app(backend, 3, |_| {}).await;
        for _ in 0..3 {
            assert_eq!(login_from(&app, "203.0.113.7").await.status(), StatusCode::UNAUTHORIZED);
        }
        let refused = login_from(&app, "203.0.113.7").await;
        let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=20).contains(&retry_after), "one request is earned back every 20 s: {retry_after}");
        let body = assert_problem(refused, 429, "rate_limited").await;
        assert!(body["detail"].as_str().unwrap().contains("Retry-After"));
        assert_eq!(login_from(&app, "203.0.113.8").await.status(), StatusCode::UNAUTHORIZED, "another client");
        // An IPv6 client is limited by its /64: rotating the rest of the address does not help.
        for n in 1..=3 {
            assert_eq!(login_from(&app, &format!("2001:db8:5:6::{n}")).await.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(login_from(&app, "2001:db8:5:6::99").await.status(), StatusCode::TOO_MANY_REQUESTS);
        // Each route has its own bucket; routes without a limit have none.
        let register = app.client.post(app.url("/v1/auth/register")).header("x-forwarded-for", "203.0.113.7")
            .json(&json!({"username": "fresh", "password": PASSWORD})).send().await.unwrap();
        assert_eq!(register.status(), StatusCode::CREATED);
        assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        assert!(metrics.contains("tessera_throttled_total{reason=\"rate_limited\"} 2"), "{metrics}");
    }

    async fn an_untrusted_peer_cannot_choose_its_address_with_x_forwarded_for(backend) {
        let app = spawn_app_with(backend, |config| {
            config.rate_limit = 2;
            config.lockout_threshold = 0;
        })
        .await;
        for n in 0..2 {
            assert_eq!(login_from(&app, &format!("198.51.100.{n}")).await.status(), StatusCode::UNAUTHORIZED);
        }
        let spoofed = login_from(&app, "198.51.100.99").await;
        assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS, "the peer (127.0.0.1) is the client");
    }

    async fn three_nodes_on_one_database_admit_the_limit_together(backend) {
        let first = Arc::new(limited_app(backend, 10, |_| {}).await);
        let nodes = [first.clone(), Arc::new(first.another_node().await), Arc::new(first.another_node().await)];
        let admitted = admitted_across(&nodes, &fresh_client(), 45).await;
        // The slack is what the bucket earns back while the burst runs: one request per 6 s.
        assert!((10..=11).contains(&admitted), "admitted {admitted} of 45 with a limit of 10");
    }

    async fn three_nodes_on_redis_admit_the_limit_together(backend) {
        let redis = |config: &mut Config| config.redis_url = Some(SecretUrl::new("redis://127.0.0.1:6379/0"));
        let first = Arc::new(limited_app(backend, 10, redis).await);
        let nodes = [first.clone(), Arc::new(first.another_node().await), Arc::new(first.another_node().await)];
        let admitted = admitted_across(&nodes, &fresh_client(), 45).await;
        assert!((10..=11).contains(&admitted), "admitted {admitted} of 45 with a limit of 10");
        assert_eq!(first.db.count("SELECT COUNT(*) FROM rate_limits").await, 0, "the counters are in Redis");
    }

    async fn per_route_overrides_apply(backend) {
        let app = limited_app(backend, 100, |config| {
            config.rate_limits = flag("--rate-limits", "login=1").rate_limits;
        }).await;
        assert_eq!(login_from(&app, "192.0.2.1").await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(login_from(&app, "192.0.2.1").await.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_limiter_fails_open_with_a_metric() {
    let app = limited_app(Backend::Sqlite, 1, |config| {
        config.redis_url = Some(SecretUrl::new("redis://127.0.0.1:1/0"));
    })
    .await;
    for _ in 0..3 {
        assert_eq!(login_from(&app, "192.0.2.50").await.status(), StatusCode::UNAUTHORIZED, "admitted, not 500");
    }
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("tessera_rate_limiter_failures_total 3"), "{metrics}");
}

#[test]
fn a_bad_redis_url_or_route_name_is_refused_at_start() {
    let error = Config::parse_from(["tessera", "--redis-url", "http://cache"]).unwrap_err();
    assert_eq!(error.setting, "TESSERA_REDIS_URL");
    let error = Config::parse_from(["tessera", "--rate-limits", "signin=3"]).unwrap_err();
    assert_eq!(error.setting, "TESSERA_RATE_LIMITS");
    assert!(error.message.contains("known: register"), "{}", error.message);
}
