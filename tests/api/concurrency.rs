use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

each_backend! {
    async fn twenty_concurrent_registrations_of_one_username_give_one_201_and_nineteen_409s(backend) {
        let app = Arc::new(spawn_app(backend).await);
        let attempts = (0..20).map(|i| {
            let app = app.clone();
            // Each spells the name differently; uniqueness ignores case.
            let username = if i % 2 == 0 { "racer" } else { "RaCeR" };
            tokio::spawn(async move {
                app.register(&json!({"username": username, "password": PASSWORD})).await.status()
            })
        });
        let mut statuses = Vec::new();
        for attempt in attempts.collect::<Vec<_>>() {
            statuses.push(attempt.await.unwrap());
        }
        let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
        let conflicts = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
        assert_eq!((created, conflicts), (1, 19), "{statuses:?}");
    }

    async fn concurrent_logins_and_refreshes_of_one_account_all_succeed(backend) {
        // Each login writes the user row and inserts rows that reference it; in the wrong order
        // InnoDB deadlocks two such transactions.
        let app = Arc::new(spawn_app_with(backend, |config| config.hash_concurrency = 4).await);
        app.register_user("ada").await;
        let logins: Vec<_> = (0..32)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    let response = app.login("ada", PASSWORD).await;
                    let status = response.status();
                    let body = response.json::<Value>().await.unwrap();
                    assert_eq!(status, StatusCode::OK, "{body}");
                    body["refresh_token"].as_str().unwrap().to_owned()
                })
            })
            .collect();
        let mut refresh_tokens = Vec::new();
        for login in logins {
            refresh_tokens.push(login.await.unwrap());
        }
        let refreshes: Vec<_> = refresh_tokens
            .into_iter()
            .map(|token| {
                let app = app.clone();
                tokio::spawn(async move { app.post("/v1/auth/refresh", &json!({"refresh_token": token})).await.status() })
            })
            .collect();
        for refresh in refreshes {
            assert_eq!(refresh.await.unwrap(), StatusCode::OK);
        }
    }

    async fn healthz_and_me_keep_answering_while_the_hash_pool_is_saturated(backend) {
        let app = Arc::new(spawn_app_with(backend, |config| config.hash_concurrency = 1).await);
        let (_, token) = app.signed_in("ada").await;
        const LOGINS: usize = 24;
        let finished = Arc::new(AtomicUsize::new(0));
        let flood: Vec<_> = (0..LOGINS)
            .map(|_| {
                let (app, finished) = (app.clone(), finished.clone());
                tokio::spawn(async move {
                    let status = app.login("ada", PASSWORD).await.status();
                    finished.fetch_add(1, Ordering::SeqCst);
                    status
                })
            })
            .collect();
        // Wait until logins are queueing for the one hashing slot.
        loop {
            let metrics = app.get("/metrics", None).await.text().await.unwrap();
            if !metrics.contains("tessera_hash_pool_waiting 0") {
                break;
            }
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
            let me: Value = app.get("/v1/me", Some(&token)).await.json().await.unwrap();
            assert_eq!(me["username"], "ada");
        }
        let done_when_probes_finished = finished.load(Ordering::SeqCst);
        assert!(
            done_when_probes_finished < LOGINS,
            "the probes were answered while logins were still queued ({done_when_probes_finished}/{LOGINS} done)"
        );
        for login in flood {
            assert_eq!(login.await.unwrap(), StatusCode::OK);
        }
    }
}
