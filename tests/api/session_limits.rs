//! Per-account session state is bounded: a sign-in beyond the limit ends the oldest session,
//! also when many sign-ins race, and session lists come a page at a time.

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

async fn live_sessions(app: &TestApp) -> i64 {
    app.db.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await
}

each_backend! {
    async fn a_sign_in_beyond_the_limit_ends_the_oldest_session(backend) {
        let app = spawn_app_with(backend, |config| config.max_sessions_per_user = 3).await;
        app.register_user("ada").await;
        let mut tokens = Vec::new();
        for _ in 0..5 {
            tokens.push(app.token("ada", PASSWORD).await);
        }
        for oldest in &tokens[..2] {
            assert_problem(app.get("/v1/me", Some(oldest)).await, 401, "unauthenticated").await;
        }
        for newest in &tokens[2..] {
            assert_eq!(app.get("/v1/me", Some(newest)).await.status(), StatusCode::OK);
        }
        assert_eq!(live_sessions(&app).await, 3);
        let ended = "SELECT COUNT(*) FROM audit_events WHERE type = 'session.revoked' AND detail LIKE '%session_limit%'";
        assert_eq!(app.db.count(ended).await, 2, "each ending is audited");
    }

    async fn racing_sign_ins_never_leave_more_sessions_than_the_limit(backend) {
        let app = Arc::new(spawn_app_with(backend, |config| {
            config.max_sessions_per_user = 3;
            config.hash_concurrency = 4;
        }).await);
        app.register_user("ada").await;
        let logins: Vec<_> = (0..16)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { app.login("ada", PASSWORD).await.status() })
            })
            .collect();
        for login in logins {
            assert_eq!(login.await.unwrap(), StatusCode::OK);
        }
        assert_eq!(live_sessions(&app).await, 3);
    }

    async fn session_lists_come_a_page_at_a_time(backend) {
        let app = spawn_app(backend).await;
        let (id, _) = app.signed_in("ada").await;
        app.db.execute(&format!("UPDATE users SET role = 'owner' WHERE id = '{id}'")).await;
        for _ in 0..6 {
            app.token("ada", PASSWORD).await;
        }
        let token = app.token("ada", PASSWORD).await;
        for list in ["/v1/me/sessions", "/v1/users/ada/sessions"] {
            let mut seen = HashSet::new();
            let mut sizes = Vec::new();
            let mut next = format!("{list}?limit=3");
            loop {
                let page: Value = app.get(&next, Some(&token)).await.json().await.unwrap();
                let items = page["items"].as_array().unwrap();
                sizes.push(items.len());
                seen.extend(items.iter().map(|s| s["id"].as_str().unwrap().to_owned()));
                match page["next_cursor"].as_str() {
                    Some(cursor) => next = format!("{list}?limit=3&cursor={cursor}"),
                    None => break,
                }
            }
            assert_eq!((sizes, seen.len()), (vec![3, 3, 2], 8), "{list}");
            assert_problem(app.get(&format!("{list}?cursor=forged.cursor"), Some(&token)).await, 400, "malformed_request").await;
            assert_problem(app.get(&format!("{list}?limit=0"), Some(&token)).await, 422, "validation_failed").await;
        }
    }
}
