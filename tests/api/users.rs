//! Administration: the full permission matrix, forced sign-outs, creation, and the last owner.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const ROLES: [&str; 3] = ["user", "admin", "owner"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

/// Registers `username` with `role` (set in the database: no API grants a role to oneself).
async fn account(app: &TestApp, username: &str, role: &str) -> String {
    let id = app.register_user(username).await["id"].as_str().unwrap().to_owned();
    app.db.execute(&format!("UPDATE users SET role = '{role}' WHERE id = '{id}'")).await;
    id
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Read,
    UpdateProfile,
    ChangeRole(&'static str),
    ChangeStatus,
    Delete,
    ListSessions,
    RevokeSessions,
}

const ACTS: [Act; 9] = [
    Act::Read,
    Act::UpdateProfile,
    Act::ChangeRole("user"),
    Act::ChangeRole("admin"),
    Act::ChangeRole("owner"),
    Act::ChangeStatus,
    Act::Delete,
    Act::ListSessions,
    Act::RevokeSessions,
];

/// The status API.md and the rank rules promise for `actor` doing `act` to another account of `target`.
fn expected(actor: &str, target: &str, act: Act) -> u16 {
    if actor == "user" {
        return 403;
    }
    let outranks = rank(actor) > rank(target);
    let allowed = match act {
        Act::Read => true,
        Act::ChangeRole(role) => outranks && rank(role) < rank(actor),
        _ => outranks,
    };
    match (allowed, act) {
        (false, _) => 403,
        (true, Act::Delete | Act::RevokeSessions) => 204,
        (true, _) => 200,
    }
}

async fn perform(app: &TestApp, token: &str, target: &str, act: Act) -> reqwest::Response {
    let path = format!("/v1/users/{target}");
    let sessions = format!("{path}/sessions");
    match act {
        Act::Read => app.get(&path, Some(token)).await,
        Act::UpdateProfile => {
            app.send_json(Method::PATCH, &path, Some(token), &json!({"display_name": "Changed"})).await
        }
        Act::ChangeRole(role) => app.send_json(Method::PATCH, &path, Some(token), &json!({"role": role})).await,
        Act::ChangeStatus => app.send_json(Method::PATCH, &path, Some(token), &json!({"status": "disabled"})).await,
        Act::Delete => app.client.delete(app.url(&path)).bearer_auth(token).send().await.unwrap(),
        Act::ListSessions => app.get(&sessions, Some(token)).await,
        Act::RevokeSessions => app.client.delete(app.url(&sessions)).bearer_auth(token).send().await.unwrap(),
    }
}

each_backend! {
    async fn every_actor_role_target_role_and_action_answers_exactly_as_the_rules_say(backend) {
        let app = spawn_app(backend).await;
        let mut tokens = Vec::new();
        for role in ROLES {
            let name = format!("actor-{role}");
            account(&app, &name, role).await;
            tokens.push((role, app.token(&name, PASSWORD).await));
        }
        let mut n = 0;
        let mut wrong = Vec::new();
        for (actor, token) in &tokens {
            for target in ROLES {
                for act in ACTS {
                    n += 1;
                    let name = format!("target-{n}");
                    let id = account(&app, &name, target).await;
                    // Half the cells name the account by id, half by username.
                    let reference = if n % 2 == 0 { id } else { name };
                    let status = perform(&app, token, &reference, act).await.status().as_u16();
                    if status != expected(actor, target, act) {
                        wrong.push(format!("{actor} {act:?} {target}: {status}, expected {}", expected(actor, target, act)));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    async fn nobody_changes_their_own_role_or_status_or_deletes_themselves_through_administration(backend) {
        let app = spawn_app(backend).await;
        for role in ["admin", "owner"] {
            let name = format!("self-{role}");
            let id = account(&app, &name, role).await;
            let token = app.token(&name, PASSWORD).await;
            // Nor vouch for their own address, nor move it without the password `PATCH /v1/me` asks for.
            let own_address = [json!({"email_verified": true}), json!({"email": "mine@evil.example"})];
            for body in [json!({"role": "user"}), json!({"role": role}), json!({"status": "disabled"})].into_iter().chain(own_address) {
                let response = app.send_json(Method::PATCH, &format!("/v1/users/{id}"), Some(&token), &body).await;
                assert_problem(response, 403, "forbidden").await;
            }
            let response = app.client.delete(app.url(&format!("/v1/users/{id}"))).bearer_auth(&token).send().await.unwrap();
            assert_problem(response, 403, "forbidden").await;
            let own: Value = app.send_json(Method::PATCH, &format!("/v1/users/{name}"), Some(&token), &json!({"first_name": "Me"})).await.json().await.unwrap();
            assert_eq!(own["first_name"], "Me");
            assert_eq!(own["role"], role);
        }
    }

    async fn non_administrators_get_403_whether_or_not_the_target_exists_and_administrators_get_404(backend) {
        let app = spawn_app(backend).await;
        let (_, user) = app.signed_in("plain").await;
        account(&app, "boss", "admin").await;
        let admin = app.token("boss", PASSWORD).await;
        for path in ["/v1/users/nobody", "/v1/users/0193a1b2-c3d4-7e5f-8071-8293a4b5c6d7", "/v1/users/nobody/sessions"] {
            assert_problem(app.get(path, Some(&user)).await, 403, "forbidden").await;
            assert_problem(app.get(path, Some(&admin)).await, 404, "not_found").await;
        }
        assert_problem(app.send_json(Method::POST, "/v1/users", Some(&user), &json!({"username": "made-by-user", "password": PASSWORD})).await, 403, "forbidden").await;
        assert_problem(app.get("/v1/users/boss", None).await, 401, "unauthenticated").await;
    }

    async fn administrators_create_accounts_only_below_their_own_rank(backend) {
        let app = spawn_app(backend).await;
        account(&app, "boss", "admin").await;
        let admin = app.token("boss", PASSWORD).await;
        account(&app, "root", "owner").await;
        let owner = app.token("root", PASSWORD).await;
        let create = |role: &str, name: &str| json!({"username": name, "password": PASSWORD, "role": role, "email_verified": true});
        let made = app.send_json(Method::POST, "/v1/users", Some(&admin), &create("user", "made-by-admin")).await;
        assert_eq!(made.status(), StatusCode::CREATED);
        let made: Value = made.json().await.unwrap();
        assert_eq!((made["role"].as_str(), made["email_verified"].as_bool()), (Some("user"), Some(true)));
        assert_problem(app.send_json(Method::POST, "/v1/users", Some(&admin), &create("admin", "admin-by-admin")).await, 403, "forbidden").await;
        assert_problem(app.send_json(Method::POST, "/v1/users", Some(&owner), &create("owner", "owner-by-owner")).await, 403, "forbidden").await;
        assert_eq!(app.send_json(Method::POST, "/v1/users", Some(&owner), &create("admin", "admin-by-owner")).await.status(), StatusCode::CREATED);
        assert_problem(app.send_json(Method::POST, "/v1/users", Some(&owner), &create("emperor", "emperor-by-owner")).await, 422, "validation_failed").await;
        assert_problem(app.send_json(Method::POST, "/v1/users", Some(&owner), &create("user", "made-by-admin")).await, 409, "username_taken").await;
        assert_eq!(app.login("made-by-admin", PASSWORD).await.status(), StatusCode::OK);
    }

    async fn disabling_an_account_and_forced_sign_out_take_effect_at_once(backend) {
        let app = spawn_app(backend).await;
        account(&app, "boss", "admin").await;
        let admin = app.token("boss", PASSWORD).await;
        let (_, ada) = app.signed_in("ada").await;
        assert_eq!(app.get("/v1/me", Some(&ada)).await.status(), StatusCode::OK);
        let listed: Value = app.get("/v1/users/ada/sessions", Some(&admin)).await.json().await.unwrap();
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
        let response = app.client.delete(app.url("/v1/users/ada/sessions")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_problem(app.get("/v1/me", Some(&ada)).await, 401, "unauthenticated").await;

        let again = app.token("ada", PASSWORD).await;
        let disabled: Value = app.send_json(Method::PATCH, "/v1/users/ada", Some(&admin), &json!({"status": "disabled"})).await.json().await.unwrap();
        assert_eq!(disabled["status"], "disabled");
        assert_problem(app.get("/v1/me", Some(&again)).await, 401, "unauthenticated").await;
        assert_problem(app.login("ada", PASSWORD).await, 403, "account_disabled").await;
        app.send_json(Method::PATCH, "/v1/users/ada", Some(&admin), &json!({"status": "active"})).await;
        assert_eq!(app.login("ada", PASSWORD).await.status(), StatusCode::OK);
    }

    async fn administrative_changes_are_audited_with_actor_and_subject(backend) {
        let app = spawn_app(backend).await;
        let boss = account(&app, "boss", "owner").await;
        let owner = app.token("boss", PASSWORD).await;
        let ada = app.register_user("ada").await["id"].as_str().unwrap().to_owned();
        let body = json!({"role": "admin", "status": "disabled", "display_name": "Ada"});
        assert_eq!(app.send_json(Method::PATCH, "/v1/users/ada", Some(&owner), &body).await.status(), StatusCode::OK);
        let response = app.client.delete(app.url("/v1/users/ada")).bearer_auth(&owner).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        for kind in ["user.profile_updated", "user.role_changed", "user.status_changed", "user.deleted"] {
            let query = format!("SELECT COUNT(*) FROM audit_events WHERE type = '{kind}' AND actor_id = '{boss}' AND user_id = '{ada}'");
            assert_eq!(app.db.count(&query).await, 1, "{kind}");
        }
    }

    async fn two_owners_deleting_themselves_at_once_leave_exactly_one_owner(backend) {
        let app = Arc::new(spawn_app(backend).await);
        account(&app, "first", "owner").await;
        account(&app, "second", "owner").await;
        let tokens = [app.token("first", PASSWORD).await, app.token("second", PASSWORD).await];
        let racers: Vec<_> = tokens
            .into_iter()
            .map(|token| {
                let app = app.clone();
                tokio::spawn(async move {
                    app.send_json(Method::DELETE, "/v1/me", Some(&token), &json!({"password": PASSWORD})).await.status().as_u16()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for racer in racers {
            statuses.push(racer.await.unwrap());
        }
        statuses.sort_unstable();
        assert_eq!(statuses, vec![204, 409]);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users WHERE role = 'owner'").await, 1);
    }
}
