//! Nothing stays in the outbox forever: a mail whose link expired is dropped unsent, one that
//! keeps failing is set aside for an operator, who can list and requeue it; and the log
//! transport, which writes links into the log, is refused in production.

use std::time::Duration;

use tessera::app::Application;
use tessera::config::{Environment, SecretUrl};

use crate::helpers::*;
use crate::smtp::MailCatcher;

const QUEUED: &str = "SELECT COUNT(*) FROM outbox WHERE failed_at IS NULL";
const DEAD: &str = "SELECT COUNT(*) FROM outbox WHERE failed_at IS NOT NULL";

/// An application whose SMTP server is not listening (yet) on `port`.
async fn app_with_a_dead_server(backend: Backend, port: u16, adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(backend, |config| {
        config.mail.smtp_url = Some(SecretUrl::new(&MailCatcher::url(port)));
        config.mail.retry_delay = Duration::from_millis(50);
        adjust(config);
    })
    .await
}

async fn wait_until(app: &TestApp, query: &str, expected: i64) {
    for _ in 0..100 {
        if app.db.count(query).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{query} never became {expected}");
}

fn mail_command(app: &TestApp, args: &[&str]) -> String {
    let output = tessera().env("TESSERA_DATABASE_URL", &app.db.url).arg("mail").args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

each_backend! {
    async fn a_mail_whose_link_expired_is_dropped_not_sent(backend) {
        let port = MailCatcher::free_port();
        let app = app_with_a_dead_server(backend, port, |config| config.mail.verify_token_ttl = Duration::from_secs(1)).await;
        app.register_user("ada").await;
        assert_eq!(app.db.count(QUEUED).await, 1);
        wait_until(&app, "SELECT COUNT(*) FROM outbox", 0).await;
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        assert!(metrics.contains("tessera_mail_expired_total 1"), "{metrics}");
        let catcher = MailCatcher::start_on(port).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(catcher.received().is_empty(), "the dead link was never sent");
    }

    async fn a_mail_that_keeps_failing_is_set_aside_listed_and_requeued(backend) {
        let port = MailCatcher::free_port();
        let app = app_with_a_dead_server(backend, port, |config| config.mail.give_up_after = Duration::from_secs(1)).await;
        app.register_user("grace").await;
        wait_until(&app, DEAD, 1).await;
        let listed = mail_command(&app, &["failed"]);
        assert!(listed.contains("grace@example.com") && listed.contains("Confirm your e-mail address"), "{listed}");
        assert!(!listed.contains("token="), "the body, with its link, is never shown: {listed}");
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        assert!(metrics.contains("tessera_mail_dead_letters 1") && metrics.contains("tessera_mail_dead_lettered_total 1"), "{metrics}");
        let catcher = MailCatcher::start_on(port).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(catcher.received().is_empty(), "a dead letter waits for an operator");
        let id = listed.split('\t').next().unwrap();
        assert_eq!(mail_command(&app, &["retry", id]).trim(), "requeued 1 mails");
        assert_eq!(catcher.nth_to("grace@example.com", 1).await.subject(), "Confirm your e-mail address for tessera");
        wait_until(&app, "SELECT COUNT(*) FROM outbox", 0).await;
        assert_eq!(mail_command(&app, &["retry", "--all"]).trim(), "requeued 0 mails");
    }
}

#[tokio::test]
async fn production_refuses_to_write_mail_into_the_log() {
    let db = TestDb::create(Backend::Sqlite).await;
    let mut config = base_config(&db);
    config.environment = Environment::Production;
    config.set_master_key(Some(tessera::service::sealing::new_master_key()));
    let refused = Application::build(&config).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("TESSERA_SMTP_URL"), "{refused}");
    config.mail.smtp_url = Some(SecretUrl::new(&MailCatcher::url(MailCatcher::free_port())));
    assert!(Application::build(&config).await.is_ok(), "with an SMTP server it starts");
    config.set_master_key(None);
    let refused = Application::build(&config).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("TESSERA_MASTER_KEY"), "production keeps no secret in clear: {refused}");
}
