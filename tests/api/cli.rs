//! The binary itself: help, configuration errors, `admin create`, `openapi`, graceful shutdown.

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[test]
fn help_lists_every_setting_with_its_variable() {
    let output = tessera().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for variable in tessera::config::variables() {
        assert!(help.contains(&variable), "{variable} missing from --help");
    }
    for command in ["serve", "migrate", "admin", "users", "openapi"] {
        assert!(help.contains(command), "{command} missing from --help");
    }
}

#[test]
fn a_bad_setting_stops_with_exit_code_2_naming_the_variable() {
    let output = tessera().env("TESSERA_ACCESS_TOKEN_TTL", "forever").arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TESSERA_ACCESS_TOKEN_TTL"), "{stderr}");
}

#[test]
fn openapi_prints_the_committed_document() {
    let output = tessera().arg("openapi").output().unwrap();
    assert!(output.status.success());
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let committed: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
    assert_eq!(printed, committed);
}

each_backend! {
    async fn admin_create_makes_a_verified_owner_who_can_sign_in(backend) {
        let db = TestDb::create(backend).await;
        let output = create_owner(&db.url, PASSWORD).await;
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("created owner "));
        let app = spawn_on(db, |_| {}).await;
        let body: Value = app.login("root", PASSWORD).await.json().await.unwrap();
        assert_eq!(body["user"]["role"], "owner");
        assert_eq!(body["user"]["email_verified"], true);
    }

    async fn admin_create_refuses_weak_passwords_and_taken_names(backend) {
        let db = TestDb::create(backend).await;
        let url = db.url.clone();
        let (weak, first, taken) = tokio::task::spawn_blocking(move || {
            (
                admin_create(&url, &["--username", "root"], "password"),
                admin_create(&url, &["--username", "root"], PASSWORD),
                admin_create(&url, &["--username", "ROOT"], PASSWORD),
            )
        })
        .await
        .unwrap();
        assert_eq!(weak.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&weak.stderr).contains("password: is one of the most commonly used"));
        assert!(first.status.success());
        assert_eq!(taken.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&taken.stderr).contains("username: already taken"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let db = TestDb::create(Backend::Sqlite).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = tessera()
        .env("TESSERA_DATABASE_URL", &db.url)
        .env("TESSERA_LISTEN", format!("127.0.0.1:{port}"))
        .env("TESSERA_HASH_CONCURRENCY", "1")
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_until_ready(&base).await;
    let registered = client
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"username": "ada", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    // Eight logins queue behind one hashing slot; SIGTERM arrives while they are in flight.
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                client
                    .post(format!("{base}/v1/auth/login"))
                    .json(&json!({"username": "ada", "password": PASSWORD}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let killed = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(killed.success());
    for login in logins {
        assert_eq!(login.await.unwrap().unwrap(), StatusCode::OK);
    }
    let status = tokio::task::spawn_blocking(move || server.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}
