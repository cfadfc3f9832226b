//! Mail that cannot be a weapon: a per-address limit that drops silently, and no
//! attacker-written names in mails to addresses nobody has verified.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;
use crate::mail::{app_with_mail, email, forgot};
use crate::smtp::MailCatcher;

each_backend! {
    async fn fifty_forgot_requests_for_one_address_mail_it_at_most_the_limit(backend) {
        let catcher = MailCatcher::start().await;
        let app = Arc::new(app_with_mail(backend, &catcher, |_| {}).await);
        app.register_user("ken").await;
        catcher.nth_to(&email("ken"), 1).await;
        let requests = (0..50).map(|n| {
            let app = app.clone();
            // Half by name, half by address: both reach the one mailbox.
            let body = if n % 2 == 0 { json!({"username": "ken"}) } else { json!({"email": email("ken")}) };
            tokio::spawn(async move {
                let answer = forgot(&app, &body).await;
                (answer.status().as_u16(), answer.text().await.unwrap())
            })
        });
        let mut answers = Vec::new();
        for request in requests.collect::<Vec<_>>() {
            answers.push(request.await.unwrap());
        }
        assert!(answers.iter().all(|answer| *answer == answers[0]), "every answer is the same: {answers:?}");
        assert_eq!(answers[0].0, 202);
        // The verification mail at registration counted too: 5 in all for the hour.
        catcher.nth_to(&email("ken"), 5).await;
        let dropped = "tessera_mail_over_address_limit_total 46";
        for _ in 0..100 {
            if app.get("/metrics", None).await.text().await.unwrap().contains(dropped) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        assert!(metrics.contains(dropped), "{metrics}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let to_ken = catcher.received().iter().filter(|m| m.to.contains(&email("ken"))).count();
        assert_eq!(to_ken, 5);
    }

    async fn names_are_not_mailed_to_addresses_nobody_has_verified(backend) {
        let catcher = MailCatcher::start().await;
        let app = app_with_mail(backend, &catcher, |_| {}).await;
        let lure = "Prize winner: call +1 555 0100";
        let body = json!({"username": "mallory", "email": "victim@example.com", "password": PASSWORD, "display_name": lure});
        assert_eq!(app.register(&body).await.status(), 201);
        let verification = catcher.nth_to("victim@example.com", 1).await;
        assert!(!verification.text.contains(lure) && !verification.text.contains("mallory"), "{}", verification.text);
        assert!(verification.text.contains("Hello,"), "{}", verification.text);
        // Once the address is verified, its owner's own name greets them.
        let token = verification.token("verify-email");
        assert_eq!(app.post("/v1/auth/verify-email", &json!({"token": token})).await.status(), 200);
        let access = app.token("mallory", PASSWORD).await;
        let change = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase 42"});
        assert_eq!(app.send_json(Method::POST, "/v1/me/password", Some(&access), &change).await.status(), 204);
        let notice = catcher.nth_to("victim@example.com", 2).await;
        assert!(notice.text.contains(&format!("Hello {lure},")), "{}", notice.text);
    }
}
