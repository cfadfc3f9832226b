//! The `mixed` scenario: what a service sees on an ordinary day, at a fixed rate. Of every 100
//! requests, 90 are `GET /v1/me`, 5 refreshes, 3 sign-ins and 2 registrations; the kinds are
//! interleaved, not sent in runs.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::load::{Mixed, status_of};
use crate::scenarios::{PASSWORD, seed_accounts, seed_user, sign_in};

pub const KINDS: &[&str] = &["me", "refresh", "login", "register"];
/// Hashes per request of the mix: sign-ins and registrations hash a password, the rest do not.
pub const HASHES_PER_REQUEST: f64 = 0.05;
/// Accounts the sign-ins rotate over, and refresh chains kept going.
const ACCOUNTS: usize = 64;
const CHAINS: usize = 64;

pub struct Mix {
    base: String,
    me_token: String,
    /// Refresh tokens ready to be used; a refresh takes one and puts back its successor.
    chains: Mutex<VecDeque<String>>,
    run: String,
    registered: AtomicU64,
}

impl Mix {
    /// Seeds the accounts: one for `/v1/me`, the sign-in accounts, and one whose sessions are
    /// the refresh chains (signing in elsewhere never ends them).
    pub async fn seed(client: &reqwest::Client, base: &str) -> anyhow::Result<Self> {
        let me = seed_user(client, base, "mixed-me").await?;
        seed_accounts(client, base, "mixer", ACCOUNTS).await?;
        seed_user(client, base, "mixed-chains").await?;
        let mut chains = VecDeque::new();
        for _ in 0..CHAINS {
            let body = sign_in(client, base, "mixed-chains").await?;
            chains.push_back(body["refresh_token"].as_str().unwrap_or_default().to_owned());
        }
        Ok(Self {
            base: base.to_owned(),
            me_token: me["access_token"].as_str().unwrap_or_default().to_owned(),
            chains: Mutex::new(chains),
            run: uuid::Uuid::now_v7().simple().to_string()[..8].to_owned(),
            registered: AtomicU64::new(0),
        })
    }

    async fn refresh(&self, client: &reqwest::Client) -> bool {
        let Some(token) = self.chains.lock().ok().and_then(|mut c| c.pop_front()) else { return false };
        let sent =
            client.post(format!("{}/v1/auth/refresh", self.base)).json(&json!({"refresh_token": token})).send().await;
        let Ok(response) = sent else { return false };
        let ok = response.status().as_u16() == 200;
        if let Ok(body) = response.json::<Value>().await
            && let (Some(next), Ok(mut chains)) = (body["refresh_token"].as_str(), self.chains.lock())
        {
            chains.push_back(next.to_owned());
        }
        ok
    }
}

impl Mixed for Mix {
    fn kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    async fn send(&self, n: usize, client: &reqwest::Client) -> (usize, bool) {
        // 37 and 100 share no factor: each run of 100 requests has every kind in its share,
        // spread out.
        match n * 37 % 100 {
            0..90 => {
                let sent = client.get(format!("{}/v1/me", self.base)).bearer_auth(&self.me_token).send().await;
                (0, status_of(sent).await == 200)
            }
            90..95 => (1, self.refresh(client).await),
            95..98 => {
                let body = json!({"username": format!("mixer{}", n % ACCOUNTS), "password": PASSWORD});
                let sent = client.post(format!("{}/v1/auth/login", self.base)).json(&body).send().await;
                (2, status_of(sent).await == 200)
            }
            _ => {
                let k = self.registered.fetch_add(1, Ordering::Relaxed);
                let body = json!({"username": format!("m{}x{k}", self.run), "password": PASSWORD});
                let sent = client.post(format!("{}/v1/auth/register", self.base)).json(&body).send().await;
                (3, status_of(sent).await == 201)
            }
        }
    }
}
