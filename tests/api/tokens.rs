//! Access tokens: forgeries of every kind are refused; keys survive restarts and rotate.

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::Signer as _;
use hmac::Mac as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn decode(part: &str) -> Value {
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

pub fn header_of(token: &str) -> Value {
    decode(token.split('.').next().unwrap())
}

fn claims_of(token: &str) -> Value {
    decode(token.split('.').nth(1).unwrap())
}

fn encode(value: &Value) -> String {
    B64.encode(serde_json::to_vec(value).unwrap())
}

fn ed25519_token(key: &ed25519_dalek::SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", encode(header), encode(claims));
    format!("{input}.{}", B64.encode(key.sign(input.as_bytes()).to_bytes()))
}

fn hs256_token(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", encode(header), encode(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// The server's current signing key, read from its database.
async fn server_key(app: &TestApp) -> ed25519_dalek::SigningKey {
    let secret = app.db.fetch_string("SELECT secret_key FROM signing_keys WHERE retired_at IS NULL").await;
    let seed: [u8; 32] = B64.decode(secret).unwrap().try_into().unwrap();
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn rotate_keys(database_url: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env("TESSERA_DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

each_backend! {
    async fn forged_and_misused_access_tokens_are_refused(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let login: Value = app.login("ada", PASSWORD).await.json().await.unwrap();
        let token = login["access_token"].as_str().unwrap();
        let refresh = login["refresh_token"].as_str().unwrap();
        let (header, claims) = (header_of(token), claims_of(token));
        let key = server_key(&app).await;
        let with = |field: &str, value: Value| {
            let mut c = claims.clone();
            c[field] = value;
            c
        };
        // The harness is sound: a token it makes with the server's key and true claims passes.
        let genuine = ed25519_token(&key, &header, &with("jti", json!("another")));
        assert_eq!(app.get("/v1/me", Some(&genuine)).await.status(), StatusCode::OK);

        let public = key.verifying_key().to_bytes();
        let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]});
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let forged = [
            ("alg none", format!("{}.{}.", encode(&json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]})), encode(&claims))),
            ("HS256 with the public key", hs256_token(&public, &hs_header, &claims)),
            ("HS256 with the public key's base64", hs256_token(B64.encode(public).as_bytes(), &hs_header, &claims)),
            ("role raised in the payload", format!("{}.{}.{}", token.split('.').next().unwrap(), encode(&with("role", json!("owner"))), token.split('.').nth(2).unwrap())),
            ("expired", ed25519_token(&key, &header, &with("exp", json!(now() - 120)))),
            ("not yet valid", ed25519_token(&key, &header, &with("nbf", json!(now() + 600)))),
            ("wrong issuer", ed25519_token(&key, &header, &with("iss", json!("http://evil.example")))),
            ("wrong audience", ed25519_token(&key, &header, &with("aud", json!("another-service")))),
            ("unknown kid", ed25519_token(&stranger, &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "not-ours"}), &claims)),
            ("a stranger's key under our kid", ed25519_token(&stranger, &header, &claims)),
            ("not an access token", ed25519_token(&key, &json!({"alg": "EdDSA", "typ": "JWT", "kid": header["kid"]}), &claims)),
            ("garbage", "not.a.token".to_owned()),
            ("the refresh token", refresh.to_owned()),
        ];
        for (what, forged) in forged {
            let response = app.get("/v1/me", Some(&forged)).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
            assert_problem(response, 401, "unauthenticated").await;
        }
    }

    async fn tokens_issued_before_a_restart_verify_after_it(backend) {
        let app = spawn_app(backend).await;
        app.register_user("ada").await;
        let login: Value = app.login("ada", PASSWORD).await.json().await.unwrap();
        let app = app.restart().await;
        let token = login["access_token"].as_str().unwrap();
        assert_eq!(app.get("/v1/me", Some(token)).await.status(), StatusCode::OK);
        let refreshed = app.post("/v1/auth/refresh", &json!({"refresh_token": login["refresh_token"]})).await;
        assert_eq!(refreshed.status(), StatusCode::OK);
    }

    async fn after_keys_rotate_old_tokens_verify_new_ones_carry_the_new_kid_and_jwks_lists_both(backend) {
        let app = spawn_app(backend).await;
        let (_, old_token) = app.signed_in("ada").await;
        let old_kid = header_of(&old_token)["kid"].as_str().unwrap().to_owned();
        assert_eq!(jwks_kids(&app).await, vec![old_kid.clone()]);
        let url = app.db.url.clone();
        tokio::task::spawn_blocking(move || rotate_keys(&url)).await.unwrap();
        let app = app.restart().await;
        assert_eq!(app.get("/v1/me", Some(&old_token)).await.status(), StatusCode::OK);
        let new_token = app.token("ada", PASSWORD).await;
        let new_kid = header_of(&new_token)["kid"].as_str().unwrap().to_owned();
        assert_ne!(new_kid, old_kid);
        let mut kids = jwks_kids(&app).await;
        kids.sort();
        let mut expected = vec![old_kid, new_kid];
        expected.sort();
        assert_eq!(kids, expected);
        let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
        assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k["kty"] == "OKP" && k["alg"] == "EdDSA" && k.get("d").is_none()));
    }

    async fn a_node_started_before_a_rotation_accepts_tokens_signed_with_the_new_key(backend) {
        let old_node = spawn_app(backend).await;
        old_node.register_user("ada").await;
        let url = old_node.db.url.clone();
        tokio::task::spawn_blocking(move || rotate_keys(&url)).await.unwrap();
        let new_node = old_node.another_node().await;
        let token = new_node.token("ada", PASSWORD).await;
        assert_eq!(old_node.get("/v1/me", Some(&token)).await.status(), StatusCode::OK);
    }

    async fn hs256_mode_signs_with_the_shared_secret_and_publishes_no_keys(backend) {
        let secret = "a shared secret of at least thirty-two bytes";
        let app = spawn_app_with(backend, |config| config.jwt_secret = Some(secret.into())).await;
        let (_, token) = app.signed_in("ada").await;
        assert_eq!(header_of(&token)["alg"], "HS256");
        assert_eq!(app.get("/v1/me", Some(&token)).await.status(), StatusCode::OK);
        assert!(jwks_kids(&app).await.is_empty());
        // A token signed with the secret by anyone who has it passes; with another secret not.
        let forged = hs256_token(b"another secret that is long enough!!", &header_of(&token), &claims_of(&token));
        assert_problem(app.get("/v1/me", Some(&forged)).await, 401, "unauthenticated").await;
    }
}
