//! Passkeys through the API, with a software authenticator (webauthn-authenticator-rs) playing
//! the browser and the device: registered with the password, listed, used as the second step
//! and alone, answers used once, changes confirmed with a current factor, removal down to the
//! password. The relying party is `localhost`, used from an application at `ORIGIN`.

use reqwest::Method;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use crate::helpers::*;
use crate::mfa::{amr_of, code};

/// The application's origin the passkeys are used from.
const ORIGIN: &str = "http://localhost:3000";

/// A device holding one passkey. The software authenticator keeps no discoverable credentials,
/// so for a sign-in without a name this plays that part as a phone or a password manager does:
/// it picks its own credential and answers with the user handle it was registered with.
pub struct Device {
    authenticator: WebauthnAuthenticator<SoftPasskey>,
    credential_id: Option<Value>,
    user_handle: Option<Value>,
}

impl Device {
    pub fn new() -> Self {
        // User verification is claimed (a PIN or a fingerprint, on a real device).
        Self {
            authenticator: WebauthnAuthenticator::new(SoftPasskey::new(true)),
            credential_id: None,
            user_handle: None,
        }
    }

    /// Makes a credential for `options` (as `navigator.credentials.create()`).
    pub fn create(&mut self, options: &Value) -> Value {
        let options: CreationChallengeResponse = serde_json::from_value(options.clone()).unwrap();
        let created = self.authenticator.do_registration(Url::parse(ORIGIN).unwrap(), options.clone()).unwrap();
        let created = serde_json::to_value(created).unwrap();
        self.credential_id = Some(created["rawId"].clone());
        self.user_handle = Some(serde_json::to_value(&options.public_key.user.id).unwrap());
        created
    }

    /// Answers `options` (as `navigator.credentials.get()`).
    pub fn get(&mut self, options: &Value) -> Value {
        let discoverable = options["publicKey"]["allowCredentials"].as_array().is_none_or(Vec::is_empty);
        self.answer(options, discoverable)
    }

    /// Answers `options` with this device's credential whatever they allow: an attacker's key.
    pub fn answer_anyway(&mut self, options: &Value) -> Value {
        self.answer(options, true)
    }

    fn answer(&mut self, options: &Value, discoverable: bool) -> Value {
        let mut options = options.clone();
        if discoverable {
            options["publicKey"]["allowCredentials"] =
                json!([{"type": "public-key", "id": self.credential_id.clone().unwrap()}]);
        }
        let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self.authenticator.do_authentication(Url::parse(ORIGIN).unwrap(), options).unwrap();
        let mut answer = serde_json::to_value(answer).unwrap();
        if discoverable {
            answer["response"]["userHandle"] = self.user_handle.clone().unwrap();
        }
        answer
    }
}

/// Serves with passkeys on `localhost`, used from `ORIGIN`.
pub async fn spawn_passkey_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |config| {
        config.webauthn_rp_id = Some("localhost".into());
        config.webauthn_origins = flag("--webauthn-origins", ORIGIN).webauthn_origins;
    })
    .await
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let code = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(code, status, "{body}");
    body
}

/// Registers a passkey on `device` for the holder of `token`, confirming with `proof` (fields
/// beside the password); answers the finish's body.
pub async fn register(app: &TestApp, token: &str, device: &mut Device, proof: Value, name: &str) -> Value {
    let mut body = json!({"current_password": PASSWORD});
    body.as_object_mut().unwrap().extend(proof.as_object().unwrap().clone());
    let started = json_of(app.send_json(Method::POST, "/v1/me/passkeys/start", Some(token), &body).await, 200).await;
    let credential = device.create(&started["options"]);
    let finish = json!({"challenge_id": started["challenge_id"], "credential": credential, "name": name});
    json_of(app.send_json(Method::POST, "/v1/me/passkeys/finish", Some(token), &finish).await, 201).await
}

/// A passkey answer for a change of factors, from `device`.
async fn step_up(app: &TestApp, token: &str, device: &mut Device) -> Value {
    let challenge =
        json_of(app.send_json(Method::POST, "/v1/me/passkeys/challenge", Some(token), &json!({})).await, 200).await;
    json!({"challenge_id": challenge["challenge_id"], "credential": device.get(&challenge["options"])})
}

/// Signs in with `device` alone; answers the finish's response.
pub async fn sign_in_alone(app: &TestApp, device: &mut Device) -> reqwest::Response {
    let started = json_of(app.client.post(app.url("/v1/auth/passkey/start")).send().await.unwrap(), 200).await;
    let answer = device.get(&started["options"]);
    app.post("/v1/auth/passkey/finish", &json!({"challenge_id": started["challenge_id"], "credential": answer})).await
}

