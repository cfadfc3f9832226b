//! Writes to one account racing each other: the last committed administrative change stands,
//! and the audit trail agrees with the row.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// Keeps `token`'s owner editing their own metadata from several tasks until told to stop.
fn self_edits(
    app: &Arc<TestApp>,
    token: &str,
) -> (tokio::sync::watch::Sender<bool>, Vec<tokio::task::JoinHandle<u32>>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = (0..8)
        .map(|task| {
            let (app, token, stopped) = (app.clone(), token.to_owned(), stopped.clone());
            tokio::spawn(async move {
                let mut sent = 0;
                while !*stopped.borrow() && sent < 200 {
                    let body = json!({"metadata": {"task": task, "n": sent}});
                    app.send_json(Method::PATCH, "/v1/me", Some(&token), &body).await;
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    (stop, tasks)
}

/// The `to` of the newest audit event of `kind` about `user`.
async fn last_change(app: &TestApp, token: &str, user: &str, kind: &str) -> Value {
    let page: Value = app
        .get(&format!("/v1/audit-events?user_id={user}&type={kind}&limit=1"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    page["items"][0]["detail"]["to"].clone()
}

each_backend! {
    async fn self_edits_racing_a_demotion_a_grant_and_a_disable_never_undo_them(backend) {
        let app = Arc::new(spawn_app(backend).await);
        let (owner_id, owner) = app.signed_in("olga").await;
        app.db.execute(&format!("UPDATE users SET role = 'owner' WHERE id = '{owner_id}'")).await;
        let (abe, _) = app.signed_in("abe").await;
        app.db.execute(&format!("UPDATE users SET role = 'admin' WHERE id = '{abe}'")).await;
        let abe_token = app.token("abe", PASSWORD).await;
        let changes = [
            (json!({"role": "user"}), "user.role_changed", "role", "user"),
            (json!({"role": "admin"}), "user.role_changed", "role", "admin"),
            (json!({"status": "disabled"}), "user.status_changed", "status", "disabled"),
        ];
        for (change, kind, column, expected) in changes {
            let (stop, tasks) = self_edits(&app, &abe_token);
            tokio::time::sleep(Duration::from_millis(30)).await;
            let response = app.send_json(Method::PATCH, &format!("/v1/users/{abe}"), Some(&owner), &change).await;
            assert_eq!(response.status(), StatusCode::OK, "{change}");
            // Let edits that read the account before the change finish after it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.send(true).ok();
            let mut edits = 0;
            for task in tasks {
                edits += task.await.unwrap();
            }
            assert!(edits > 8, "the self-edits ran ({edits})");
            let row: Value = app.get(&format!("/v1/users/{abe}"), Some(&owner)).await.json().await.unwrap();
            assert_eq!(row[column], expected, "after {change} raced {edits} self-edits");
            assert_eq!(last_change(&app, &owner, &abe, kind).await, expected, "the audit trail agrees with the row");
        }
        assert_problem(app.login("abe", PASSWORD).await, 403, "account_disabled").await;
    }

    async fn a_profile_edit_racing_a_password_reset_keeps_both(backend) {
        let app = Arc::new(spawn_app(backend).await);
        let (_, token) = app.signed_in("ada").await;
        let edits: Vec<_> = (0..10)
            .map(|n| {
                let (app, token) = (app.clone(), token.clone());
                tokio::spawn(async move {
                    let body = json!({"first_name": format!("Ada{n}")});
                    app.send_json(Method::PATCH, "/v1/me", Some(&token), &body).await.status()
                })
            })
            .collect();
        let body = json!({"current_password": PASSWORD, "new_password": "a brand new secret"});
        let changed = app.send_json(Method::POST, "/v1/me/password", Some(&token), &body).await;
        assert_eq!(changed.status(), StatusCode::NO_CONTENT);
        for edit in edits {
            assert_eq!(edit.await.unwrap(), StatusCode::OK);
        }
        assert_problem(app.login("ada", PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(app.login("ada", "a brand new secret").await.status(), StatusCode::OK, "no edit wrote the old hash back");
    }
}
