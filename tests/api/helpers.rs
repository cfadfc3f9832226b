//! `spawn_app(backend)`: a fresh database per test (dropped afterwards) and the application
//! serving on a random port, with typed request helpers.

use std::io::Write as _;
use std::sync::{Arc, Once};

pub use crate::binary::{admin_create, create_owner, tessera, wait_until_ready};
pub use crate::proxy::Proxy;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection as _, Executor as _};
pub use std::time::Duration;
use tessera::app::Application;
pub use tessera::config::{Config, SecretUrl};
use tessera_scratch::ScratchDb;
use tokio::sync::oneshot;

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Runs each test body on SQLite, PostgreSQL (directly, and through a PgBouncer in
/// transaction pooling mode) and MySQL, as `name::sqlite` and so on.
macro_rules! each_backend {
    ($(async fn $name:ident($backend:ident) $body:block)*) => { $(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($backend: $crate::helpers::Backend) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { run($crate::helpers::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::Backend::Postgres.available() { run($crate::helpers::Backend::Postgres).await }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pgbouncer() {
                if $crate::helpers::Backend::PgBouncer.available() { run($crate::helpers::Backend::PgBouncer).await }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                if $crate::helpers::Backend::MySql.available() { run($crate::helpers::Backend::MySql).await }
            }
        }
    )* };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// PostgreSQL through a PgBouncer in transaction pooling mode, started by the test.
    PgBouncer,
    MySql,
}

static PG_NOTICE: Once = Once::new();
static PGBOUNCER_NOTICE: Once = Once::new();
static MYSQL_NOTICE: Once = Once::new();

impl Backend {
    fn variable(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres | Backend::PgBouncer => "TESSERA_TEST_POSTGRES_URL",
            Backend::MySql => "TESSERA_TEST_MYSQL_URL",
        }
    }

    fn server_url(self) -> Option<String> {
        std::env::var(self.variable()).ok().filter(|v| !v.is_empty())
    }

    /// Whether this backend's server is configured; says once per run when it is skipped.
    /// The notice goes straight to stderr, past the test harness's capture, so it is seen.
    /// PgBouncer runs with PostgreSQL when Debian's `pgbouncer` is installed; with
    /// `TESSERA_TEST_PGBOUNCER=required` (as in CI) its absence fails the tests instead.
    pub fn available(self) -> bool {
        let configured = self == Backend::Sqlite || self.server_url().is_some();
        let notice = match self {
            Backend::Sqlite => return true,
            Backend::Postgres => &PG_NOTICE,
            Backend::PgBouncer => &PGBOUNCER_NOTICE,
            Backend::MySql => &MYSQL_NOTICE,
        };
        if !configured {
            notice.call_once(|| {
                let _ =
                    writeln!(std::io::stderr(), "NOTICE: {self:?} tests skipped: set {} to run them", self.variable());
            });
            return false;
        }
        if self == Backend::PgBouncer && !crate::pgbouncer::installed() {
            let required = std::env::var("TESSERA_TEST_PGBOUNCER").is_ok_and(|v| v == "required");
            assert!(!required, "TESSERA_TEST_PGBOUNCER=required, but pgbouncer is not installed");
            notice.call_once(|| {
                let _ = writeln!(std::io::stderr(), "NOTICE: PgBouncer tests skipped: install pgbouncer to run them");
            });
            return false;
        }
        true
    }
}

/// A database made for one test and dropped with it.
pub struct TestDb {
    /// The URL the service is given (through the pooler, for [`Backend::PgBouncer`]).
    pub url: String,
    /// The database itself, for the test's own statements.
    pub direct_url: String,
    /// Stopped before the database is dropped.
    pooler: Option<crate::pgbouncer::PgBouncer>,
    scratch: ScratchDb,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        sqlx::any::install_default_drivers();
        let server_url = match backend {
            Backend::Sqlite => None,
            _ => Some(backend.server_url().expect("the backend is available")),
        };
        let scratch = ScratchDb::create(server_url.as_deref(), "tessera_t").await.expect("create a test database");
        let pooler = match (backend, &server_url) {
            (Backend::PgBouncer, Some(server)) => Some(crate::pgbouncer::PgBouncer::start(server, &scratch.name)),
            _ => None,
        };
        let url = pooler.as_ref().map_or_else(|| scratch.url.clone(), |pooler| pooler.url.clone());
        Self { url, direct_url: scratch.url.clone(), pooler, scratch }
    }

    /// The first column of the first row of `query`, as text.
    pub async fn fetch_string(&self, query: &str) -> String {
        use sqlx::Row as _;
        let mut conn = AnyConnection::connect(&self.direct_url).await.unwrap();
        let row = sqlx::query(query).fetch_one(&mut conn).await.unwrap();
        conn.close().await.ok();
        // MySQL reports TEXT columns as blobs through the Any driver.
        row.try_get::<String, _>(0)
            .or_else(|_| row.try_get::<Vec<u8>, _>(0).map(|b| String::from_utf8(b).unwrap()))
            .unwrap()
    }

    /// The number `query` (a `SELECT COUNT(*) …`) answers.
    pub async fn count(&self, query: &str) -> i64 {
        use sqlx::Row as _;
        let mut conn = AnyConnection::connect(&self.direct_url).await.unwrap();
        let row = sqlx::query(query).fetch_one(&mut conn).await.unwrap();
        conn.close().await.ok();
        row.try_get::<i64, _>(0).unwrap()
    }

    /// Runs a statement on the test database directly (for set-ups the API does not offer).
    pub async fn execute(&self, statement: &str) {
        let mut conn = AnyConnection::connect(&self.direct_url).await.unwrap();
        conn.execute(statement).await.unwrap();
        conn.close().await.ok();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop(self.pooler.take());
        if let Err(error) = self.scratch.remove_blocking() {
            let _ = writeln!(std::io::stderr(), "could not drop test database {}: {error}", self.scratch.name);
        }
    }
}

