//! What each scenario sends, and the seeding it needs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::load::{Request, status_of};

/// The password every seeded account has.
pub const PASSWORD: &str = "bench password that is long enough";

/// `GET` of one URL, with a bearer token or without: the outside ceilings, and `/v1/me`
/// when wrk is not installed.
pub struct Get {
    pub url: String,
    pub token: Option<String>,
}

impl Request for Get {
    async fn send(&self, _: usize, client: &reqwest::Client) -> u16 {
        let request = client.get(&self.url);
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        status_of(request.send().await).await
    }
}

/// `GET /v1/me` with a valid access token.
pub struct Me {
    pub base: String,
    pub token: String,
}

impl Request for Me {
    async fn send(&self, _: usize, client: &reqwest::Client) -> u16 {
        status_of(client.get(format!("{}/v1/me", self.base)).bearer_auth(&self.token).send().await).await
    }
}

/// `POST /v1/auth/login` with the right password, each connection as one of `accounts`
/// accounts `{username}{n}` (see [`seed_accounts`]): one account checks at most
/// `TESSERA_LOCKOUT_THRESHOLD` passwords at a time, by design, and a sign-in load is many
/// accounts. With `accounts` 0, every connection signs in as `username` itself.
pub struct Login {
    pub base: String,
    pub username: String,
    pub accounts: usize,
}

impl Request for Login {
    async fn send(&self, worker: usize, client: &reqwest::Client) -> u16 {
        let username = match self.accounts {
            0 => self.username.clone(),
            n => format!("{}{}", self.username, worker % n),
        };
        let body = json!({"username": username, "password": PASSWORD});
        status_of(client.post(format!("{}/v1/auth/login", self.base)).json(&body).send().await).await
    }
}

/// `POST /v1/auth/register` with a new name each time.
pub struct Register {
    pub base: String,
    pub run: String,
    pub next: AtomicU64,
}

impl Request for Register {
    async fn send(&self, _: usize, client: &reqwest::Client) -> u16 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let body = json!({"username": format!("r{}x{n}", self.run), "password": PASSWORD});
        status_of(client.post(format!("{}/v1/auth/register", self.base)).json(&body).send().await).await
    }

    fn expected(&self) -> u16 {
        201
    }
}

/// `POST /v1/auth/refresh`, each worker following its own chain of rotated tokens.
pub struct Refresh {
    pub base: String,
    pub chains: Vec<Mutex<String>>,
}

impl Request for Refresh {
    async fn send(&self, worker: usize, client: &reqwest::Client) -> u16 {
        let Some(chain) = self.chains.get(worker) else { return 0 };
        let token = chain.lock().map(|t| t.clone()).unwrap_or_default();
        let sent =
            client.post(format!("{}/v1/auth/refresh", self.base)).json(&json!({"refresh_token": token})).send().await;
        let Ok(response) = sent else { return 0 };
        let status = response.status().as_u16();
        if let Ok(body) = response.json::<Value>().await
            && let (Some(next), Ok(mut slot)) = (body["refresh_token"].as_str(), chain.lock())
        {
            *slot = next.to_owned();
        }
        status
    }
}

/// Registers `username` and answers a fresh sign-in's body.
pub async fn seed_user(client: &reqwest::Client, base: &str, username: &str) -> anyhow::Result<Value> {
    let registered = client
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await?;
    if registered.status().as_u16() != 201 && registered.status().as_u16() != 409 {
        bail!("seeding {username}: {}", registered.status());
    }
    sign_in(client, base, username).await
}

/// Registers `{prefix}0` … `{prefix}{count - 1}` (those that exist already are left as they are).
pub async fn seed_accounts(client: &reqwest::Client, base: &str, prefix: &str, count: usize) -> anyhow::Result<()> {
    for n in 0..count {
        let registered = client
            .post(format!("{base}/v1/auth/register"))
            .json(&json!({"username": format!("{prefix}{n}"), "password": PASSWORD}))
            .send()
            .await?;
        if registered.status().as_u16() != 201 && registered.status().as_u16() != 409 {
            bail!("seeding {prefix}{n}: {}", registered.status());
        }
    }
    Ok(())
}

/// A sign-in's body.
pub async fn sign_in(client: &reqwest::Client, base: &str, username: &str) -> anyhow::Result<Value> {
    let response = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("signing in {username}: {}", response.status());
    }
    response.json().await.context("reading the sign-in")
}
