//! Black-box test harness: a real Causerie server on port 0 with its own database, and an HTTP
//! client with the helpers the suites share.
//!
//! Backends: SQLite (a fresh file in a temp dir) always; PostgreSQL when
//! `CAUSERIE_TEST_POSTGRES_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/test`): each
//! server then gets a fresh database `causerie_t_<uuid>`, created through that URL and dropped
//! again when the server is finished or dropped (also when the test panics).
//!
//! Two ways to run a test body on every backend:
//! - `backend_tests!(name, …)` turns each `async fn name(backend: Backend)` into the tests
//!   `name::sqlite` and `name::postgres` (the latter passes with a note when PostgreSQL is not
//!   configured), so each backend reports on its own;
//! - `for_each_backend(|srv| async move { … })` runs a body on a fresh default server per backend.
//!
//! Set `CAUSERIE_TEST_LOG=debug` (any tracing filter) to see the server's logs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use causerie::config::EmailBackend;
use causerie::ids::UserId;
use causerie::testing::{self, Handle};
use causerie::{Config, Server};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use tempfile::TempDir;
use uuid::Uuid;

pub use causerie::testing::store::users::UserRow;

pub mod ordered;
#[macro_use]
pub mod ws;

/// The variable that turns the PostgreSQL runs on.
pub const POSTGRES_ENV: &str = "CAUSERIE_TEST_POSTGRES_URL";

/// Generates, for each `async fn name(backend: Backend)`, a module `name` with the tests
/// `sqlite` and `postgres`.
#[allow(unused_macros)]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::common::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if !crate::common::Backend::Postgres.is_available() {
                        eprintln!(
                            "note: {} not set; skipping the PostgreSQL run of {}",
                            crate::common::POSTGRES_ENV,
                            stringify!($name)
                        );
                        return;
                    }
                    super::$name(crate::common::Backend::Postgres).await;
                }
            }
        )*
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn is_available(self) -> bool {
        match self {
            Backend::Sqlite => true,
            Backend::Postgres => postgres_admin_url().is_some(),
        }
    }

    /// SQLite, plus PostgreSQL when configured.
    pub fn available() -> Vec<Backend> {
        [Backend::Sqlite, Backend::Postgres]
            .into_iter()
            .filter(|b| b.is_available())
            .collect()
    }
}

fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|v| !v.trim().is_empty())
}

/// Runs `body` on a fresh default server for each available backend, one after the other.
pub async fn for_each_backend<F, Fut>(body: F)
where
    F: Fn(TestServer) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in Backend::available() {
        body(TestServer::start(backend).await).await;
    }
}

fn init_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if let Ok(filter) = std::env::var("CAUSERIE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// The configuration every test server starts from (the database URL is filled in later).
/// `causerie serve` on an ephemeral port as a real process (for what only a process shows:
/// signals, several instances): `configure` sets its environment; returns the child and the
/// address from the first line it prints.
pub fn spawn_serve(configure: impl FnOnce(&mut std::process::Command)) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_causerie"));
    command.args(["serve", "--bind", "127.0.0.1:0"]);
    configure(&mut command);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning causerie serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("reading the listening line");
    let addr = line
        .trim()
        .strip_prefix("Causerie listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (child, addr)
}

/// SimpleJWT's answer to an access token it does not accept (a bearer token on REST).
pub fn bad_access_token() -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{
            "token_class": "AccessToken",
            "token_type": "access",
            "message": "Token is invalid or expired"
        }]
    })
}

/// SimpleJWT's answer to a refresh or verified token it does not accept.
pub fn token_not_valid() -> Value {
    json!({ "detail": "Token is invalid or expired", "code": "token_not_valid" })
}

/// SimpleJWT's answer to a blacklisted refresh token.
pub fn blacklisted() -> Value {
    json!({ "detail": "Token is blacklisted", "code": "token_not_valid" })
}

pub fn base_config() -> Config {
    let mut key = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut key);
    Config {
        bind: "127.0.0.1:0".into(),
        database_max_connections: 5,
        secret_key: Some(hex::encode(key)),
        email_backend: EmailBackend::Memory,
        rate_login_per_minute: 10_000,
        rate_register_per_hour: 10_000,
        rate_password_reset_per_hour: 10_000,
        // Tests send fast from one user and fail logins on purpose; the tests of these limits
        // set them (tests/hardening.rs).
        login_free_failures: 10_000,
        user_messages_per_second: 0,
        shutdown_grace_secs: 5,
        ..Config::default()
    }
}