/// The issuer every test application uses, so tokens survive a restart on another port.
pub const PUBLIC_URL: &str = "http://tessera.test";

/// A running application on its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: Arc<TestDb>,
    config: Config,
    _server: StopOnDrop,
}

/// Stops the server when the test app goes away.
struct StopOnDrop(Option<oneshot::Sender<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            stop.send(()).ok();
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDb::create(backend).await;
    spawn_on(db, adjust).await
}

/// Serves an application on an existing test database.
pub async fn spawn_on(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = base_config(&db);
    adjust(&mut config);
    serve(Arc::new(db), config).await
}

/// `count` nodes with the same settings on one fresh database, all started at once (so that
/// they race to migrate it and to make the first signing key and server secrets).
pub async fn spawn_nodes(backend: Backend, count: usize, adjust: impl FnOnce(&mut Config)) -> Vec<TestApp> {
    let db = Arc::new(TestDb::create(backend).await);
    let mut config = base_config(&db);
    adjust(&mut config);
    futures_util::future::join_all((0..count).map(|_| serve(db.clone(), config.clone()))).await
}

/// The settings every test application starts from, on `db`.
pub fn base_config(db: &TestDb) -> Config {
    Config::parse_from([
        "tessera",
        "--database-url",
        &db.url,
        "--listen",
        "127.0.0.1:0",
        "--public-url",
        PUBLIC_URL,
        "--hash-concurrency",
        "2",
        "--database-max-connections",
        "5",
        // Every test client is 127.0.0.1: the limits have tests of their own.
        "--rate-limit",
        "0",
    ])
    .expect("test configuration")
}

/// The configuration with one setting given as a flag, through the setting's own parser.
pub fn flag(name: &str, value: &str) -> Config {
    Config::parse_from(["tessera", name, value]).expect("a valid setting")
}

async fn serve(db: Arc<TestDb>, config: Config) -> TestApp {
    let app = Application::build(&config).await.expect("build the application");
    let address = format!("http://{}", app.address());
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(app.run_until(async {
        stopped.await.ok();
    }));
    TestApp { address, client: reqwest::Client::new(), db, config, _server: StopOnDrop(Some(stop)) }
}

impl TestApp {
    /// A second node with the same settings on the same database.
    pub async fn another_node(&self) -> TestApp {
        serve(self.db.clone(), self.config.clone()).await
    }

    /// Stops this node and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// Stops this node and starts a new one on the same database, with its settings adjusted.
    pub async fn restart_with(self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let TestApp { db, mut config, _server, .. } = self;
        drop(_server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        adjust(&mut config);
        serve(db, config).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn send_json(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut request = self.client.request(method, self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json(reqwest::Method::POST, path, None, body).await
    }

    pub async fn register(&self, body: &Value) -> Response {
        self.post("/v1/auth/register", body).await
    }

    /// Registers `username` (with `username@example.com`) and answers its user object.
    pub async fn register_user(&self, username: &str) -> Value {
        let body = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
        let response = self.register(&body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<Value>().await.unwrap()["user"].clone()
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post("/v1/auth/login", &json!({"username": username, "password": password})).await
    }

    /// Signs in and answers the access token.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let response = self.login(username, password).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Adds `count` synthetic accounts (`{prefix}0000000`, …) with `tessera admin seed`.
    pub fn seed(&self, count: u64, prefix: &str) {
        let output = tessera()
            .env("TESSERA_DATABASE_URL", &self.db.url)
            .args(["admin", "seed", "--users", &count.to_string(), "--prefix", prefix])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }

    /// Signs in by e-mail address with the test password; answers the access token.
    pub async fn token_by_email(&self, email: &str) -> String {
        let response = self.post("/v1/auth/login", &json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    }

    /// Registers and signs in; answers the user id and an access token.
    pub async fn signed_in(&self, username: &str) -> (String, String) {
        let user = self.register_user(username).await;
        let token = self.token(username, PASSWORD).await;
        (user["id"].as_str().unwrap().to_owned(), token)
    }
}

/// Asserts a problem+json answer with `status` and `code`; answers the body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["request_id"].is_string(), "{body}");
    body
}

/// The `field` codes of a validation problem.
pub fn field_codes(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| (e["field"].as_str().unwrap_or("").to_owned(), e["code"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}
