//! Secrets at rest: with a master key no signing key, server secret or TOTP secret is stored in
//! clear, a database in clear is sealed in place, and a sealed database is useless without its
//! key.

use secrecy::{ExposeSecret as _, SecretString};
use tessera::app::Application;
use tessera::service::sealing::new_master_key;

use crate::helpers::*;
use crate::mfa::{code, enrol, first_step, second_step};

const CLEAR_KEYS: &str = "SELECT COUNT(*) FROM signing_keys WHERE secret_key NOT LIKE 'sealed:v1:%'";
const CLEAR_SECRETS: &str = "SELECT COUNT(*) FROM server_secrets WHERE secret NOT LIKE 'sealed:v1:%'";
const SECRETS: &str = "SELECT COUNT(*) FROM server_secrets";
const CLEAR_TOTP: &str = "SELECT COUNT(*) FROM totp_factors WHERE secret NOT LIKE 'sealed:v1:%'";

/// Signs `username` in with the password and the app's next code.
async fn signs_in_with_code(app: &TestApp, username: &str, secret: &str) -> bool {
    let mfa_token = first_step(app, username).await;
    let body = serde_json::json!({"mfa_token": mfa_token, "totp_code": code(secret, 1)});
    second_step(app, &body).await.status() == 200
}

/// Why the application cannot start with `key` on `db`.
async fn refusal(db: &TestDb, key: Option<SecretString>) -> String {
    let mut config = base_config(db);
    config.set_master_key(key);
    Application::build(&config).await.err().map(|e| e.to_string()).unwrap_or_default()
}

each_backend! {
    async fn with_a_master_key_no_secret_is_stored_in_clear_and_tokens_outlive_a_restart(backend) {
        let key = new_master_key();
        let app = spawn_app_with(backend, |config| config.set_master_key(Some(key.clone()))).await;
        let (_, token) = app.signed_in("ada").await;
        let (secret, _) = enrol(&app, &token).await;
        assert_eq!((app.db.count(CLEAR_KEYS).await, app.db.count(CLEAR_SECRETS).await), (0, 0));
        assert_eq!(app.db.count(CLEAR_TOTP).await, 0);
        assert_eq!(app.db.count(SECRETS).await, 2, "the refresh successor secret and the cursor key");
        let app = app.restart().await;
        assert_eq!(app.get("/v1/me", Some(&token)).await.status(), 200);
        assert!(signs_in_with_code(&app, "ada", &secret).await);
    }

    async fn a_database_in_clear_is_sealed_in_place_and_then_needs_its_key(backend) {
        let app = spawn_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let (secret, _) = enrol(&app, &token).await;
        assert_eq!(app.db.count(CLEAR_KEYS).await, 1, "development: in clear, with a warning");
        assert_eq!(app.db.count(CLEAR_TOTP).await, 1);
        let key = new_master_key();
        let seal = || {
            tessera()
                .env("TESSERA_DATABASE_URL", &app.db.url)
                .env("TESSERA_MASTER_KEY", key.expose_secret())
                .args(["keys", "seal"])
                .output()
                .unwrap()
        };
        let sealed = seal();
        assert!(sealed.status.success(), "{}", String::from_utf8_lossy(&sealed.stderr));
        let said = String::from_utf8_lossy(&sealed.stdout).into_owned();
        assert!(said.starts_with("sealed 1 signing keys, 2 server secrets and 1 TOTP secrets\nnew signing key"), "{said}");
        assert_eq!((app.db.count(CLEAR_KEYS).await, app.db.count(CLEAR_SECRETS).await), (0, 0));
        assert_eq!(app.db.count(CLEAR_TOTP).await, 0);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL").await, 1, "a key born sealed is current");
        let rotate = tessera().env("TESSERA_DATABASE_URL", &app.db.url).args(["keys", "rotate"]).output().unwrap();
        assert!(!rotate.status.success(), "without the key a rotation would store a key in clear");
        assert_eq!(String::from_utf8_lossy(&seal().stdout).trim(), "sealed 0 signing keys, 0 server secrets and 0 TOTP secrets", "again: nothing to do");
        let without = refusal(&app.db, None).await;
        assert!(without.contains("TESSERA_MASTER_KEY"), "{without}");
        let wrong = refusal(&app.db, Some(new_master_key())).await;
        assert!(wrong.contains("wrong TESSERA_MASTER_KEY"), "{wrong}");
        let app = app.restart_with(|config| config.set_master_key(Some(key.clone()))).await;
        assert_eq!(app.get("/v1/me", Some(&token)).await.status(), 200, "tokens signed before sealing still verify");
        assert!(signs_in_with_code(&app, "ada", &secret).await, "the app's secret opens with the key");
    }

    async fn retired_signing_keys_are_deleted_once_no_token_can_need_them(backend) {
        use tessera::domain::time::Timestamp;
        use tessera::service::cleanup::{Retention, sweep};
        use tessera::storage::Store;
        let app = spawn_app(backend).await;
        let rotated = tessera().env("TESSERA_DATABASE_URL", &app.db.url).args(["keys", "rotate"]).output().unwrap();
        assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM signing_keys").await, 2);
        let store = Store::connect(&app.db.url, 2).await.unwrap();
        let year = Duration::from_secs(365 * 86_400);
        let still_needed = Retention { signing_keys: Duration::from_secs(3600), audit_events: year };
        assert_eq!(sweep(&store, Timestamp::now(), still_needed).await.unwrap().signing_keys, 0, "its tokens may still live");
        let expired = Retention { signing_keys: Duration::ZERO, audit_events: year };
        assert_eq!(sweep(&store, Timestamp::now(), expired).await.unwrap().signing_keys, 1);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM signing_keys").await, 1, "the current key stays");
        store.close().await;
    }
}