/// A PostgreSQL database owned by one test: created on start, dropped at the end (best effort).
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
    dropped: bool,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> PgDatabase {
        let name = format!("causerie_t_{}", Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {POSTGRES_ENV}={admin_url}: {e}"));
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let _ = conn.close().await;
        let mut url = url::Url::parse(admin_url).expect("CAUSERIE_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        PgDatabase {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
            dropped: false,
        }
    }

    async fn drop_database(admin_url: &str, name: &str) -> Result<(), sqlx::Error> {
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
            .await?;
        let _ = conn.close().await;
        Ok(())
    }

    pub async fn drop_now(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        if let Err(e) = Self::drop_database(&self.admin_url, &self.name).await {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside the test's runtime (or while unwinding): use a thread of our own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(rt) => {
                    if let Err(e) = rt.block_on(PgDatabase::drop_database(&admin_url, &name)) {
                        eprintln!("warning: could not drop test database {name}: {e}");
                    }
                }
                Err(e) => eprintln!("warning: no runtime to drop test database {name}: {e}"),
            }
        });
        let _ = cleanup.join();
    }
}

/// A running server with its own database, plus an HTTP client pointed at it.
///
/// Field order matters for `Drop`: the server goes first, then the database, then the temp dir.
pub struct TestServer {
    server: Option<Server>,
    pub state: Handle,
    db: testing::store::Db,
    /// The configuration the server started with.
    pub config: Config,
    pub addr: SocketAddr,
    pub backend: Backend,
    pub database_url: String,
    pub client: reqwest::Client,
    pg: Option<PgDatabase>,
    dir: Option<TempDir>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server whose configuration `tweak` may change (limits, lifetimes, …).
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        init_logging();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = base_config();
        let pg = match backend {
            Backend::Sqlite => {
                config.database_url = format!("sqlite://{}/test.db", dir.path().display());
                None
            }
            Backend::Postgres => {
                let admin = postgres_admin_url().unwrap_or_else(|| panic!("{POSTGRES_ENV} is not set"));
                let db = PgDatabase::create(&admin).await;
                config.database_url = db.url.clone();
                Some(db)
            }
        };
        // Attachments go to the test's own directory (else PostgreSQL runs would share ./media).
        config.media_root = Some(dir.path().join("media"));
        tweak(&mut config);
        Self::launch(backend, config, pg, Some(dir)).await
    }

    /// A second server on the same database (for multi-instance tests); it owns neither the
    /// database nor the temp dir, so it must not outlive `self`.
    pub async fn start_peer(&self, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = base_config();
        config.database_url = self.database_url.clone();
        config.secret_key = self.config.secret_key.clone();
        config.media_root = self.config.media_root.clone();
        tweak(&mut config);
        Self::launch(self.backend, config, None, None).await
    }

    async fn launch(backend: Backend, config: Config, pg: Option<PgDatabase>, dir: Option<TempDir>) -> TestServer {
        config.validate().expect("test configuration is valid");
        let database_url = config.database_url.clone();
        let server = Server::start(config.clone()).await.expect("server starts");
        assert_eq!(
            server.testing().db().is_postgres(),
            backend == Backend::Postgres,
            "server runs on {backend:?}"
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        TestServer {
            state: server.testing(),
            db: server.testing().db(),
            config,
            addr: server.addr(),
            server: Some(server),
            backend,
            database_url,
            client,
            pg,
            dir,
        }
    }

    /// Graceful end: stops the server, then drops the PostgreSQL database.
    pub async fn finish(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        if let Some(pg) = self.pg.as_mut() {
            pg.drop_now().await;
        }
    }

    /// Storage, for fixtures written straight to it. The server's cached users are forgotten
    /// first, so that it reads what the test writes (the server's own changes keep its cache
    /// exact; a test's direct writes go around it).
    pub fn db(&self) -> &testing::store::Db {
        if let Some(server) = &self.server {
            server.testing().forget_cached_users();
        }
        &self.db
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Mail captured by the memory backend.
    pub fn outbox(&self) -> Vec<testing::Email> {
        self.state.outbox()
    }

    // ---- HTTP ------------------------------------------------------------------------------

    /// Any request; `body` is sent as JSON when given.
    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        Reply::read(req.send().await.expect("request sent")).await
    }

    /// A request with a raw body and content type (or none) and optional extra headers.
    pub async fn request_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        Reply::read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None, None).await
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, None, Some(body)).await
    }

    pub async fn post_json_auth(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put_json_auth(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.request(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch_json_auth(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.request(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete_auth(&self, path: &str, token: &str, body: Option<&Value>) -> Reply {
        self.request(Method::DELETE, path, Some(token), body).await
    }

    // ---- accounts --------------------------------------------------------------------------

    /// Registers through the API; returns the new user's id.
    pub async fn register(&self, email: &str, password: &str) -> String {
        let reply = self
            .post_json("/auth/users/", &json!({ "email": email, "password": password }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "registering {email}: {}", reply.text);
        reply.body["id"].as_str().expect("id in registration reply").to_string()
    }

    /// Logs in through the API; returns `(access, refresh)`.
    pub async fn login(&self, email: &str, password: &str) -> (String, String) {
        let reply = self
            .post_json("/auth/jwt/create/", &json!({ "email": email, "password": password }))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "logging in {email}: {}", reply.text);
        let access = reply.body["access"].as_str().expect("access token").to_string();
        let refresh = reply.body["refresh"].as_str().expect("refresh token").to_string();
        (access, refresh)
    }

    /// Registers and logs in through the API.
    pub async fn create_user_and_login(&self, email: &str, password: &str) -> TestUser {
        let id = self.register(email, password).await;
        let (access, refresh) = self.login(email, password).await;
        TestUser {
            id,
            email: email.to_lowercase(),
            password: password.to_string(),
            access,
            refresh,
        }
    }

    /// A user written straight to the database (password hashed once per distinct password and
    /// cached) with tokens minted by the server's issuer: no API round trips, no rate limits.
    pub async fn quick_user(&self, email: &str, password: &str) -> TestUser {
        self.quick_user_named(email, password, "", "").await
    }

    pub async fn quick_user_named(&self, email: &str, password: &str, first_name: &str, last_name: &str) -> TestUser {
        let hash = cached_hash(password);
        let email = email.trim().to_lowercase();
        let row = testing::store::users::insert(
            self.db(),
            &testing::store::users::NewUser {
                email: &email,
                password_hash: &hash,
                first_name,
                last_name,
                is_staff: false,
                is_superuser: false,
            },
        )
        .await
        .expect("inserting a test user");
        TestUser {
            id: row.id.to_string(),
            email,
            password: password.to_string(),
            access: self.state.access_token(row.id),
            refresh: self.state.refresh_token(row.id),
        }
    }

    /// `n` quick users `user{i}@example.com` with password [`PASSWORD`].
    pub async fn quick_users(&self, n: usize) -> Vec<TestUser> {
        let mut users = Vec::with_capacity(n);
        for i in 0..n {
            users.push(self.quick_user(&format!("user{i}@example.com"), PASSWORD).await);
        }
        users
    }

    /// Opens (or finds) the two-person chat between `from` and `to` as `from`; the chat body.
    pub async fn open_chat(&self, from: &TestUser, to: &TestUser) -> Value {
        let reply = self
            .post_json_auth(
                "/api/createChat/",
                &from.access,
                &json!({ "refUser": from.id, "chatWithUser": to.id }),
            )
            .await;
        reply.expect_status(201);
        reply.body.clone()
    }

    pub async fn user_row_by_email(&self, email: &str) -> Option<UserRow> {
        testing::store::users::by_email(self.db(), email)
            .await
            .expect("reading a user")
    }

    pub async fn user_row(&self, id: &str) -> Option<UserRow> {
        testing::store::users::by_id(self.db(), id.parse().expect("uuid"))
            .await
            .expect("reading a user")
    }
}

/// A password every policy rule accepts.
pub const PASSWORD: &str = "Vintage-Lantern-42";

fn cached_hash(password: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hash) = cache.lock().unwrap().get(password) {
        return hash.clone();
    }
    let hash = testing::hash_password(password);
    cache.lock().unwrap().insert(password.to_string(), hash.clone());
    hash
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

impl TestUser {
    pub fn uuid(&self) -> Uuid {
        Uuid::parse_str(&self.id).expect("uuid")
    }

    pub fn user_id(&self) -> UserId {
        UserId(self.uuid())
    }
}

/// A response read to the end: status, headers, raw text and the JSON body (`Null` when empty,
/// a JSON string holding the text when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and the exact JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16, body: Value) -> &Reply {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        assert_eq!(self.body, body, "unexpected body (status {})", self.status);
        self
    }

    /// Asserts the status only.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Reply {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        self
    }

    /// Asserts the 401 challenge header SimpleJWT sends.
    #[track_caller]
    pub fn expect_bearer_challenge(&self) -> &Reply {
        assert_eq!(
            self.header("www-authenticate"),
            Some("Bearer realm=\"api\""),
            "WWW-Authenticate"
        );
        self
    }
}

/// The claims of a JWT, decoded without checking the signature.
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The djoser user body.
pub fn djoser_user(id: &str, email: &str, first_name: &str, last_name: &str) -> Value {
    json!({ "email": email, "id": id, "first_name": first_name, "last_name": last_name })
}