async fn status(app: &TestApp, token: &str) -> Value {
    app.get("/v1/me/mfa", Some(token)).await.json().await.unwrap()
}

each_backend! {
    async fn a_passkey_signs_in_alone_and_as_the_second_step_once_per_answer(backend) {
        let app = spawn_passkey_app(backend).await;
        let (ada, token) = app.signed_in("ada").await;
        let before = app.token("ada", PASSWORD).await;
        let mut device = Device::new();
        let wrong = json!({"current_password": "not the password"});
        assert_problem(app.send_json(Method::POST, "/v1/me/passkeys/start", Some(&token), &wrong).await, 403, "wrong_password").await;
        let created = register(&app, &token, &mut device, json!({}), "Laptop").await;
        assert_eq!(created["name"], "Laptop");
        assert!(created["last_used_at"].is_null());
        assert_eq!(created["recovery_codes"].as_array().unwrap().len(), 10, "the first factor brings recovery codes");
        assert_problem(app.get("/v1/me", Some(&before)).await, 401, "unauthenticated").await;
        assert_eq!(status(&app, &token).await, json!({"totp": false, "passkeys": 1, "recovery_codes_left": 10}));
        let listed = json_of(app.get("/v1/me/passkeys", Some(&token)).await, 200).await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
        assert_eq!(listed["items"][0]["id"], created["id"]);
        assert!(listed["items"][0].get("credential").is_none(), "{listed}");

        // The password alone is not enough any more: the passkey is the second step.
        let first = assert_problem(app.login("ada", PASSWORD).await, 403, "mfa_required").await;
        assert_eq!(first["mfa_methods"], json!(["passkey", "recovery_code"]));
        let started = json_of(app.post("/v1/auth/passkey/start", &json!({"mfa_token": first["mfa_token"]})).await, 200).await;
        assert_eq!(started["options"]["publicKey"]["allowCredentials"].as_array().unwrap().len(), 1);
        assert_eq!(started["options"]["publicKey"]["userVerification"], "required");
        let answer = json!({"challenge_id": started["challenge_id"], "credential": device.get(&started["options"])});
        // Another account's passkey answers nothing for this one.
        let (_, eve_token) = app.signed_in("eve").await;
        let mut eve = Device::new();
        register(&app, &eve_token, &mut eve, json!({}), "Eve's").await;
        let stranger = json!({"challenge_id": started["challenge_id"], "credential": eve.answer_anyway(&started["options"])});
        assert_problem(app.post("/v1/auth/passkey/finish", &stranger).await, 401, "invalid_code").await;
        let signed_in = json_of(app.post("/v1/auth/passkey/finish", &answer).await, 200).await;
        assert_eq!(amr_of(signed_in["access_token"].as_str().unwrap()), json!(["pwd", "hwk", "mfa"]));
        assert_problem(app.post("/v1/auth/passkey/finish", &answer).await, 401, "invalid_code").await;
        let used = json!({"mfa_token": first["mfa_token"]});
        assert_problem(app.post("/v1/auth/passkey/start", &used).await, 401, "invalid_token").await;

        // Alone: no password, no name; the passkey names its account.
        let started = json_of(app.client.post(app.url("/v1/auth/passkey/start")).send().await.unwrap(), 200).await;
        assert!(started["options"]["publicKey"]["allowCredentials"].as_array().is_none_or(Vec::is_empty), "{started}");
        assert!(started["options"].get("mediation").is_none());
        let answer = json!({"challenge_id": started["challenge_id"], "credential": device.get(&started["options"])});
        let alone = json_of(app.post("/v1/auth/passkey/finish", &answer).await, 200).await;
        let access = alone["access_token"].as_str().unwrap();
        assert_eq!(amr_of(access), json!(["hwk", "mfa"]));
        assert_eq!(json_of(app.get("/v1/me", Some(access)).await, 200).await["id"], ada);
        assert_problem(app.post("/v1/auth/passkey/finish", &answer).await, 401, "invalid_code").await;
        let refreshed = json_of(app.post("/v1/auth/refresh", &json!({"refresh_token": alone["refresh_token"]})).await, 200).await;
        assert_eq!(amr_of(refreshed["access_token"].as_str().unwrap()), json!(["hwk", "mfa"]), "a refresh keeps the proof");
        let listed = json_of(app.get("/v1/me/passkeys", Some(access)).await, 200).await;
        assert!(listed["items"][0]["last_used_at"].is_string());
        let audited = format!("SELECT COUNT(*) FROM audit_events WHERE type = 'login.succeeded' AND user_id = '{ada}'");
        assert!(app.db.count(&audited).await >= 4);

        // An answer claiming another account (its user handle) signs in nobody.
        let (_, _) = app.signed_in("bob").await;
        let bob: String = app.db.fetch_string("SELECT id FROM users WHERE username = 'bob'").await;
        let started = json_of(app.client.post(app.url("/v1/auth/passkey/start")).send().await.unwrap(), 200).await;
        let mut forged = device.get(&started["options"]);
        forged["response"]["userHandle"] = serde_json::to_value(webauthn_rs::prelude::Base64UrlSafeData::from(uuid::Uuid::parse_str(&bob).unwrap().as_bytes().to_vec())).unwrap();
        let forged = json!({"challenge_id": started["challenge_id"], "credential": forged});
        assert_problem(app.post("/v1/auth/passkey/finish", &forged).await, 401, "invalid_code").await;
    }

    async fn one_answer_raced_by_many_sign_ins_signs_in_once(backend) {
        let app = spawn_passkey_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let mut device = Device::new();
        register(&app, &token, &mut device, json!({}), "Phone").await;
        let started = json_of(app.client.post(app.url("/v1/auth/passkey/start")).send().await.unwrap(), 200).await;
        let answer = json!({"challenge_id": started["challenge_id"], "credential": device.get(&started["options"])});
        let attempts = (0..6).map(|_| app.post("/v1/auth/passkey/finish", &answer));
        let codes: Vec<u16> = futures_util::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
        assert!(codes.iter().all(|c| *c == 200 || *c == 401), "{codes:?}");
        let sessions = app.db.count("SELECT COUNT(*) FROM sessions WHERE amr = 'hwk mfa'").await;
        assert_eq!(sessions, 1);
    }

    async fn changing_factors_needs_a_current_one_and_the_last_one_takes_the_codes_along(backend) {
        let app = spawn_passkey_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let mut laptop = Device::new();
        let created = register(&app, &token, &mut laptop, json!({}), "Laptop").await;
        let codes: Vec<String> = created["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        let signed_in = json_of(sign_in_alone(&app, &mut laptop).await, 200).await;
        let token = signed_in["access_token"].as_str().unwrap().to_owned();

        // A stolen token with the password adds nothing: a current factor is needed too.
        let bare = json!({"current_password": PASSWORD});
        let refused = assert_problem(app.send_json(Method::POST, "/v1/me/passkeys/start", Some(&token), &bare).await, 422, "validation_failed").await;
        assert_eq!(field_codes(&refused), vec![("code".to_owned(), "required".to_owned())]);
        assert_problem(app.send_json(Method::POST, "/v1/me/mfa/totp", Some(&token), &bare).await, 422, "validation_failed").await;
        let guessed = json!({"current_password": PASSWORD, "code": "ZZZZ-ZZZZ-ZZZZ-ZZZZ"});
        assert_problem(app.send_json(Method::POST, "/v1/me/passkeys/start", Some(&token), &guessed).await, 401, "invalid_code").await;
        let both = json!({"current_password": PASSWORD, "code": codes[0], "passkey": {"challenge_id": "x", "credential": {}}});
        assert_problem(app.send_json(Method::POST, "/v1/me/passkeys/start", Some(&token), &both).await, 422, "validation_failed").await;

        // With the laptop's passkey as the factor, a phone is added: no new codes this time.
        let mut phone = Device::new();
        let proof = step_up(&app, &token, &mut laptop).await;
        let second = register(&app, &token, &mut phone, json!({"passkey": proof}), "Phone").await;
        assert!(second.get("recovery_codes").is_none(), "{second}");
        assert_eq!(status(&app, &token).await, json!({"totp": false, "passkeys": 2, "recovery_codes_left": 10}));
        // A step-up answer is not a sign-in, and a sign-in answer is no step-up.
        let proof = step_up(&app, &token, &mut laptop).await;
        assert_problem(app.post("/v1/auth/passkey/finish", &proof).await, 401, "invalid_code").await;
        let started = json_of(app.client.post(app.url("/v1/auth/passkey/start")).send().await.unwrap(), 200).await;
        let sign_in_answer = json!({"challenge_id": started["challenge_id"], "credential": phone.get(&started["options"])});
        let removal = json!({"current_password": PASSWORD, "passkey": sign_in_answer});
        let path = format!("/v1/me/passkeys/{}", second["id"].as_str().unwrap());
        assert_problem(app.send_json(Method::DELETE, &path, Some(&token), &removal).await, 401, "invalid_code").await;
        // The phone's own answer removes it, and ends the sessions it may have opened.
        let phone_session = json_of(sign_in_alone(&app, &mut phone).await, 200).await;
        let removal = json!({"current_password": PASSWORD, "passkey": step_up(&app, &token, &mut phone).await});
        assert_eq!(app.send_json(Method::DELETE, &path, Some(&token), &removal).await.status().as_u16(), 204);
        let refresh = json!({"refresh_token": phone_session["refresh_token"]});
        assert_problem(app.post("/v1/auth/refresh", &refresh).await, 401, "invalid_token").await;
        assert_eq!(app.get("/v1/me", Some(&token)).await.status().as_u16(), 200, "the removing session stays");
        assert_problem(app.send_json(Method::DELETE, &path, Some(&token), &removal).await, 404, "not_found").await;
        let elsewhere = format!("/v1/me/passkeys/{}", uuid::Uuid::now_v7());
        let removal = json!({"current_password": PASSWORD, "code": codes[1]});
        assert_problem(app.send_json(Method::DELETE, &elsewhere, Some(&token), &removal).await, 404, "not_found").await;

        // An app added beside the passkey, then the passkey removed with a recovery code: the
        // app is left, and so are the codes.
        let enrolment = json!({"current_password": PASSWORD, "passkey": step_up(&app, &token, &mut laptop).await});
        let started = json_of(app.send_json(Method::POST, "/v1/me/mfa/totp", Some(&token), &enrolment).await, 200).await;
        let secret = started["secret"].as_str().unwrap().to_owned();
        let confirmed = json_of(app.send_json(Method::POST, "/v1/me/mfa/totp/confirm", Some(&token), &json!({"code": code(&secret, 0)})).await, 200).await;
        assert_eq!(confirmed["recovery_codes"], json!([]), "beside a passkey the printed codes stand");
        assert_eq!(status(&app, &token).await["recovery_codes_left"], 10);
        let tokens = json_of(sign_in_alone(&app, &mut laptop).await, 200).await;
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let codes_now = status(&app, &token).await;
        assert_eq!(codes_now["passkeys"], 1);
        let fresh: Vec<String> = {
            let body = json!({"current_password": PASSWORD, "passkey": step_up(&app, &token, &mut laptop).await});
            let made = json_of(app.send_json(Method::POST, "/v1/me/mfa/recovery-codes", Some(&token), &body).await, 200).await;
            made["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
        };
        let path = format!("/v1/me/passkeys/{}", created["id"].as_str().unwrap());
        let removal = json!({"current_password": PASSWORD, "code": fresh[0]});
        assert_eq!(app.send_json(Method::DELETE, &path, Some(&token), &removal).await.status().as_u16(), 204);
        assert_eq!(status(&app, &token).await, json!({"totp": true, "passkeys": 0, "recovery_codes_left": 9}));
        let first = assert_problem(app.login("ada", PASSWORD).await, 403, "mfa_required").await;
        assert_eq!(first["mfa_methods"], json!(["totp", "recovery_code"]));
        assert_problem(app.post("/v1/auth/passkey/start", &json!({"mfa_token": first["mfa_token"]})).await, 409, "no_passkeys").await;
        let audited = app.db.count("SELECT COUNT(*) FROM audit_events WHERE type IN ('mfa.passkey_added', 'mfa.passkey_removed')").await;
        assert_eq!(audited, 4);
    }

    async fn the_last_passkey_removed_leaves_the_password_and_an_admin_reset_removes_them_all(backend) {
        let app = spawn_passkey_app(backend).await;
        let (ada, token) = app.signed_in("ada").await;
        let mut device = Device::new();
        let created = register(&app, &token, &mut device, json!({}), "Key").await;
        let codes = created["recovery_codes"].clone();
        let path = format!("/v1/me/passkeys/{}", created["id"].as_str().unwrap());
        let removal = json!({"current_password": PASSWORD, "code": codes[0]});
        assert_eq!(app.send_json(Method::DELETE, &path, Some(&token), &removal).await.status().as_u16(), 204);
        assert_eq!(status(&app, &token).await, json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}));
        assert_eq!(app.login("ada", PASSWORD).await.status().as_u16(), 200, "the password alone signs in again");

        let token = app.token("ada", PASSWORD).await;
        register(&app, &token, &mut device, json!({}), "Key").await;
        let (boss, _) = app.signed_in("boss").await;
        app.db.execute(&format!("UPDATE users SET role = 'admin' WHERE id = '{boss}'")).await;
        let boss_token = app.token("boss", PASSWORD).await;
        let reset = app.send_json(Method::DELETE, "/v1/users/ada/mfa", Some(&boss_token), &json!({})).await;
        assert_eq!(reset.status().as_u16(), 204);
        assert_eq!(app.db.count(&format!("SELECT COUNT(*) FROM passkeys WHERE user_id = '{ada}'")).await, 0);
        assert_problem(sign_in_alone(&app, &mut device).await, 401, "invalid_code").await;
        assert_eq!(app.login("ada", PASSWORD).await.status().as_u16(), 200);
    }

    async fn an_administrator_held_to_enrolment_may_enrol_a_passkey_and_sign_in_with_it(backend) {
        let app = spawn_app_with(backend, |config| {
            config.require_mfa = tessera::domain::second_factor::MfaPolicy::Admin;
            config.session_cache_ttl = std::time::Duration::ZERO;
            config.webauthn_rp_id = Some("localhost".into());
            config.webauthn_origins = flag("--webauthn-origins", ORIGIN).webauthn_origins;
        })
        .await;
        let (boss, _) = app.signed_in("boss").await;
        app.db.execute(&format!("UPDATE users SET role = 'admin' WHERE id = '{boss}'")).await;
        let enrolling = app.token("boss", PASSWORD).await;
        assert_problem(app.get("/v1/users", Some(&enrolling)).await, 403, "mfa_enrolment_required").await;
        let mut device = Device::new();
        register(&app, &enrolling, &mut device, json!({}), "Key").await;
        let tokens = json_of(sign_in_alone(&app, &mut device).await, 200).await;
        let full = tokens["access_token"].as_str().unwrap();
        assert_eq!(app.get("/v1/users", Some(full)).await.status().as_u16(), 200);
        let passkey: String = app.db.fetch_string(&format!("SELECT id FROM passkeys WHERE user_id = '{boss}'")).await;
        let removal = json!({"current_password": PASSWORD, "passkey": step_up(&app, full, &mut device).await});
        let kept = app.send_json(Method::DELETE, &format!("/v1/me/passkeys/{passkey}"), Some(full), &removal).await;
        assert_problem(kept, 409, "mfa_required_by_policy").await;
    }

    async fn malformed_ceremonies_are_refused_at_the_edge(backend) {
        let app = spawn_passkey_app(backend).await;
        let (_, token) = app.signed_in("ada").await;
        let started = json_of(app.send_json(Method::POST, "/v1/me/passkeys/start", Some(&token), &json!({"current_password": PASSWORD})).await, 200).await;
        for (body, field) in [
            (json!({"challenge_id": started["challenge_id"], "credential": {"id": 1}}), "credential"),
            (json!({"challenge_id": "x".repeat(101), "credential": {}}), "challenge_id"),
            (json!({"challenge_id": "a\u{0}b", "credential": {}}), "challenge_id"),
        ] {
            let refused = assert_problem(app.send_json(Method::POST, "/v1/me/passkeys/finish", Some(&token), &body).await, 422, "validation_failed").await;
            assert_eq!(field_codes(&refused)[0].0, field, "{refused}");
        }
        let mut device = Device::new();
        let credential = device.create(&started["options"]);
        let named = json!({"challenge_id": started["challenge_id"], "credential": credential, "name": "a\u{202E}b"});
        let refused = assert_problem(app.send_json(Method::POST, "/v1/me/passkeys/finish", Some(&token), &named).await, 422, "validation_failed").await;
        assert_eq!(field_codes(&refused)[0].0, "name");
        // A credential made for another challenge does not verify, and uses this one up.
        let other = json_of(app.send_json(Method::POST, "/v1/me/passkeys/start", Some(&token), &json!({"current_password": PASSWORD})).await, 200).await;
        let mismatched = json!({"challenge_id": other["challenge_id"], "credential": credential});
        assert_problem(app.send_json(Method::POST, "/v1/me/passkeys/finish", Some(&token), &mismatched).await, 401, "invalid_code").await;
        let retried = json!({"challenge_id": other["challenge_id"], "credential": device.create(&other["options"])});
        assert_problem(app.send_json(Method::POST, "/v1/me/passkeys/finish", Some(&token), &retried).await, 401, "invalid_code").await;
        let started = json_of(app.client.post(app.url("/v1/auth/passkey/start")).send().await.unwrap(), 200).await;
        let unknown = json!({"challenge_id": "not-a-challenge", "credential": device.get(&started["options"])});
        assert_problem(app.post("/v1/auth/passkey/finish", &unknown).await, 401, "invalid_code").await;
        assert_eq!(app.db.count("SELECT COUNT(*) FROM passkeys").await, 0);
    }
}
