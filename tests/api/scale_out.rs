//! Three nodes on one database behave as one service: on PostgreSQL directly and through a
//! PgBouncer in transaction pooling mode (and on the other backends too). They start together
//! on a fresh database, and every request of a burst goes to the next node in turn, as a
//! round-robin load balancer would send it.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::smtp::MailCatcher;
use crate::tokens::{header_of, rotate_keys};
use crate::wallets::{assert_books_balance, balance, fund, open_wallet, owner, transfer};

/// How long a node may trust a session it read: the documented revocation bound.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(2);

/// Three nodes started at once on one fresh database, sending mail to `catcher`; limits
/// apply per client as a proxy on 127.0.0.1 reports it, and `forgot` allows 10 a minute.
async fn cluster(backend: Backend, catcher: &MailCatcher) -> Vec<Arc<TestApp>> {
    let port = catcher.port;
    let nodes = spawn_nodes(backend, 3, move |config| {
        config.mail.smtp_url = Some(SecretUrl::new(&MailCatcher::url(port)));
        config.mail.retry_delay = Duration::from_millis(100);
        config.session_cache_ttl = SESSION_CACHE_TTL;
        config.trusted_proxies = flag("--trusted-proxies", "127.0.0.1").trusted_proxies;
        config.rate_limits = flag("--rate-limits", "forgot=10").rate_limits;
    })
    .await;
    nodes.into_iter().map(Arc::new).collect()
}

/// Sends `count` requests at once, the n-th to node n mod 3; answers their statuses.
async fn burst<F, R>(nodes: &[Arc<TestApp>], count: usize, request: F) -> Vec<StatusCode>
where
    F: Fn(Arc<TestApp>, usize) -> R,
    R: Future<Output = reqwest::Response> + Send + 'static,
{
    let sent: Vec<_> = (0..count).map(|n| tokio::spawn(request(nodes[n % nodes.len()].clone(), n))).collect();
    let mut statuses = Vec::new();
    for response in sent {
        statuses.push(response.await.unwrap().status());
    }
    statuses
}

