//! Mail end to end: every flow reads its link out of a message a real SMTP listener received.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::smtp::MailCatcher;

pub const NEW_PASSWORD: &str = "a brand new passphrase 42";

/// An app that sends its mail to `catcher`, retrying quickly.
pub async fn app_with_mail(backend: Backend, catcher: &MailCatcher, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let port = catcher.port;
    spawn_app_with(backend, move |config| {
        config.mail.smtp_url = Some(SecretUrl::new(&MailCatcher::url(port)));
        config.mail.retry_delay = Duration::from_millis(100);
        adjust(config);
    })
    .await
}

pub fn email(name: &str) -> String {
    format!("{name}@example.com")
}

pub async fn forgot(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post("/v1/auth/password/forgot", body).await
}

pub async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post("/v1/auth/password/reset", &json!({"token": token, "new_password": password})).await
}

each_backend! {
    async fn register_then_verify_from_the_mail_then_sign_in_when_verification_is_required(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |config| config.mail.require_verification = true).await;
        let no_email = app.register(&json!({"username": "nomail", "password": PASSWORD})).await;
        let problem = assert_problem(no_email, 422, "validation_failed").await;
        assert_eq!(field_codes(&problem), [("email".to_owned(), "required".to_owned())]);

        app.register_user("ada").await;
        let mail = catcher.nth_to(&email("ada"), 1).await;
        assert!(mail.subject().contains("Confirm your e-mail address"), "{}", mail.subject());
        assert!(mail.link("verify-email").starts_with(&format!("{PUBLIC_URL}/verify-email?token=")));
        assert_problem(app.login("ada", PASSWORD).await, 403, "email_unverified").await;
        assert_problem(app.login("ada", "not the password at all").await, 401, "invalid_credentials").await;

        let token = mail.token("verify-email");
        let verified = app.post("/v1/auth/verify-email", &json!({"token": token})).await;
        assert_eq!(verified.status(), 200);
        assert_eq!(verified.json::<Value>().await.unwrap()["user"]["email_verified"], true);
        assert_eq!(app.login("ada", PASSWORD).await.status(), 200);
        let again = app.post("/v1/auth/verify-email", &json!({"token": token})).await;
        assert_problem(again, 401, "invalid_token").await;
        assert_eq!(app.db.count("SELECT COUNT(*) FROM audit_events WHERE type = 'user.email_verified'").await, 1);
    }

    async fn forgot_then_reset_from_the_mail_ends_every_session_and_only_the_newest_link_works(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |_| {}).await;
        let (_, access) = app.signed_in("grace").await;
        let refresh: Value = app.login("grace", PASSWORD).await.json().await.unwrap();
        catcher.nth_to(&email("grace"), 1).await; // the verification mail of the registration

        assert_eq!(forgot(&app, &json!({"email": "GRACE@example.com"})).await.status(), 202);
        let first = catcher.nth_to(&email("grace"), 2).await.token("reset-password");
        assert_eq!(forgot(&app, &json!({"username": "grace"})).await.status(), 202);
        let second = catcher.nth_to(&email("grace"), 3).await.token("reset-password");
        assert_problem(reset(&app, &first, NEW_PASSWORD).await, 401, "invalid_token").await;

        let weak = reset(&app, &second, "password").await;
        assert_problem(weak, 422, "validation_failed").await;
        assert_eq!(reset(&app, &second, NEW_PASSWORD).await.status(), 204, "a refused password leaves the link usable");
        assert_problem(reset(&app, &second, "yet another good passphrase").await, 401, "invalid_token").await;

        assert_problem(app.get("/v1/me", Some(&access)).await, 401, "unauthenticated").await;
        let refreshed = app.post("/v1/auth/refresh", &json!({"refresh_token": refresh["refresh_token"]})).await;
        assert_eq!(refreshed.status(), 401);
        assert_problem(app.login("grace", PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(app.login("grace", NEW_PASSWORD).await.status(), 200);
        let notice = catcher.nth_to(&email("grace"), 4).await;
        assert!(notice.subject().contains("password was changed"), "{}", notice.subject());
        assert_eq!(app.db.count("SELECT COUNT(*) FROM audit_events WHERE type = 'user.password_reset'").await, 1);
    }

    async fn concurrent_reset_requests_each_mail_a_link_and_only_one_link_works(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |config| config.mail.per_address_per_hour = 0).await;
        app.register_user("ken").await;
        catcher.nth_to(&email("ken"), 1).await;
        let body = json!({"username": "ken"});
        let requests = (0..8).map(|_| forgot(&app, &body));
        let answers = futures_util::future::join_all(requests).await;
        assert!(answers.iter().all(|a| a.status() == 202));
        let mails = catcher.wait_for(9).await;
        let mut working = 0;
        for mail in &mails[1..] {
            if reset(&app, &mail.token("reset-password"), NEW_PASSWORD).await.status() == 204 {
                working += 1;
            }
        }
        assert_eq!(working, 1, "each request voids the links before it");
    }

    async fn links_stop_working_when_they_expire(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |config| {
            config.mail.reset_token_ttl = Duration::from_secs(1);
            config.mail.verify_token_ttl = Duration::from_secs(1);
        })
        .await;
        app.register_user("linus").await;
        let verify = catcher.nth_to(&email("linus"), 1).await.token("verify-email");
        forgot(&app, &json!({"username": "linus"})).await;
        let reset_token = catcher.nth_to(&email("linus"), 2).await.token("reset-password");
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert_problem(app.post("/v1/auth/verify-email", &json!({"token": verify})).await, 401, "invalid_token").await;
        assert_problem(reset(&app, &reset_token, NEW_PASSWORD).await, 401, "invalid_token").await;
    }

    async fn forgot_and_resend_answer_alike_for_known_and_unknown_accounts(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |_| {}).await;
        app.register_user("known").await;
        catcher.nth_to(&email("known"), 1).await;
        let pairs = [
            ("/v1/auth/password/forgot", json!({"email": email("known")}), json!({"email": email("unknown")})),
            ("/v1/auth/password/forgot", json!({"username": "known"}), json!({"username": "unknown"})),
            ("/v1/auth/verify-email/resend", json!({"email": email("known")}), json!({"email": email("unknown")})),
        ];
        for (path, known, unknown) in pairs {
            let (a, b) = (app.post(path, &known).await, app.post(path, &unknown).await);
            assert_eq!((a.status().as_u16(), b.status().as_u16()), (202, 202), "{path}");
            let shape = |r: &reqwest::Response| {
                let mut names: Vec<String> = r.headers().keys().map(|k| k.to_string()).filter(|k| k != "date" && k != "x-request-id").collect();
                names.sort();
                names
            };
            assert_eq!(shape(&a), shape(&b), "{path}");
            assert_eq!(a.bytes().await.unwrap(), b.bytes().await.unwrap(), "{path}");
        }
        // Known: a reset link, another reset link, a new verification link. Unknown: nothing.
        catcher.nth_to(&email("known"), 4).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(catcher.received().iter().all(|m| m.to == [email("known")]));
    }

    async fn a_new_address_is_pending_until_its_link_is_followed_and_the_old_one_is_told_at_once(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |_| {}).await;
        let (_, access) = app.signed_in("hedy").await;
        let old_link = catcher.nth_to(&email("hedy"), 1).await.token("verify-email");
        let change = json!({"email": "hedy@new.example", "current_password": PASSWORD});
        let patched: Value = app.send_json(Method::PATCH, "/v1/me", Some(&access), &change).await.json().await.unwrap();
        assert_eq!((patched["email"].as_str(), patched["pending_email"].as_str()), (Some(email("hedy").as_str()), Some("hedy@new.example")));
        let notice = catcher.nth_to(&email("hedy"), 2).await;
        assert!(notice.subject().contains("change of your") && notice.text.contains("hedy@new.example"), "{}", notice.text);
        // Until the new address confirms, reset links go to the old one only.
        assert_eq!(app.post("/v1/auth/password/forgot", &json!({"email": "hedy@new.example"})).await.status(), 202);
        assert_eq!(app.post("/v1/auth/password/forgot", &json!({"username": "hedy"})).await.status(), 202);
        let reset_link = catcher.nth_to(&email("hedy"), 3).await.token("reset-password");
        let fresh = catcher.nth_to("hedy@new.example", 1).await.token("verify-email");
        let verified = app.post("/v1/auth/verify-email", &json!({"token": fresh})).await;
        let user = verified.json::<Value>().await.unwrap()["user"].clone();
        assert_eq!((user["email"].as_str(), user["email_verified"].as_bool()), (Some("hedy@new.example"), Some(true)));
        assert_eq!(user["pending_email"], Value::Null);
        let changed = catcher.nth_to(&email("hedy"), 4).await;
        assert!(changed.subject().contains("e-mail address was changed") && changed.text.contains("hedy@new.example"));
        assert_eq!(catcher.received().iter().filter(|m| m.to.contains(&"hedy@new.example".to_owned())).count(), 1, "no reset link went to the pending address");
        // What was mailed to the old address is dead now.
        assert_problem(reset(&app, &reset_link, NEW_PASSWORD).await, 401, "invalid_token").await;
        assert_problem(app.post("/v1/auth/verify-email", &json!({"token": old_link})).await, 401, "invalid_token").await;
    }

    async fn a_stolen_access_token_cannot_move_the_address(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |_| {}).await;
        let (_, stolen) = app.signed_in("lise").await;
        let to_thief = json!({"email": "thief@evil.example"});
        let problem = assert_problem(app.send_json(Method::PATCH, "/v1/me", Some(&stolen), &to_thief).await, 422, "validation_failed").await;
        assert_eq!(field_codes(&problem), vec![("current_password".to_owned(), "required".to_owned())]);
        let guessed = json!({"email": "thief@evil.example", "current_password": "a wrong guess!"});
        assert_problem(app.send_json(Method::PATCH, "/v1/me", Some(&stolen), &guessed).await, 403, "wrong_password").await;
        let me: Value = app.get("/v1/me", Some(&stolen)).await.json().await.unwrap();
        assert_eq!((me["email"].as_str(), me["pending_email"].as_str()), (Some(email("lise").as_str()), None));
        assert_eq!(app.post("/v1/auth/password/forgot", &json!({"email": "thief@evil.example"})).await.status(), 202);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(catcher.received().iter().all(|m| !m.to.contains(&"thief@evil.example".to_owned())), "nothing reached the thief");
    }

    async fn a_new_password_cancels_a_pending_change_of_address(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |_| {}).await;
        let (_, access) = app.signed_in("emmy").await;
        // Someone who knows the password asks to move the account; the owner changes it.
        let change = json!({"email": "thief@evil.example", "current_password": PASSWORD});
        assert_eq!(app.send_json(Method::PATCH, "/v1/me", Some(&access), &change).await.status(), 200);
        let link = catcher.nth_to("thief@evil.example", 1).await.token("verify-email");
        let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
        assert_eq!(app.send_json(Method::POST, "/v1/me/password", Some(&access), &body).await.status(), 204);
        assert_problem(app.post("/v1/auth/verify-email", &json!({"token": link})).await, 401, "invalid_token").await;
        let me: Value = app.get("/v1/me", Some(&access)).await.json().await.unwrap();
        assert_eq!((me["email"].as_str(), me["pending_email"].as_str()), (Some(email("emmy").as_str()), None));
    }

    async fn an_address_removed_or_changed_kills_the_reset_links_already_sent(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |_| {}).await;
        let (_, access) = app.signed_in("mary").await;
        assert_eq!(app.post("/v1/auth/password/forgot", &json!({"username": "mary"})).await.status(), 202);
        let reset_link = catcher.nth_to(&email("mary"), 2).await.token("reset-password");
        let body = json!({"email": null, "current_password": PASSWORD});
        let me: Value = app.send_json(Method::PATCH, "/v1/me", Some(&access), &body).await.json().await.unwrap();
        assert_eq!(me["email"], Value::Null);
        let removed = catcher.nth_to(&email("mary"), 3).await;
        assert!(removed.text.contains("removed"), "{}", removed.text);
        assert_problem(reset(&app, &reset_link, NEW_PASSWORD).await, 401, "invalid_token").await;
    }

    async fn links_go_to_the_application_when_it_has_pages_of_its_own_and_changes_are_notified(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |config| config.mail.app_url = flag("--app-url", "https://app.example/account/").mail.app_url).await;
        let (_, access) = app.signed_in("katherine").await;
        let link = catcher.nth_to(&email("katherine"), 1).await.link("verify-email");
        assert!(link.starts_with("https://app.example/account/verify-email?token="), "{link}");
        let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
        let changed = app.send_json(Method::POST, "/v1/me/password", Some(&access), &body).await;
        assert_eq!(changed.status(), 204);
        let notice = catcher.nth_to(&email("katherine"), 2).await;
        assert!(notice.subject().contains("password was changed"), "{}", notice.subject());
        assert!(notice.text.contains("Content-Type: text/html") && notice.text.contains("Content-Type: text/plain"));
    }

    async fn queued_mail_survives_a_restart_while_the_server_is_down_and_arrives_exactly_once(backend) {
        let port = MailCatcher::free_port();
        let app = spawn_app_with(backend, |config| {
            config.mail.smtp_url = Some(SecretUrl::new(&MailCatcher::url(port)));
            config.mail.retry_delay = Duration::from_millis(100);
        })
        .await;
        for name in ["one", "two", "three"] {
            app.register_user(name).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox").await, 3, "queued while the server is down");
        assert!(app.db.count("SELECT MAX(attempts) FROM outbox").await >= 1, "and retried");

        let app = app.restart().await;
        let second_node = app.another_node().await;
        let catcher = MailCatcher::start_on(port).await;
        let mails = catcher.wait_for(3).await;
        // Both nodes poll the same outbox; give a duplicate every chance to show up.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let mut to: Vec<String> = catcher.received().iter().flat_map(|m| m.to.clone()).collect();
        to.sort();
        assert_eq!(to, [email("one"), email("three"), email("two")], "{mails:#?}");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox").await, 0);
        drop(second_node);
    }

    async fn several_nodes_share_the_outbox_and_send_each_mail_once(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |_| {}).await;
        let nodes = [app.another_node().await, app.another_node().await];
        for n in 0..12 {
            let node = if n % 3 == 0 { &app } else { &nodes[n % 2] };
            node.register_user(&format!("member{n}")).await;
        }
        catcher.wait_for(12).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let mut to: Vec<String> = catcher.received().iter().flat_map(|m| m.to.clone()).collect();
        to.sort();
        to.dedup();
        assert_eq!((catcher.received().len(), to.len()), (12, 12));
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        assert!(metrics.contains("tessera_mail_sent_total"), "{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_smtp_server_mail_goes_to_the_log_and_leaves_the_outbox() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register_user("devmode").await;
    for _ in 0..100 {
        if app.db.count("SELECT COUNT(*) FROM outbox").await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the log transport never drained the outbox");
}
