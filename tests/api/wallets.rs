//! Wallets on a double-entry ledger: ownership, adjustments, transfers that never lose or mint
//! money under concurrency, and idempotency keys that make a repeat do nothing twice.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// An owner (who may adjust) and their token.
pub async fn owner(app: &TestApp) -> String {
    let (id, _) = app.signed_in("olga").await;
    app.db.execute(&format!("UPDATE users SET role = 'owner' WHERE id = '{id}'")).await;
    app.token("olga", PASSWORD).await
}

pub async fn open_wallet(app: &TestApp, token: &str, currency: &str) -> String {
    let response = app.send_json(Method::POST, "/v1/me/wallets", Some(token), &json!({"currency": currency})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn post_once(app: &TestApp, path: &str, token: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(path)).bearer_auth(token).header("idempotency-key", key).json(body).send().await.unwrap()
}

pub async fn fund(app: &TestApp, owner: &str, user: &str, wallet: &str, amount: i64) {
    let path = format!("/v1/users/{user}/wallets/{wallet}/adjustments");
    let key = uuid::Uuid::now_v7().to_string();
    let response = post_once(app, &path, owner, &key, &json!({"amount": amount, "reason": "opening balance"})).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
}

pub async fn balance(app: &TestApp, token: &str, wallet: &str) -> i64 {
    let view: Value = app.get(&format!("/v1/me/wallets/{wallet}"), Some(token)).await.json().await.unwrap();
    view["balance"].as_i64().unwrap()
}

pub async fn transfer(app: &TestApp, token: &str, key: &str, from: &str, to: &str, amount: i64) -> reqwest::Response {
    post_once(app, "/v1/transfers", token, key, &json!({"from_wallet_id": from, "to_wallet_id": to, "amount": amount}))
        .await
}

/// `tessera ledger verify` on the app's database.
fn verify_ledger(app: &TestApp) -> std::process::Output {
    tessera().env("TESSERA_DATABASE_URL", &app.db.url).args(["ledger", "verify"]).output().unwrap()
}

/// Every balance equals the sum of its entries, and every transfer's entries cancel; and
/// `tessera ledger verify` agrees.
pub async fn assert_books_balance(app: &TestApp) {
    let verified = verify_ledger(app);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    assert!(String::from_utf8_lossy(&verified.stdout).starts_with("ok: "));
    let mismatched = "SELECT COUNT(*) FROM wallets w WHERE w.balance <> \
        (SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e WHERE e.wallet_id = w.id)";
    assert_eq!(app.db.count(mismatched).await, 0, "a balance differs from its entries");
    let uneven = "SELECT COUNT(*) FROM transfers t WHERE \
        (SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e WHERE e.transfer_id = t.id) <> 0";
    assert_eq!(app.db.count(uneven).await, 0, "a transfer's entries do not cancel");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM wallets WHERE balance - held < 0").await, 0, "an overdraft");
}

each_backend! {
    async fn wallets_are_opened_read_changed_and_closed_by_their_owner_only(backend) {
        let app = spawn_app(backend).await;
        let (_, ada) = app.signed_in("ada").await;
        let (_, grace) = app.signed_in("grace").await;
        let created: Value = app.send_json(Method::POST, "/v1/me/wallets", Some(&ada), &json!({"currency": "usd", "kind": "savings", "description": "rainy days"})).await.json().await.unwrap();
        assert_eq!((created["currency"].as_str(), created["exponent"].as_u64(), created["balance"].as_i64()), (Some("USD"), Some(2), Some(0)));
        assert_eq!((created["kind"].as_str(), created["available"].as_i64()), (Some("savings"), Some(0)));
        let id = created["id"].as_str().unwrap();
        let bad = json!({"currency": "XYZ", "kind": "piggy"});
        let problem = assert_problem(app.send_json(Method::POST, "/v1/me/wallets", Some(&ada), &bad).await, 422, "validation_failed").await;
        assert_eq!(field_codes(&problem).len(), 2, "{problem}");
        let listed: Value = app.get("/v1/me/wallets", Some(&ada)).await.json().await.unwrap();
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
        let changed: Value = app.send_json(Method::PATCH, &format!("/v1/me/wallets/{id}"), Some(&ada), &json!({"status": "frozen", "description": null})).await.json().await.unwrap();
        assert_eq!((changed["status"].as_str(), changed["description"].as_str()), (Some("frozen"), None));
        for (method, path) in [(Method::GET, format!("/v1/me/wallets/{id}")), (Method::PATCH, format!("/v1/me/wallets/{id}")), (Method::DELETE, format!("/v1/me/wallets/{id}")), (Method::GET, format!("/v1/me/wallets/{id}/entries"))] {
            let response = app.client.request(method, app.url(&path)).bearer_auth(&grace).json(&json!({})).send().await.unwrap();
            assert_problem(response, 404, "not_found").await;
        }
        assert_eq!(app.client.delete(app.url(&format!("/v1/me/wallets/{id}"))).bearer_auth(&ada).send().await.unwrap().status(), StatusCode::NO_CONTENT);
        assert_problem(app.get(&format!("/v1/me/wallets/{id}"), Some(&ada)).await, 404, "not_found").await;
    }

    async fn money_enters_by_adjustment_and_moves_by_transfer_under_the_rules(backend) {
        let app = spawn_app(backend).await;
        let owner = owner(&app).await;
        let (_, ada) = app.signed_in("ada").await;
        let (_, grace) = app.signed_in("grace").await;
        let ada_usd = open_wallet(&app, &ada, "USD").await;
        let grace_usd = open_wallet(&app, &grace, "USD").await;
        let grace_eur = open_wallet(&app, &grace, "EUR").await;
        fund(&app, &owner, "ada", &ada_usd, 10_000).await;
        let own = open_wallet(&app, &owner, "USD").await;
        let path = format!("/v1/users/olga/wallets/{own}/adjustments");
        assert_problem(post_once(&app, &path, &owner, "k0", &json!({"amount": 5, "reason": "mine"})).await, 403, "forbidden").await;
        let no_key = app.send_json(Method::POST, &format!("/v1/users/ada/wallets/{ada_usd}/adjustments"), Some(&owner), &json!({"amount": 5, "reason": "x"})).await;
        assert_problem(no_key, 422, "validation_failed").await;
        let made: Value = transfer(&app, &ada, "t1", &ada_usd, &grace_usd, 2_500).await.json().await.unwrap();
        assert_eq!((made["amount"].as_i64(), made["currency"].as_str()), (Some(2_500), Some("USD")));
        assert_eq!((balance(&app, &ada, &ada_usd).await, balance(&app, &grace, &grace_usd).await), (7_500, 2_500));
        assert_problem(transfer(&app, &ada, "t2", &ada_usd, &grace_usd, 7_501).await, 409, "insufficient_funds").await;
        assert_problem(transfer(&app, &ada, "t3", &ada_usd, &grace_eur, 1).await, 422, "validation_failed").await;
        assert_problem(transfer(&app, &ada, "t4", &grace_usd, &ada_usd, 1).await, 404, "not_found").await;
        assert_problem(transfer(&app, &ada, "t5", &ada_usd, &ada_usd, 1).await, 422, "validation_failed").await;
        assert_problem(transfer(&app, &ada, "t6", &ada_usd, &grace_usd, 0).await, 422, "validation_failed").await;
        app.send_json(Method::PATCH, &format!("/v1/me/wallets/{grace_usd}"), Some(&grace), &json!({"status": "frozen"})).await;
        assert_problem(transfer(&app, &ada, "t7", &ada_usd, &grace_usd, 1).await, 409, "wallet_frozen").await;
        let entries: Value = app.get(&format!("/v1/me/wallets/{ada_usd}/entries?limit=1"), Some(&ada)).await.json().await.unwrap();
        assert_eq!((entries["items"][0]["kind"].as_str(), entries["items"][0]["balance_after"].as_i64()), (Some("transfer_out"), Some(7_500)));
        let cursor = entries["next_cursor"].as_str().unwrap();
        let older: Value = app.get(&format!("/v1/me/wallets/{ada_usd}/entries?limit=1&cursor={cursor}"), Some(&ada)).await.json().await.unwrap();
        assert_eq!(older["items"][0]["kind"], "adjustment");
        let seen: Value = app.get(&format!("/v1/users/ada/wallets/{ada_usd}/entries"), Some(&owner)).await.json().await.unwrap();
        assert_eq!(seen["items"].as_array().unwrap().len(), 2, "administrators read anyone's ledger");
        // No balance passes 10^15: a credit beyond it is refused, not an overflow.
        fund(&app, &owner, "grace", &grace_eur, 1_000_000_000_000_000).await;
        let over = post_once(&app, &format!("/v1/users/grace/wallets/{grace_eur}/adjustments"), &owner, "over", &json!({"amount": 1, "reason": "one more"})).await;
        let problem = assert_problem(over, 422, "validation_failed").await;
        assert_eq!(field_codes(&problem), vec![("amount".to_owned(), "balance_limit".to_owned())]);
        let ada_eur = open_wallet(&app, &ada, "EUR").await;
        fund(&app, &owner, "ada", &ada_eur, 1).await;
        let problem = assert_problem(transfer(&app, &ada, "t8", &ada_eur, &grace_eur, 1).await, 422, "validation_failed").await;
        assert_eq!(field_codes(&problem), vec![("amount".to_owned(), "balance_limit".to_owned())]);
        assert_eq!(balance(&app, &ada, &ada_eur).await, 1, "a refused transfer moves nothing");
        let closing = app.client.delete(app.url(&format!("/v1/me/wallets/{ada_usd}"))).bearer_auth(&ada).send().await.unwrap();
        assert_problem(closing, 409, "wallet_not_empty").await;
        let leaving = app.send_json(Method::DELETE, "/v1/me", Some(&ada), &json!({"password": PASSWORD})).await;
        assert_problem(leaving, 409, "wallet_not_empty").await;
        assert_books_balance(&app).await;
    }

    async fn one_idempotency_key_sent_at_once_from_many_tasks_makes_one_transfer(backend) {
        let app = Arc::new(spawn_app(backend).await);
        let owner = owner(&app).await;
        let (_, ada) = app.signed_in("ada").await;
        let (_, grace) = app.signed_in("grace").await;
        let from = open_wallet(&app, &ada, "USD").await;
        let to = open_wallet(&app, &grace, "USD").await;
        fund(&app, &owner, "ada", &from, 1_000).await;
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (app, ada, from, to) = (app.clone(), ada.clone(), from.clone(), to.clone());
                tokio::spawn(async move {
                    let response = transfer(&app, &ada, "same-key", &from, &to, 100).await;
                    (response.status(), response.json::<Value>().await.unwrap()["id"].clone())
                })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            let (status, id) = task.await.unwrap();
            assert_eq!(status, StatusCode::CREATED);
            ids.push(id);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "every answer names the one transfer");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM transfers").await, 1);
        assert_eq!(balance(&app, &ada, &from).await, 900);
        assert_problem(transfer(&app, &ada, "same-key", &from, &to, 101).await, 409, "idempotency_conflict").await;
    }

    async fn transfers_arriving_together_are_each_decided_on_what_the_others_left(backend) {
        // On SQLite these land in one batch (group commit); everywhere each must be decided as
        // if alone, in some order: 1,000 funds exactly ten transfers of 100.
        let app = Arc::new(spawn_app(backend).await);
        let owner = owner(&app).await;
        let (_, ada) = app.signed_in("ada").await;
        let from = open_wallet(&app, &ada, "USD").await;
        fund(&app, &owner, "ada", &from, 1_000).await;
        let mut payees = Vec::new();
        for name in ["grace", "alan", "edsger"] {
            let (_, token) = app.signed_in(name).await;
            payees.push(open_wallet(&app, &token, "USD").await);
        }
        let (_, barbara) = app.signed_in("barbara").await;
        let frozen = open_wallet(&app, &barbara, "USD").await;
        app.send_json(Method::PATCH, &format!("/v1/me/wallets/{frozen}"), Some(&barbara), &json!({"status": "frozen"})).await;
        let mut tasks = Vec::new();
        for n in 0..30 {
            let (app, ada, from, to) = (app.clone(), ada.clone(), from.clone(), payees[n % 3].clone());
            tasks.push(tokio::spawn(async move { transfer(&app, &ada, &format!("burst-{n}"), &from, &to, 100).await.status() }));
        }
        // One key sent twice at once with two bodies: one is made, the other is a conflict.
        for amount in [1, 2] {
            let (app, ada, from, to) = (app.clone(), ada.clone(), from.clone(), payees[0].clone());
            tasks.push(tokio::spawn(async move { transfer(&app, &ada, "twin", &from, &to, amount).await.status() }));
        }
        let (app2, ada2, from2) = (app.clone(), ada.clone(), from.clone());
        tasks.push(tokio::spawn(async move { transfer(&app2, &ada2, "to-frozen", &from2, &frozen, 1).await.status() }));
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap().as_u16());
        }
        let made = |range: &[u16]| range.iter().filter(|s| **s == 201).count() as i64;
        assert_eq!(statuses[32], 409, "a frozen payee is refused");
        assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
        assert!(statuses[30..32].contains(&409), "one key, two bodies: at most one is made: {statuses:?}");
        // The twin takes 1 or 2 of the 1,000, and then only nine transfers of 100 fit.
        let (bursts, twins) = (made(&statuses[..30]), made(&statuses[30..32]));
        assert_eq!(bursts + twins, 10, "{statuses:?}");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM transfers WHERE amount = 100").await, bursts);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM transfers").await, 10);
        let left = balance(&app, &ada, &from).await;
        assert!([0, 98, 99].contains(&left), "left {left}");
        assert_eq!(app.db.count("SELECT COUNT(*) FROM idempotency_keys WHERE idem_key LIKE 'burst-%'").await, bursts, "a refused transfer records no key");
        // A refused request leaves its key free: the same key with a body that fits is made.
        assert_problem(transfer(&app, &ada, "later", &from, &payees[1], left + 1).await, 409, "insufficient_funds").await;
        if left > 0 {
            assert_eq!(transfer(&app, &ada, "later", &from, &payees[1], left).await.status(), StatusCode::CREATED);
        }
        assert_books_balance(&app).await;
    }

    async fn random_transfers_holds_captures_and_voids_racing_in_every_direction_neither_lose_nor_mint_money(backend) {
        let app = Arc::new(spawn_app(backend).await);
        let owner = owner(&app).await;
        let mut accounts = Vec::new();
        for name in ["payer0", "payer1", "payer2", "payer3"] {
            let (_, token) = app.signed_in(name).await;
            let wallet = open_wallet(&app, &token, "USD").await;
            fund(&app, &owner, name, &wallet, 10_000).await;
            accounts.push((token, wallet));
        }
        let accounts = Arc::new(accounts);
        let tasks: Vec<_> = (0..16_u64)
            .map(|task| {
                let (app, accounts) = (app.clone(), accounts.clone());
                tokio::spawn(async move {
                    let mut seed = task.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    let mut next = move |n: u64| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                        (seed >> 33) % n
                    };
                    let mut statuses = Vec::new();
                    for round in 0..20 {
                        let from = usize::try_from(next(4)).unwrap();
                        let to = (from + 1 + usize::try_from(next(3)).unwrap()) % 4;
                        let amount = i64::try_from(1 + next(6_000)).unwrap();
                        let (token, source) = &accounts[from];
                        let key = format!("task{task}-round{round}");
                        // Half transfers; half holds, then captured (in part), voided, or left
                        // pending to be captured twice by racing tasks.
                        if next(2) == 0 {
                            statuses.push(transfer(&app, token, &key, source, &accounts[to].1, amount).await.status());
                            continue;
                        }
                        let body = json!({"from_wallet_id": source, "to_wallet_id": accounts[to].1, "amount": amount});
                        let placed = post_once(&app, "/v1/holds", token, &key, &body).await;
                        statuses.push(placed.status());
                        let Some(hold) = placed.json::<Value>().await.ok().and_then(|h| h["id"].as_str().map(str::to_owned)) else { continue };
                        let (end, body) = match next(3) {
                            0 => ("capture", json!({"amount": 1 + amount / 2})),
                            1 => ("void", json!({})),
                            _ => ("capture", json!({})),
                        };
                        for attempt in 0..2 {
                            let path = format!("/v1/holds/{hold}/{end}");
                            statuses.push(post_once(&app, &path, token, &format!("{key}-{attempt}"), &body).await.status());
                        }
                    }
                    statuses
                })
            })
            .collect();
        let mut made = 0;
        for task in tasks {
            for status in task.await.unwrap() {
                assert!([StatusCode::OK, StatusCode::CREATED, StatusCode::CONFLICT].contains(&status), "{status}");
                made += usize::from(status == StatusCode::CREATED);
            }
        }
        assert!(made > 0, "some transfers went through");
        let mut total = 0;
        for (token, wallet) in accounts.iter() {
            let balance = balance(&app, token, wallet).await;
            assert!(balance >= 0);
            total += balance;
        }
        assert_eq!(total, 40_000, "money was neither lost nor made");
        let double = "SELECT COUNT(*) FROM holds WHERE status = 'captured' AND transfer_id IN \
            (SELECT transfer_id FROM holds GROUP BY transfer_id HAVING COUNT(*) > 1)";
        assert_eq!(app.db.count(double).await, 0, "no hold was captured twice");
        assert_books_balance(&app).await;
        // Tampering shows: the verifier names the wallet and exits non-zero.
        app.db.execute(&format!("UPDATE wallets SET balance = balance + 1 WHERE id = '{}'", accounts[0].1)).await;
        let verified = verify_ledger(&app);
        assert_eq!(verified.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&verified.stderr).contains(&accounts[0].1), "{}", String::from_utf8_lossy(&verified.stderr));
    }
}

