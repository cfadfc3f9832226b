//! Sign-out and the session list: each revocation kills exactly the sessions it should, at once.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn logout(app: &TestApp, token: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/v1/auth/logout")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let body: Value = app.get("/v1/me/sessions", Some(token)).await.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

each_backend! {
    async fn logout_revokes_only_the_current_session_at_once(backend) {
        let app = spawn_app(backend).await;
        let (_, first) = app.signed_in("ada").await;
        let second = app.token("ada", PASSWORD).await;
        assert_eq!(logout(&app, &first, None).await.status(), StatusCode::NO_CONTENT);
        assert_problem(app.get("/v1/me", Some(&first)).await, 401, "unauthenticated").await;
        assert_eq!(app.get("/v1/me", Some(&second)).await.status(), StatusCode::OK);
        assert_eq!(logout(&app, &second, Some(json!({"all": false}))).await.status(), StatusCode::NO_CONTENT);
        assert_problem(app.get("/v1/me", Some(&second)).await, 401, "unauthenticated").await;
    }

    async fn logout_all_revokes_every_session_of_the_user_and_no_one_elses(backend) {
        let app = spawn_app(backend).await;
        let (_, first) = app.signed_in("ada").await;
        let second = app.token("ada", PASSWORD).await;
        let (_, grace) = app.signed_in("grace").await;
        assert_eq!(logout(&app, &first, Some(json!({"all": true}))).await.status(), StatusCode::NO_CONTENT);
        for token in [&first, &second] {
            assert_problem(app.get("/v1/me", Some(token)).await, 401, "unauthenticated").await;
        }
        assert_eq!(app.get("/v1/me", Some(&grace)).await.status(), StatusCode::OK);
        assert_problem(logout(&app, &first, None).await, 401, "unauthenticated").await;
    }

    async fn the_session_list_marks_the_current_one_and_shows_where_it_came_from(backend) {
        let app = spawn_app(backend).await;
        let (_, first) = app.signed_in("ada").await;
        let second = app.token("ada", PASSWORD).await;
        let listed = sessions(&app, &second).await;
        assert_eq!(listed.len(), 2);
        let current: Vec<&Value> = listed.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["ip"], "127.0.0.1");
        assert!(current[0]["expires_at"].as_str().unwrap().ends_with('Z'));
        logout(&app, &first, None).await;
        assert_eq!(sessions(&app, &second).await.len(), 1, "revoked sessions are not listed");
    }

    async fn revoking_one_session_kills_exactly_it(backend) {
        let app = spawn_app(backend).await;
        let (_, keep) = app.signed_in("ada").await;
        let doomed = app.token("ada", PASSWORD).await;
        let listed = sessions(&app, &keep).await;
        let doomed_id = listed.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();
        let response = app.send_json(Method::DELETE, &format!("/v1/me/sessions/{doomed_id}"), Some(&keep), &json!({})).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_problem(app.get("/v1/me", Some(&doomed)).await, 401, "unauthenticated").await;
        assert_eq!(app.get("/v1/me", Some(&keep)).await.status(), StatusCode::OK);
        let again = app.send_json(Method::DELETE, &format!("/v1/me/sessions/{doomed_id}"), Some(&keep), &json!({})).await;
        assert_problem(again, 404, "not_found").await;
    }

    async fn nobody_can_revoke_another_users_session(backend) {
        let app = spawn_app(backend).await;
        let (_, ada) = app.signed_in("ada").await;
        let (_, grace) = app.signed_in("grace").await;
        let grace_session = sessions(&app, &grace).await[0]["id"].as_str().unwrap().to_owned();
        let response = app.send_json(Method::DELETE, &format!("/v1/me/sessions/{grace_session}"), Some(&ada), &json!({})).await;
        assert_problem(response, 404, "not_found").await;
        assert_eq!(app.get("/v1/me", Some(&grace)).await.status(), StatusCode::OK);
        let garbage = app.send_json(Method::DELETE, "/v1/me/sessions/not-an-id", Some(&ada), &json!({})).await;
        assert_problem(garbage, 404, "not_found").await;
    }

    async fn a_logout_on_one_node_is_honoured_by_another_within_the_cache_bound(backend) {
        let first_node = spawn_app_with(backend, |config| config.session_cache_ttl = Duration::from_secs(1)).await;
        let second_node = first_node.another_node().await;
        let (_, token) = first_node.signed_in("ada").await;
        // The second node reads the session now and may trust that read for up to 1 s.
        assert_eq!(second_node.get("/v1/me", Some(&token)).await.status(), StatusCode::OK);
        assert_eq!(logout(&first_node, &token, None).await.status(), StatusCode::NO_CONTENT);
        assert_problem(first_node.get("/v1/me", Some(&token)).await, 401, "unauthenticated").await;
        let logged_out = std::time::Instant::now();
        loop {
            let status = second_node.get("/v1/me", Some(&token)).await.status();
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert_eq!(status, StatusCode::OK);
            assert!(logged_out.elapsed() < std::time::Duration::from_millis(1_500), "still accepted after the bound");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn without_the_cache_a_logout_on_one_node_is_honoured_by_another_at_once(backend) {
        let first_node = spawn_app_with(backend, |config| config.session_cache_ttl = Duration::ZERO).await;
        let second_node = first_node.another_node().await;
        let (_, token) = first_node.signed_in("ada").await;
        assert_eq!(second_node.get("/v1/me", Some(&token)).await.status(), StatusCode::OK);
        assert_eq!(logout(&first_node, &token, None).await.status(), StatusCode::NO_CONTENT);
        assert_problem(second_node.get("/v1/me", Some(&token)).await, 401, "unauthenticated").await;
    }

    async fn the_sweeper_deletes_ended_sessions_and_expired_tokens(backend) {
        use tessera::domain::time::Timestamp;
        use tessera::service::cleanup;
        use tessera::storage::Store;
        let app = spawn_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        app.token("ada", PASSWORD).await;
        logout(&app, &token, None).await;
        let store = Store::connect(&app.db.url, 2).await.unwrap();
        let soon = Timestamp::now().plus(std::time::Duration::from_secs(60));
        let retention = cleanup::Retention {
            signing_keys: std::time::Duration::from_secs(3600),
            audit_events: std::time::Duration::from_secs(365 * 86_400),
        };
        let swept = cleanup::sweep(&store, soon, retention).await.unwrap();
        assert_eq!(swept.sessions, 0, "live sessions and freshly revoked ones stay");
        let later = Timestamp::now().plus(std::time::Duration::from_secs(31 * 86_400));
        let swept = cleanup::sweep(&store, later, retention).await.unwrap();
        assert_eq!(swept.sessions, 2);
        assert_eq!(swept.audit_events, 0, "a month is well within a year's retention");
        let next_year = Timestamp::now().plus(std::time::Duration::from_secs(366 * 86_400));
        let swept = cleanup::sweep(&store, next_year, retention).await.unwrap();
        assert_eq!(swept.audit_events, 4, "registration, two sign-ins and a sign-out");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM audit_events").await, 0);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM refresh_tokens").await, 0);
        store.close().await;
    }
}
