//! The audit trail: every audited action leaves exactly one event, with the right actor and
//! subject, written with the change (a refused change leaves none); no event holds a secret.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection as _, Row as _};

use crate::helpers::*;

#[derive(Debug, PartialEq)]
struct Event {
    kind: String,
    actor: Option<String>,
    user: Option<String>,
    detail: Value,
}

/// Every event, oldest first (ids are time-ordered UUIDv7).
async fn events(app: &TestApp) -> Vec<Event> {
    let mut conn = AnyConnection::connect(&app.db.direct_url).await.unwrap();
    let rows = sqlx::query("SELECT type, actor_id, user_id, detail FROM audit_events ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    rows.iter()
        .map(|row| {
            // MySQL reports TEXT as a blob through the Any driver.
            let detail: String = row
                .try_get("detail")
                .or_else(|_| row.try_get::<Vec<u8>, _>("detail").map(|b| String::from_utf8(b).unwrap()))
                .unwrap();
            Event {
                kind: row.try_get("type").unwrap(),
                actor: row.try_get("actor_id").unwrap(),
                user: row.try_get("user_id").unwrap(),
                detail: serde_json::from_str(&detail).unwrap(),
            }
        })
        .collect()
}

fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

each_backend! {
    async fn every_self_service_action_leaves_one_event_with_its_actor_and_subject(backend) {
        let app = spawn_app_with(backend, |config| config.refresh_reuse_grace = Duration::ZERO).await;
        let ada = app.register_user("ada").await["id"].as_str().unwrap().to_owned();
        let first: Value = app.login("ada", PASSWORD).await.json().await.unwrap();
        let token = first["access_token"].as_str().unwrap().to_owned();
        app.login("ada", "not the password").await;
        app.login("nobody", PASSWORD).await;
        app.send_json(Method::PATCH, "/v1/me", Some(&token), &json!({"first_name": "Ada"})).await;
        let change = json!({"current_password": PASSWORD, "new_password": "a brand new secret"});
        assert_eq!(app.send_json(Method::POST, "/v1/me/password", Some(&token), &change).await.status(), StatusCode::NO_CONTENT);
        let second = app.token("ada", "a brand new secret").await;
        let sessions: Value = app.get("/v1/me/sessions", Some(&token)).await.json().await.unwrap();
        let other = sessions["items"].as_array().unwrap().iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();
        app.send_json(Method::DELETE, &format!("/v1/me/sessions/{other}"), Some(&token), &json!({})).await;
        assert_problem(app.get("/v1/me", Some(&second)).await, 401, "unauthenticated").await;
        let third: Value = app.post("/v1/auth/login", &json!({"username": "ada", "password": "a brand new secret"})).await.json().await.unwrap();
        let stolen = third["refresh_token"].as_str().unwrap();
        app.post("/v1/auth/refresh", &json!({"refresh_token": stolen})).await;
        assert_problem(app.post("/v1/auth/refresh", &json!({"refresh_token": stolen})).await, 401, "refresh_token_reused").await;
        app.client.post(app.url("/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
        let fourth = app.token("ada", "a brand new secret").await;
        let deleted = app.send_json(Method::DELETE, "/v1/me", Some(&fourth), &json!({"password": "a brand new secret"})).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

        let events = events(&app).await;
        assert_eq!(kinds(&events), vec![
            "user.registered",
            "login.succeeded",
            "login.failed",
            "login.failed",
            "user.profile_updated",
            "user.password_changed",
            "login.succeeded",
            "session.revoked",
            "login.succeeded",
            "session.refresh_token_reused",
            "session.logged_out",
            "login.succeeded",
            "user.deleted",
        ]);
        let me = Some(ada.clone());
        for event in &events {
            let (actor, subject) = match event.kind.as_str() {
                "user.registered" | "session.refresh_token_reused" => (None, me.clone()),
                "login.failed" if event.detail["reason"] == "unknown_account" => (None, None),
                "login.failed" => (None, me.clone()),
                _ => (me.clone(), me.clone()),
            };
            assert_eq!((&event.actor, &event.user), (&actor, &subject), "{event:?}");
        }
        assert_eq!(events[2].detail["reason"], "wrong_password");
        assert_eq!(events[4].detail["fields"], json!(["first_name"]));
        assert_eq!(events[5].detail["sessions_revoked"], 0);
        assert_eq!(events[7].detail["session_id"], other.as_str());
    }

    async fn a_refused_change_leaves_no_event(backend) {
        let app = spawn_app(backend).await;
        app.register_user("grace").await;
        let (_, token) = app.signed_in("ada").await;
        let before = events(&app).await.len();
        assert_problem(app.send_json(Method::PATCH, "/v1/me", Some(&token), &json!({"username": "GRACE"})).await, 409, "username_taken").await;
        assert_problem(app.send_json(Method::DELETE, "/v1/me", Some(&token), &json!({"password": "wrong password!"})).await, 403, "wrong_password").await;
        let weak = json!({"current_password": PASSWORD, "new_password": "password"});
        assert_problem(app.send_json(Method::POST, "/v1/me/password", Some(&token), &weak).await, 422, "validation_failed").await;
        assert_problem(app.register(&json!({"username": "ada", "password": PASSWORD})).await, 409, "username_taken").await;
        assert_eq!(events(&app).await.len(), before);
    }

    async fn events_record_where_a_change_came_from_and_never_a_secret(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let login: Value = app.login("ada", PASSWORD).await.json().await.unwrap();
        let mut conn = AnyConnection::connect(&app.db.direct_url).await.unwrap();
        let row = sqlx::query("SELECT ip, user_agent FROM audit_events WHERE type = 'login.succeeded'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        assert_eq!(row.try_get::<Option<String>, _>("ip").unwrap().as_deref(), Some("127.0.0.1"));
        let dump = format!("{:?}", events(&app).await);
        for secret in [PASSWORD, login["access_token"].as_str().unwrap(), login["refresh_token"].as_str().unwrap()] {
            assert!(!dump.contains(secret), "a secret reached the audit trail");
        }
    }

    async fn administrators_page_through_the_trail_seeing_each_event_exactly_once(backend) {
        let app = spawn_app(backend).await;
        let boss = app.register_user("boss").await["id"].as_str().unwrap().to_owned();
        app.db.execute(&format!("UPDATE users SET role = 'admin' WHERE id = '{boss}'")).await;
        let admin = app.token("boss", PASSWORD).await;
        let ada = app.register_user("ada").await["id"].as_str().unwrap().to_owned();
        for _ in 0..3 {
            app.login("ada", "not the password").await;
        }
        let total = events(&app).await.len();
        let mut seen = Vec::new();
        let mut path = "/v1/audit-events?limit=2".to_owned();
        loop {
            let page: Value = app.get(&path, Some(&admin)).await.json().await.unwrap();
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/audit-events?limit=2&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), total);
        let mut sorted = seen.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.dedup();
        assert_eq!(sorted, seen, "newest first, no repeats");

        let failed: Value = app.get(&format!("/v1/audit-events?type=login.failed&user_id={ada}"), Some(&admin)).await.json().await.unwrap();
        let failed = failed["items"].as_array().unwrap();
        assert_eq!(failed.len(), 3);
        assert!(failed.iter().all(|e| e["type"] == "login.failed" && e["user_id"] == ada.as_str() && e["detail"]["reason"] == "wrong_password"));
    }

    async fn the_audit_trail_refuses_strangers_forged_cursors_and_bad_parameters(backend) {
        let app = spawn_app(backend).await;
        let boss = app.register_user("boss").await["id"].as_str().unwrap().to_owned();
        app.db.execute(&format!("UPDATE users SET role = 'owner' WHERE id = '{boss}'")).await;
        let owner = app.token("boss", PASSWORD).await;
        let (_, user) = app.signed_in("plain").await;
        assert_problem(app.get("/v1/audit-events", Some(&user)).await, 403, "forbidden").await;
        let page: Value = app.get("/v1/audit-events?limit=1", Some(&owner)).await.json().await.unwrap();
        let cursor = page["next_cursor"].as_str().unwrap();
        let (body, tag) = cursor.split_once('.').unwrap();
        let mut forged = body.to_owned();
        forged.replace_range(0..1, if forged.starts_with('A') { "B" } else { "A" });
        for bad in [format!("{forged}.{tag}"), format!("{body}.AAAA"), "garbage".to_owned()] {
            assert_problem(app.get(&format!("/v1/audit-events?cursor={bad}"), Some(&owner)).await, 400, "malformed_request").await;
        }
        assert_problem(app.get("/v1/audit-events?limit=0", Some(&owner)).await, 422, "validation_failed").await;
        assert_problem(app.get("/v1/audit-events?limit=201", Some(&owner)).await, 422, "validation_failed").await;
        assert_problem(app.get("/v1/audit-events?limit=many", Some(&owner)).await, 400, "malformed_request").await;
        assert_problem(app.get("/v1/audit-events?user_id=nope", Some(&owner)).await, 400, "malformed_request").await;
    }
}
