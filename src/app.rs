//! Assembly: shared state, the router, start-up and graceful shutdown.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::jwt::TokenIssuer;
use crate::chats::writer::MessageWriter;
use crate::config::Config;
use crate::error::ApiError;
use crate::limits::RateLimits;
use crate::mail::Mailer;
use crate::realtime::fanout::Fanout;
use crate::realtime::hub::Hub;
use crate::realtime::presence::PresenceCounter;
use crate::store::Db;

pub struct Shared {
    pub config: Config,
    pub db: Db,
    pub tokens: TokenIssuer,
    /// The signing key, also used for password reset tokens.
    pub secret: Vec<u8>,
    pub limits: RateLimits,
    pub mailer: Mailer,
    pub metrics: PrometheusHandle,
    pub fanout: Fanout,
    pub presence: Arc<PresenceCounter>,
    pub writer: MessageWriter,
    /// Open WebSocket sessions (graceful shutdown waits for them to close).
    pub open_sockets: Arc<std::sync::atomic::AtomicUsize>,
    /// Flips to true when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The Prometheus recorder is process-global; several servers in one test process share it.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just stays unused.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Where the generated signing key is kept when `secret_key` is unset: `secret_key_file`, or
/// `causerie.secret` beside the SQLite file (the working directory for PostgreSQL).
pub fn secret_key_path(config: &Config) -> PathBuf {
    config.secret_key_file.clone().unwrap_or_else(|| {
        crate::store::sqlite_path(&config.database_url)
            .and_then(|db| db.parent())
            .map(|dir| dir.join("causerie.secret"))
            .unwrap_or_else(|| PathBuf::from("causerie.secret"))
    })
}

/// The signing key: configured, or read from / generated into a file beside the database.
fn load_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(key) = &config.secret_key {
        return Ok(key.as_bytes().to_vec());
    }
    let path = secret_key_path(config);
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing.trim().len() >= 32 => return Ok(existing.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!(
            "invalid setting `secret_key_file`: {} holds fewer than 32 characters",
            path.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("reading secret key file {}", path.display())),
    }
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    let key = hex::encode(bytes);
    write_private(&path, &key).with_context(|| format!("writing secret key file {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new secret key");
    Ok(key.into_bytes())
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

/// Connects to the database and runs migrations.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url, config.database_max_connections)
        .await
        .with_context(|| "connecting to the database (setting `database_url`)")?;
    db.migrate().await.context("running database migrations")?;
    Ok(db)
}

/// Everything the server needs, built from the configuration.
pub async fn build_state(config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<AppState> {
    let db = open_database(&config).await?;
    let secret = load_secret(&config)?;
    let tokens = TokenIssuer::new(
        &secret,
        Duration::from_secs(config.access_token_lifetime_secs),
        Duration::from_secs(config.refresh_token_lifetime_secs),
    );
    let (fanout, presence) = match &config.redis_url {
        Some(url) => (Fanout::redis(Hub::new(), url)?, PresenceCounter::redis(url)?),
        None => (Fanout::in_process(Hub::new()), Arc::new(PresenceCounter::in_process())),
    };
    let writer = MessageWriter::spawn(db.clone(), fanout.clone(), config.group_commit_max);
    let shared = Shared {
        fanout,
        writer,
        presence,
        open_sockets: Arc::default(),
        limits: RateLimits::new(&config),
        mailer: Mailer::from_config(&config)?,
        metrics: metrics_handle(),
        config,
        db,
        tokens,
        secret,
        shutdown,
    };
    Ok(AppState(Arc::new(shared)))
}

pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config);
    Router::new()
        .merge(crate::accounts::routes::router())
        .merge(crate::chats::routes::router())
        .merge(crate::realtime::routes::router())
        .merge(crate::web::router())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(cors)
        .with_state(state)
}

fn cors_layer(config: &Config) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(Any)
        .max_age(Duration::from_secs(86400));
    if config.cors_origins.iter().any(|o| o == "*") {
        base.allow_origin(Any)
    } else {
        let origins: Vec<HeaderValue> = config.cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
        base.allow_origin(AllowOrigin::list(origins))
    }
}

/// Paths are declared with their trailing slash, as Django has them; a request without it is
/// served the same (djoser's JWT routes accept both, and apps differ). Runs before routing.
fn add_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    let wants_slash = !path.ends_with('/')
        && [
            "/auth/",
            "/api/",
            "/ws/",
            "/chat",
            "/devices",
            "/admin",
            "/documentation",
        ]
        .iter()
        .any(|p| path.starts_with(p));
    if wants_slash {
        let new_path = match req.uri().query() {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = new_path.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(req.method().to_string())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let database = state.db.ping().await;
    let redis = state.fanout.ready();
    let ready = database && redis && !*state.shutdown.borrow();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if ready { "ready" } else { "unavailable" }, "database": database, "redis": if state.fanout.uses_redis() { json!(redis) } else { json!(null) } })),
    )
        .into_response()
}

async fn metrics_text(State(state): State<AppState>) -> String {
    state.metrics.render()
}

/// A server listening on a socket, as tests and `serve` run it.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `config.bind` (port 0 picks a free port), migrates, and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(config.bind_addr())
            .await
            .with_context(|| format!("binding {} (setting `bind`)", config.bind))?;
        let addr = listener.local_addr()?;
        // Chat frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm holds
        // an ack back until the client's delayed ACK for the previous frame arrives (~40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY");
            }
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = build_state(config, shutdown_rx.clone()).await?;
        let app = tower::ServiceExt::<Request>::map_request(router(state.clone()), add_trailing_slash);
        let app = axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app);
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopping| *stopping).await;
                })
                .await
        });
        Ok(Server {
            addr,
            state,
            shutdown,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, waits at most the configured grace time.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs);
        match tokio::time::timeout(grace, self.task).await {
            Ok(joined) => joined??,
            Err(_) => {
                tracing::warn!("shutdown grace period over; exiting with connections still open")
            }
        }
        self.state.db.close().await;
        Ok(())
    }
}

/// Raises this process's soft open-files limit to the hard one (each socket is a file);
/// returns the limit now in force.
pub fn raise_open_files_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if setrlimit(Resource::Nofile, raised).is_ok() {
        limit.maximum.unwrap_or(u64::MAX)
    } else {
        limit.current.unwrap_or(u64::MAX)
    }
}
