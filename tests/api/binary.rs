//! The built binary, run as a process: its command, account creation through its CLI, and
//! waiting for it to serve.

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;

/// The built binary, with no `TESSERA_*` variables from the test's environment.
pub fn tessera() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TESSERA_") {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "warn");
    command
}

/// `tessera admin create --password-stdin ARGS…` on `database_url`.
pub fn admin_create(database_url: &str, args: &[&str], password: &str) -> std::process::Output {
    let mut child = tessera()
        .env("TESSERA_DATABASE_URL", database_url)
        .args(["admin", "create", "--password-stdin"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// `tessera admin create` of the owner `root` (root@example.com) with `password`, off the runtime.
pub async fn create_owner(database_url: &str, password: &str) -> std::process::Output {
    let (url, password) = (database_url.to_owned(), password.to_owned());
    let args = ["--username", "root", "--email", "root@example.com", "--role", "owner"];
    tokio::task::spawn_blocking(move || admin_create(&url, &args, &password)).await.unwrap()
}

/// Waits (up to 10 s) for the binary serving at `base` to answer `/readyz` with 200.
pub async fn wait_until_ready(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server did not become ready");
}