fn tally(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

each_backend! {
    async fn three_nodes_on_one_database_behave_as_one_service(backend) {
        let catcher = MailCatcher::start().await;
        let nodes = cluster(backend, &catcher).await;
        // Started together on a fresh database, they made one signing key between them (each
        // signing with its own, they would refuse each other's tokens until a reload).
        assert_eq!(nodes[0].db.count("SELECT COUNT(*) FROM signing_keys").await, 1);

        // One name, twelve registrations at once across the nodes: one winner.
        let body = json!({"username": "ada", "email": "ada@example.com", "password": PASSWORD});
        let statuses = burst(&nodes, 12, |node, _| {
            let body = body.clone();
            async move { node.register(&body).await }
        }).await;
        assert_eq!((tally(&statuses, StatusCode::CREATED), tally(&statuses, StatusCode::CONFLICT)), (1, 11), "{statuses:?}");

        // Transfers spread over the nodes conserve money, and never overdraw.
        let olga = owner(&nodes[0]).await;
        let ada = nodes[1].token("ada", PASSWORD).await;
        let me: Value = nodes[2].get("/v1/me", Some(&ada)).await.json().await.unwrap();
        let ada_id = me["id"].as_str().unwrap().to_owned();
        let (grace_id, grace) = nodes[2].signed_in("grace").await;
        let ada_wallet = open_wallet(&nodes[0], &ada, "EUR").await;
        let grace_wallet = open_wallet(&nodes[1], &grace, "EUR").await;
        fund(&nodes[2], &olga, &ada_id, &ada_wallet, 1_000).await;
        fund(&nodes[0], &olga, &grace_id, &grace_wallet, 1_000).await;
        let wallets = Arc::new([(ada.clone(), ada_wallet.clone()), (grace.clone(), grace_wallet.clone())]);
        let statuses = burst(&nodes, 60, |node, n| {
            let wallets = wallets.clone();
            async move {
                let ((token, from), (_, to)) = (&wallets[n % 2], &wallets[1 - n % 2]);
                transfer(&node, token, &uuid::Uuid::now_v7().to_string(), from, to, 7 + (n as i64 % 5) * 50).await
            }
        }).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT), "{statuses:?}");
        assert!(tally(&statuses, StatusCode::CREATED) > 0);
        let balances = [balance(&nodes[0], &ada, &ada_wallet).await, balance(&nodes[1], &grace, &grace_wallet).await];
        assert_eq!(balances.iter().sum::<i64>(), 2_000, "money was made or lost: {balances:?}");
        assert!(balances.iter().all(|b| *b >= 0), "overdrawn: {balances:?}");
        assert_books_balance(&nodes[2]).await;

        // A sign-out on one node is refused by the others within the revocation bound.
        let token = nodes[0].token("grace", PASSWORD).await;
        for node in &nodes {
            assert_eq!(node.get("/v1/me", Some(&token)).await.status(), StatusCode::OK);
        }
        let signed_out = std::time::Instant::now();
        let logout = nodes[0].client.post(nodes[0].url("/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        for node in &nodes[1..] {
            while node.get("/v1/me", Some(&token)).await.status() == StatusCode::OK {
                assert!(signed_out.elapsed() < SESSION_CACHE_TTL + Duration::from_millis(500), "accepted after the bound");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_problem(node.get("/v1/me", Some(&token)).await, 401, "unauthenticated").await;
        }

        // The rate limit counts one client's requests on every node together.
        let statuses = burst(&nodes, 30, |node, _| async move {
            node.client.post(node.url("/v1/auth/password/forgot")).header("x-forwarded-for", "203.0.113.9")
                .json(&json!({"username": "nobody"})).send().await.unwrap()
        }).await;
        let admitted = tally(&statuses, StatusCode::ACCEPTED);
        assert!((10..=11).contains(&admitted) && admitted + tally(&statuses, StatusCode::TOO_MANY_REQUESTS) == 30, "{statuses:?}");

        // Lockout counts one account's wrong passwords on every node together.
        nodes[1].register_user("target").await;
        let statuses = burst(&nodes, 30, |node, n| async move {
            let body = json!({"username": "target", "password": format!("wrong guess {n}")});
            node.client.post(node.url("/v1/auth/login")).header("x-forwarded-for", "198.51.100.4").json(&body).send().await.unwrap()
        }).await;
        assert_eq!((tally(&statuses, StatusCode::UNAUTHORIZED), tally(&statuses, StatusCode::TOO_MANY_REQUESTS)), (5, 25), "{statuses:?}");
        for node in &nodes {
            let body = json!({"username": "target", "password": PASSWORD});
            let right = node.client.post(node.url("/v1/auth/login")).header("x-forwarded-for", "198.51.100.4").json(&body).send().await.unwrap();
            assert_problem(right, 429, "too_many_attempts").await;
        }

        // Each mail is sent once, by whichever node claimed it.
        let expected = ["ada@example.com", "grace@example.com", "olga@example.com", "target@example.com"];
        catcher.wait_for(expected.len()).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let mut to: Vec<String> = catcher.received().iter().flat_map(|mail| mail.to.clone()).collect();
        to.sort();
        assert_eq!(to, expected, "each registration's mail exactly once");
        assert_eq!(nodes[0].db.count("SELECT COUNT(*) FROM outbox").await, 0, "every sent mail is off the outbox");

        // Keys rotated (by `tessera keys rotate` on the shared database): a node started after
        // signs with the new key, and the nodes running since before accept its tokens at once.
        let old_token = nodes[0].token("ada", PASSWORD).await;
        let url = nodes[0].db.url.clone();
        tokio::task::spawn_blocking(move || rotate_keys(&url)).await.unwrap();
        let late = nodes[0].another_node().await;
        let new_token = late.token("ada", PASSWORD).await;
        assert_ne!(header_of(&new_token)["kid"], header_of(&old_token)["kid"]);
        for node in &nodes {
            assert_eq!(node.get("/v1/me", Some(&new_token)).await.status(), StatusCode::OK);
        }
        assert_eq!(late.get("/v1/me", Some(&old_token)).await.status(), StatusCode::OK);
    }
}
