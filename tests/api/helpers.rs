//! `spawn_app(backend)`: a fresh database per test (dropped afterwards) and the application
//! serving on a random port, with typed request helpers.

use std::io::Write as _;
use std::process::Stdio;
use std::sync::{Arc, Once};

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

/// Runs each test body on SQLite, PostgreSQL and MySQL, as `name::sqlite` and so on.
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
    MySql,
}

static PG_NOTICE: Once = Once::new();
static MYSQL_NOTICE: Once = Once::new();

impl Backend {
    fn variable(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => "TESSERA_TEST_POSTGRES_URL",
            Backend::MySql => "TESSERA_TEST_MYSQL_URL",
        }
    }

    fn server_url(self) -> Option<String> {
        std::env::var(self.variable()).ok().filter(|v| !v.is_empty())
    }

    /// Whether this backend's server is configured; says once per run when it is skipped.
    /// The notice goes straight to stderr, past the test harness's capture, so it is seen.
    pub fn available(self) -> bool {
        let available = self == Backend::Sqlite || self.server_url().is_some();
        if !available {
            let notice = if self == Backend::Postgres { &PG_NOTICE } else { &MYSQL_NOTICE };
            notice.call_once(|| {
                let _ =
                    writeln!(std::io::stderr(), "NOTICE: {self:?} tests skipped: set {} to run them", self.variable());
            });
        }
        available
    }
}

/// A database made for one test and dropped with it.
pub struct TestDb {
    pub url: String,
    scratch: ScratchDb,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        sqlx::any::install_default_drivers();
        let server_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres | Backend::MySql => Some(backend.server_url().expect("the backend is available")),
        };
        let scratch = ScratchDb::create(server_url.as_deref(), "tessera_t").await.expect("create a test database");
        Self { url: scratch.url.clone(), scratch }
    }

    /// The first column of the first row of `query`, as text.
    pub async fn fetch_string(&self, query: &str) -> String {
        use sqlx::Row as _;
        let mut conn = AnyConnection::connect(&self.url).await.unwrap();
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
        let mut conn = AnyConnection::connect(&self.url).await.unwrap();
        let row = sqlx::query(query).fetch_one(&mut conn).await.unwrap();
        conn.close().await.ok();
        row.try_get::<i64, _>(0).unwrap()
    }

    /// Runs a statement on the test database directly (for set-ups the API does not offer).
    pub async fn execute(&self, statement: &str) {
        let mut conn = AnyConnection::connect(&self.url).await.unwrap();
        conn.execute(statement).await.unwrap();
        conn.close().await.ok();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
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

/// A TCP proxy in front of a database server that a test can cut, to simulate an outage (the
/// server stopping, as the service sees it), and heal again.
pub struct Proxy {
    /// The database URL through the proxy.
    pub url: String,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(database_url: &str) -> Self {
        let authority_start = database_url.find("://").unwrap() + 3;
        let rest = &database_url[authority_start..];
        let host_end = rest.find('/').unwrap_or(rest.len());
        let host_port = rest[..host_end].rsplit('@').next().unwrap().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = database_url.replacen(&host_port, &format!("127.0.0.1:{port}"), 1);
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            // Ends with the proxy (its sender gone).
            while let Ok((mut client, _)) = listener.accept().await {
                if *watch.borrow() {
                    continue; // Cut: the connection is closed at once, as by a stopped server.
                }
                let target = host_port.clone();
                let mut cut = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = cut.wait_for(|cut| *cut) => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Self { url, cut }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send(true).ok();
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.cut.send(false).ok();
    }
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
