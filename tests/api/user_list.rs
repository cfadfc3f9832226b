//! `GET /v1/users`: keyset pages in every order under concurrent change, filters, prefix
//! search on both of its plans, totals, and refused cursors and parameters.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const SORTS: [&str; 4] = ["created_at", "-created_at", "username", "-username"];

/// Signs in a fresh account of `role` (set in the database: no API grants a role to oneself).
async fn signed_in_as(app: &TestApp, username: &str, role: &str) -> String {
    let (id, _) = app.signed_in(username).await;
    app.db.execute(&format!("UPDATE users SET role = '{role}' WHERE id = '{id}'")).await;
    app.token(username, PASSWORD).await
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let mut body = body;
    body["password"] = json!(PASSWORD);
    let response = app.send_json(Method::POST, "/v1/users", Some(token), &body).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get(&format!("/v1/users?{query}"), Some(token)).await;
    assert_eq!(response.status(), 200, "{query}: {}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// Every account the query selects, following `next_cursor` to the end.
async fn walk(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let body = page(app, token, &format!("{query}{after}")).await;
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect()
}

/// The key an account sorts by: its creation instant, or its username (else e-mail), lower-cased.
fn sort_key(user: &Value, sort: &str) -> String {
    if sort.ends_with("created_at") {
        user["created_at"].as_str().unwrap().to_owned()
    } else {
        user["username"].as_str().or(user["email"].as_str()).unwrap().to_lowercase()
    }
}

fn assert_ordered(items: &[Value], sort: &str) {
    for pair in items.windows(2) {
        let (a, b) = (sort_key(&pair[0], sort), sort_key(&pair[1], sort));
        let in_order = if sort.starts_with('-') { a >= b } else { a <= b };
        assert!(in_order, "{sort}: {a} then {b}");
    }
}

each_backend! {
    async fn every_page_in_every_order_holds_each_account_exactly_once_while_others_come_and_go(backend) {
        let app = spawn_app(backend).await;
        let token = signed_in_as(&app, "boss", "owner").await;
        app.seed(40, "walker");
        for i in 0..4 {
            create(&app, &token, json!({"email": format!("No.Name{i}@Example.com")})).await;
        }
        for (round, sort) in SORTS.iter().enumerate() {
            let mut doomed = Vec::new();
            for i in 0..6 {
                let user = create(&app, &token, json!({"username": format!("doomed-{round}-{i}")})).await;
                doomed.push(user["id"].as_str().unwrap().to_owned());
            }
            let before = ids(&walk(&app, &token, "limit=200").await);
            let stable: HashSet<String> = before.into_iter().filter(|id| !doomed.contains(id)).collect();

            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            for step in 0.. {
                let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
                let body = page(&app, &token, &format!("limit=7&sort={sort}{after}")).await;
                seen.extend(body["items"].as_array().unwrap().iter().cloned());
                // Others change the list between our pages: one account arrives, one goes.
                create(&app, &token, json!({"username": format!("arrival-{round}-{step}")})).await;
                if let Some(id) = doomed.pop() {
                    let gone = app.client.delete(app.url(&format!("/v1/users/{id}"))).bearer_auth(&token).send().await.unwrap();
                    assert_eq!(gone.status(), 204);
                }
                match body["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let seen_ids = ids(&seen);
            let unique: HashSet<&String> = seen_ids.iter().collect();
            assert_eq!(unique.len(), seen_ids.len(), "{sort}: an account came twice");
            let missing: Vec<&String> = stable.iter().filter(|id| !unique.contains(id)).collect();
            assert!(missing.is_empty(), "{sort}: {} accounts never came", missing.len());
            assert_ordered(&seen, sort);
        }
    }

    async fn filters_and_prefix_search_select_exactly_the_matching_accounts(backend) {
        let app = spawn_app(backend).await;
        let token = signed_in_as(&app, "boss", "owner").await;
        let ada = create(&app, &token, json!({"username": "Ada.L", "email": "countess@math.test", "first_name": "Ada",
            "last_name": "Lovelace", "display_name": "The Enchantress", "email_verified": true})).await;
        let grace = create(&app, &token, json!({"username": "grace", "first_name": "Grace", "last_name": "Hopper", "role": "admin"})).await;
        let linus = create(&app, &token, json!({"username": "linus", "status": "disabled"})).await;
        let edsger = create(&app, &token, json!({"email": "Edsger@EWD.test"})).await;
        let names = |body: &Value| -> Vec<String> { ids(body["items"].as_array().unwrap()) };
        let id = |user: &Value| user["id"].as_str().unwrap().to_owned();

        for (q, expected) in [("ADA", vec![id(&ada)]), ("love", vec![id(&ada)]), ("the%20ench", vec![id(&ada)]),
            ("COUNTESS@", vec![id(&ada)]), ("hop", vec![id(&grace)]), ("edsger@ewd", vec![id(&edsger)]),
            ("ewd", vec![]), ("lovelacey", vec![])] {
            assert_eq!(names(&page(&app, &token, &format!("q={q}")).await), expected, "q={q}");
        }
        assert_eq!(names(&page(&app, &token, "role=admin").await), vec![id(&grace)]);
        assert_eq!(names(&page(&app, &token, "status=disabled").await), vec![id(&linus)]);
        assert_eq!(names(&page(&app, &token, "email_verified=true").await), vec![id(&ada)]);
        assert_eq!(names(&page(&app, &token, "q=g&role=user").await), Vec::<String>::new());
        // Instants are shown in whole seconds; move two accounts back in time to filter by them.
        for (user, micros) in [(&ada, 1_577_836_800_000_000_i64), (&grace, 1_609_459_200_000_000)] {
            app.db.execute(&format!("UPDATE users SET created_at = {micros} WHERE id = '{}'", id(user))).await;
        }
        let between = "created_after=2020-01-01T00:00:00Z&created_before=2021-06-01T00:00:00%2B02:00";
        assert_eq!(names(&page(&app, &token, between).await), vec![id(&grace)], "both bounds are exclusive");
        assert_eq!(names(&page(&app, &token, "created_before=2021-01-01T00:00:01Z&sort=-created_at").await), vec![id(&grace), id(&ada)]);
        let counted = page(&app, &token, "status=active&include_total=true&limit=1").await;
        assert_eq!(counted["total"], 4, "boss, ada, grace, edsger");
        assert_eq!(counted["items"].as_array().unwrap().len(), 1);
        assert!(page(&app, &token, "status=active").await.get("total").is_none(), "total only when asked");
    }

    async fn a_search_finds_every_match_whether_few_or_many_keys_start_with_the_prefix(backend) {
        let app = spawn_app(backend).await;
        let token = signed_in_as(&app, "boss", "admin").await;
        // 2,100 accounts give 4,200 keys starting with "bulk" (username and e-mail): more than a
        // search sorts, so it walks the sort index; "bulk00012" has 100 accounts and is sorted.
        app.seed(2_100, "bulk");
        for (query, expected) in [("q=bulk", 2_100), ("q=Bulk00012", 100), ("q=bulk&sort=-username", 2_100)] {
            let found = walk(&app, &token, &format!("{query}&limit=200")).await;
            let unique: HashSet<String> = ids(&found).into_iter().collect();
            assert_eq!((found.len(), unique.len()), (expected, expected), "{query}");
            let sort = query.split("sort=").nth(1).unwrap_or("created_at");
            assert_ordered(&found, sort);
            assert!(found.iter().all(|u| u["username"].as_str().unwrap().starts_with("bulk")));
            let total = page(&app, &token, &format!("{query}&include_total=true")).await["total"].clone();
            assert_eq!(total, expected, "{query}");
        }
    }

    async fn forged_or_foreign_cursors_and_bad_parameters_are_refused(backend) {
        let app = spawn_app(backend).await;
        let token = signed_in_as(&app, "boss", "admin").await;
        app.seed(3, "few");
        let first = page(&app, &token, "limit=1").await;
        let cursor = first["next_cursor"].as_str().unwrap().to_owned();
        let (body, tag) = cursor.split_once('.').unwrap();
        let flipped = match body.strip_prefix('e') {
            Some(rest) => format!("f{rest}"),
            None => format!("e{}", &body[1..]),
        };
        for forged in [format!("{flipped}.{tag}"), format!("{body}.AAAA"), "garbage".to_owned()] {
            let response = app.get(&format!("/v1/users?cursor={forged}"), Some(&token)).await;
            assert_problem(response, 400, "malformed_request").await;
        }
        let response = app.get(&format!("/v1/users?sort=username&cursor={cursor}"), Some(&token)).await;
        assert_problem(response, 400, "malformed_request").await;

        let problem = assert_problem(app.get("/v1/users?limit=0&role=king&sort=email&created_after=yesterday", Some(&token)).await, 422, "validation_failed").await;
        let mut fields: Vec<String> = field_codes(&problem).into_iter().map(|(field, _)| field).collect();
        fields.sort();
        assert_eq!(fields, ["created_after", "limit", "role", "sort"]);
        assert_problem(app.get("/v1/users?email_verified=maybe", Some(&token)).await, 400, "malformed_request").await;

        let (_, plain) = app.signed_in("plain").await;
        assert_problem(app.get("/v1/users?limit=0", Some(&plain)).await, 403, "forbidden").await;
        assert_problem(app.get("/v1/users", None).await, 401, "unauthenticated").await;
    }
}
