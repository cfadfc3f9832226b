//! The hosted pages in a real headless Chromium, driven over the W3C WebDriver protocol by
//! chromedriver: open the reset link from a received mail, type a new password, submit, see
//! the success page, then sign in with it; add a passkey on the security page with WebDriver's
//! virtual authenticator and sign in with it, alone and after a password. Skipped with a notice where chromedriver is absent,
//! unless `TESSERA_TEST_BROWSER=required`; `.ci/run` installs Debian's `chromium` and
//! `chromium-driver` and requires it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::smtp::MailCatcher;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A browser session; the browser and its driver go away with it.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.driver.kill().ok();
        self.driver.wait().ok();
        std::fs::remove_dir_all(&self.profile).ok();
    }
}

impl Browser {
    /// `None` (after a notice) when this machine has no chromedriver.
    async fn start() -> Option<Self> {
        if !std::path::Path::new(CHROMEDRIVER).exists() {
            let required = std::env::var("TESSERA_TEST_BROWSER").is_ok_and(|v| v == "required");
            assert!(!required, "TESSERA_TEST_BROWSER=required, but {CHROMEDRIVER} is missing");
            eprintln!(
                "skipping the browser test: {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = MailCatcher::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(format!("tessera-chromium-{}", uuid::Uuid::now_v7().simple()));
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}});
        let created: Value =
            http.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session =
            created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_owned();
        Some(Self { driver, base, session, http, profile })
    }

    /// The `value` of a WebDriver answer, errors included.
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let request = self.http.request(method, url);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let value = self.send(method, path, body).await;
        assert!(value.get("error").is_none(), "{path}: {value}");
        value
    }

    async fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn find(&self, css: &str) -> String {
        let found =
            self.command(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap().to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({"text": text}))).await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    /// Runs `script` in the page; answers what it returns.
    async fn execute(&self, script: &str) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Gives the browser a platform authenticator that keeps discoverable credentials and
    /// verifies its user (as a phone's or a laptop's does), answering without a prompt.
    async fn add_virtual_authenticator(&self) {
        let options = json!({"protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
            "hasUserVerification": true, "isUserConsenting": true, "isUserVerified": true});
        self.command(reqwest::Method::POST, "/webauthn/authenticator", Some(options)).await;
    }

    /// Waits (at most 10 s) for the page after a form was sent to show an element of `css`
    /// whose text satisfies `expected`; the old page may linger for a moment after a click.
    async fn wait_for_text(&self, css: &str, expected: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..200 {
            let body = json!({"using": "css selector", "value": css});
            let found = self.send(reqwest::Method::POST, "/element", Some(body)).await;
            if let Some(element) = found.as_object().and_then(|o| o.values().next()).and_then(Value::as_str) {
                let text = self.send(reqwest::Method::GET, &format!("/element/{element}/text"), None).await;
                last = text.as_str().unwrap_or_default().to_owned();
                if expected(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} never showed what was expected; last: {last:?}");
    }
}

each_backend! {
    async fn a_person_resets_a_password_and_confirms_an_address_in_a_real_browser(backend) {
        let Some(browser) = Browser::start().await else { return };
        let catcher = MailCatcher::start().await;
        let port = catcher.port;
        // No public URL: links then point at the address the app really listens on.
        let app = spawn_app_with(backend, move |config| {
            config.mail.smtp_url = Some(SecretUrl::new(&MailCatcher::url(port)));
            config.public_url = None;
        })
        .await;
        app.register_user("margaret").await;
        let verification = catcher.nth_to("margaret@example.com", 1).await.link("verify-email");
        browser.open(&verification).await;
        browser.wait_for_text("h1", |t| t == "Confirm your e-mail address").await;
        browser.click("button").await;
        browser.wait_for_text("h1", |t| t == "Address confirmed").await;

        app.post("/v1/auth/password/forgot", &json!({"username": "margaret"})).await;
        let link = catcher.nth_to("margaret@example.com", 2).await.link("reset-password");
        assert!(link.starts_with(&app.address), "{link}");
        browser.open(&link).await;
        browser.wait_for_text(".rules", |t| t.contains("not one of the commonly used passwords")).await;
        browser.type_into("#new_password", "password").await;
        browser.type_into("#confirm_password", "password").await;
        browser.click("button").await;
        browser.wait_for_text(".error", |t| t.contains("common")).await;
        browser.type_into("#new_password", "apollo guidance computer").await;
        browser.type_into("#confirm_password", "apollo guidance computer").await;
        browser.click("button").await;
        browser.wait_for_text("h1", |t| t == "Password changed").await;
        assert_eq!(app.login("margaret", "apollo guidance computer").await.status(), 200);

        browser.open(&link).await;
        browser.type_into("#new_password", "another good passphrase").await;
        browser.type_into("#confirm_password", "another good passphrase").await;
        browser.click("button").await;
        browser.wait_for_text("h1", |t| t == "This link does not work").await;
        browser.command(reqwest::Method::DELETE, "", None).await;
    }

    async fn a_person_adds_a_passkey_and_signs_in_with_it_in_a_real_browser(backend) {
        let Some(browser) = Browser::start().await else { return };
        // No public URL: the relying party is then localhost, at the port the app listens on.
        let app = spawn_app_with(backend, |config| config.public_url = None).await;
        app.signed_in("grace").await;
        let base = app.address.replace("127.0.0.1", "localhost");
        browser.add_virtual_authenticator().await;
        browser.open(&format!("{base}/sign-in")).await;
        browser.wait_for_text("h1", |t| t == "Sign in").await;
        browser.type_into("#login", "grace").await;
        browser.type_into("#password", PASSWORD).await;
        browser.click("#password-form button").await;
        browser.wait_for_text("#done h2", |t| t == "Signed in").await;
        browser.click("#done a").await;
        browser.wait_for_text("#status", |t| t.contains("passkeys: 0")).await;
        browser.type_into("#current-password", PASSWORD).await;
        browser.type_into("#passkey-name", "Chromium").await;
        browser.click("#add-passkey").await;
        let codes = browser.wait_for_text("#recovery-codes", |t| t.lines().count() == 10).await;
        assert!(codes.lines().all(|code| code.len() == 19), "{codes}");
        browser.wait_for_text("#passkeys", |t| t.contains("Chromium")).await;
        browser.wait_for_text("#status", |t| t.contains("passkeys: 1")).await;

        // Signed out, the passkey alone signs in: no name, no password.
        browser.click("#sign-out").await;
        browser.wait_for_text("h1", |t| t == "Sign in").await;
        browser.click("#passkey-button").await;
        browser.wait_for_text("#done h2", |t| t == "Signed in").await;
        let token = browser.execute("return sessionStorage.getItem('tessera.access_token')").await;
        assert_eq!(crate::mfa::amr_of(token.as_str().unwrap()), json!(["hwk", "mfa"]));

        // After a password, the passkey is the second step.
        browser.open(&format!("{base}/sign-in")).await;
        browser.type_into("#login", "grace").await;
        browser.type_into("#password", PASSWORD).await;
        browser.click("#password-form button").await;
        browser.wait_for_text("#message", |t| t.contains("second factor")).await;
        browser.click("#passkey-second").await;
        browser.wait_for_text("#done h2", |t| t == "Signed in").await;
        let token = browser.execute("return sessionStorage.getItem('tessera.access_token')").await;
        assert_eq!(crate::mfa::amr_of(token.as_str().unwrap()), json!(["pwd", "hwk", "mfa"]));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM passkeys").await, 1);
        browser.command(reqwest::Method::DELETE, "", None).await;
    }
}