mod holds {
    use super::*;

    async fn place(
        app: &TestApp,
        token: &str,
        key: &str,
        from: &str,
        to: &str,
        amount: i64,
        expires_in: u64,
    ) -> reqwest::Response {
        let body = json!({"from_wallet_id": from, "to_wallet_id": to, "amount": amount, "expires_in": expires_in});
        post_once(app, "/v1/holds", token, key, &body).await
    }

    async fn available(app: &TestApp, token: &str, wallet: &str) -> i64 {
        let view: Value = app.get(&format!("/v1/me/wallets/{wallet}"), Some(token)).await.json().await.unwrap();
        view["available"].as_i64().unwrap()
    }

    /// Two users' USD wallets, the payer's funded with 10,000.
    async fn pair(app: &TestApp) -> (String, String, String, String) {
        let owner = owner(app).await;
        let (_, ada) = app.signed_in("ada").await;
        let (_, grace) = app.signed_in("grace").await;
        let from = open_wallet(app, &ada, "USD").await;
        let to = open_wallet(app, &grace, "USD").await;
        fund(app, &owner, "ada", &from, 10_000).await;
        (ada, grace, from, to)
    }

    each_backend! {
        async fn a_hold_reserves_money_until_captured_in_part_and_the_rest_returns(backend) {
            let app = spawn_app(backend).await;
            let (ada, grace, from, to) = pair(&app).await;
            let (_, stranger) = app.signed_in("mallory").await;
            let hold: Value = place(&app, &ada, "h1", &from, &to, 4_000, 3_600).await.json().await.unwrap();
            assert_eq!((hold["status"].as_str(), hold["amount"].as_i64()), (Some("pending"), Some(4_000)));
            let id = hold["id"].as_str().unwrap();
            assert_eq!(available(&app, &ada, &from).await, 6_000);
            assert_problem(transfer(&app, &ada, "t1", &from, &to, 6_001).await, 409, "insufficient_funds").await;
            assert_problem(place(&app, &ada, "h2", &from, &to, 6_001, 60).await, 409, "insufficient_funds").await;
            assert_eq!(app.get(&format!("/v1/holds/{id}"), Some(&grace)).await.status(), StatusCode::OK, "the payee reads it");
            assert_problem(app.get(&format!("/v1/holds/{id}"), Some(&stranger)).await, 404, "not_found").await;
            assert_problem(post_once(&app, &format!("/v1/holds/{id}/capture"), &grace, "c0", &json!({})).await, 404, "not_found").await;
            let over = post_once(&app, &format!("/v1/holds/{id}/capture"), &ada, "c1", &json!({"amount": 4_001})).await;
            assert_problem(over, 422, "validation_failed").await;
            let captured: Value = post_once(&app, &format!("/v1/holds/{id}/capture"), &ada, "c2", &json!({"amount": 1_500})).await.json().await.unwrap();
            assert_eq!((captured["status"].as_str(), captured["captured_amount"].as_i64()), (Some("captured"), Some(1_500)));
            assert!(captured["transfer_id"].is_string());
            assert_eq!((balance(&app, &ada, &from).await, available(&app, &ada, &from).await), (8_500, 8_500));
            assert_eq!(balance(&app, &grace, &to).await, 1_500);
            assert_problem(post_once(&app, &format!("/v1/holds/{id}/void"), &ada, "v1", &json!({})).await, 409, "hold_not_pending").await;
            let again: Value = post_once(&app, &format!("/v1/holds/{id}/capture"), &ada, "c2", &json!({"amount": 1_500})).await.json().await.unwrap();
            assert_eq!(again["transfer_id"], captured["transfer_id"], "a repeat replays, it does not capture twice");
            assert_books_balance(&app).await;
        }

        async fn an_expired_hold_cannot_be_captured_and_the_sweeper_releases_it(backend) {
            use tessera::domain::time::Timestamp;
            use tessera::service::cleanup::{Retention, sweep};
            use tessera::storage::Store;
            let app = spawn_app(backend).await;
            let (ada, _, from, to) = pair(&app).await;
            let hold: Value = place(&app, &ada, "h1", &from, &to, 3_000, 1).await.json().await.unwrap();
            let id = hold["id"].as_str().unwrap();
            tokio::time::sleep(Duration::from_millis(1_200)).await;
            assert_problem(post_once(&app, &format!("/v1/holds/{id}/capture"), &ada, "c1", &json!({})).await, 409, "hold_expired").await;
            assert_problem(post_once(&app, &format!("/v1/holds/{id}/void"), &ada, "v1", &json!({})).await, 409, "hold_expired").await;
            let store = Store::connect(&app.db.url, 1).await.unwrap();
            let year = Duration::from_secs(365 * 86_400);
            let swept = sweep(&store, Timestamp::now(), Retention { signing_keys: year, audit_events: year }).await.unwrap();
            assert_eq!(swept.expired_holds, 1);
            store.close().await;
            let view: Value = app.get(&format!("/v1/holds/{id}"), Some(&ada)).await.json().await.unwrap();
            assert_eq!(view["status"], "expired");
            assert_eq!(available(&app, &ada, &from).await, 10_000);
            assert_books_balance(&app).await;
        }

        async fn a_capture_and_a_void_racing_for_one_hold_end_it_exactly_once(backend) {
            let app = Arc::new(spawn_app(backend).await);
            let (ada, grace, from, to) = pair(&app).await;
            for round in 0..5 {
                let hold: Value = place(&app, &ada, &format!("h{round}"), &from, &to, 1_000, 3_600).await.json().await.unwrap();
                let id = hold["id"].as_str().unwrap().to_owned();
                let racers: Vec<_> = ["capture", "void", "capture", "void"]
                    .into_iter()
                    .enumerate()
                    .map(|(n, action)| {
                        let (app, ada, id) = (app.clone(), ada.clone(), id.clone());
                        tokio::spawn(async move {
                            let path = format!("/v1/holds/{id}/{action}");
                            post_once(&app, &path, &ada, &format!("r{round}-{n}"), &json!({})).await.status()
                        })
                    })
                    .collect();
                let mut won = 0;
                for racer in racers {
                    let status = racer.await.unwrap();
                    assert!(status == StatusCode::OK || status == StatusCode::CONFLICT, "{status}");
                    won += usize::from(status == StatusCode::OK);
                }
                assert_eq!(won, 1, "round {round}: exactly one ended the hold");
            }
            assert_eq!(app.db.count("SELECT COUNT(*) FROM wallets WHERE held <> 0").await, 0, "nothing stays held");
            let paid = balance(&app, &grace, &to).await;
            assert_eq!(balance(&app, &ada, &from).await + paid, 10_000);
            assert_books_balance(&app).await;
        }
    }
}
