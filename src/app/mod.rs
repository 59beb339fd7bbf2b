//! Assembly: the services built from the configuration, the router, start-up and ordered
//! shutdown. This is the only module that sees every service.

mod lifecycle;
mod listener;
mod ops;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::{Extension, Router};
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::lifecycle::{periodically, Stage};
use self::ops::Ops;
pub(crate) use self::state::AppState;
use crate::accounts::{Accounts, NoListeners};
use crate::admin::Admin;
use crate::chats::events::EventSink;
use crate::chats::writer::MessageWriter;
use crate::chats::{Chats, MessageRate, ShownEvents};
use crate::config::Config;
use crate::error::ApiError;
use crate::http::{BodyLimit, LinkBase};
use crate::limits::RateLimits;
use crate::mail::Mailer;
use crate::media::Media;
use crate::push::{Providers, Push, PushSettings};
use crate::realtime::{Fanout, Hub, PresenceCounter, Realtime, SocketSettings};
use crate::store::Db;

/// Where the generated signing key is kept when `secret_key` is unset: `secret_key_file`, or
/// `causerie.secret` beside the SQLite file (the working directory for PostgreSQL).
pub(crate) fn secret_key_path(config: &Config) -> PathBuf {
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
pub(crate) async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url, config.database_max_connections)
        .await
        .with_context(|| "connecting to the database (setting `database_url`)")?;
    db.migrate().await.context("running database migrations")?;
    Ok(db)
}

/// The services an admin command needs: the database and the account and chat rules, without
/// the server's machinery (no writer task, no Redis, no sockets). Such a command stores no
/// messages; one that tried would be told storage is unavailable.
pub(crate) struct Offline {
    pub accounts: Accounts,
    pub chats: Chats,
    /// Devices and the push providers (`causerie push test`), without the outbox workers.
    pub push: Push,
}

impl Offline {
    pub(crate) async fn open(config: &Config) -> anyhow::Result<Offline> {
        let db = open_database(config).await?;
        let secret = load_secret(config)?;
        let media = Media::from_config(db.clone(), &secret, config)?;
        // No sockets to close and no other instance to tell (docs/security.md: a change made
        // here reaches running servers' caches within `auth_cache_secs`).
        let accounts = Accounts::new(
            db.clone(),
            secret,
            Mailer::from_config(config)?,
            config,
            Accounts::cache_for(config),
            Arc::new(NoListeners),
        );
        let nobody: Arc<dyn EventSink> = Arc::new(Fanout::in_process(Hub::new()));
        let (writer, unstarted) = MessageWriter::new(db.clone(), nobody.clone(), accounts.freshness().clone(), 1);
        drop(unstarted);
        let chats = Chats::new(
            db.clone(),
            accounts.clone(),
            nobody,
            writer,
            media,
            config.max_body_bytes,
            MessageRate::unlimited(),
            // A command answers once: nothing to keep between requests.
            Duration::ZERO,
        );
        let push = Push::new(db.clone(), Providers::from_config(config)?);
        Ok(Offline { accounts, chats, push })
    }
}

/// `causerie import-django --convert-photos`: the photos stored as `data:` URLs become
/// attachments (docs/media.md).
pub(crate) async fn convert_stored_photos(config: &Config) -> anyhow::Result<crate::chats::PhotoConversion> {
    let offline = Offline::open(config).await?;
    Ok(offline.chats.convert_stored_photos().await?)
}

/// Outbox workers per instance (each claims for a few users and sends to several at once).
const PUSH_WORKERS: usize = 2;

/// The stages shutdown stops, in order, after the listener and the sockets.
struct Stages {
    /// Group commit: drained after the sockets, so every send they read is answered.
    writer: Stage,
    /// Push outbox workers: after the writer (its last commits may add jobs, which the next
    /// start or another instance sends), before the services (they read presence).
    push: Stage,
    /// Redis relays, presence (refresh, leases, sweep), limiter sweeps: after the writer, so the last stored
    /// messages still reach other instances.
    services: Stage,
}

/// Builds every service and starts their background tasks.
async fn assemble(config: &Config, stages: &Stages) -> anyhow::Result<AppState> {
    let db = open_database(config).await?;
    let secret = load_secret(config)?;
    let auth_cache = Accounts::cache_for(config);
    let hub = Hub::new();
    let (fanout, presence, relays) = match &config.redis_url {
        Some(url) => {
            let (fanout, relays) = Fanout::redis(hub, url, auth_cache.clone())?;
            let (presence, refresh) = PresenceCounter::redis(url, &secret)?;
            stages.services.spawn_until_stopped(refresh);
            (fanout, presence, Some(relays))
        }
        None => (Fanout::in_process(hub), Arc::new(PresenceCounter::in_process()), None),
    };
    let media = Media::from_config(db.clone(), &secret, config)?;
    let accounts = Accounts::new(
        db.clone(),
        secret,
        Mailer::from_config(config)?,
        config,
        auth_cache,
        Arc::new(fanout.clone()),
    );
    // Messages leave with their attachments' signed URLs.
    let events: Arc<dyn EventSink> = Arc::new(ShownEvents::new(media.clone(), Arc::new(fanout.clone())));
    let (writer, writer_task) = MessageWriter::new(
        db.clone(),
        events.clone(),
        accounts.freshness().clone(),
        config.group_commit_max,
    );
    // Push: the outbox rows are written with the messages only when a provider is configured.
    let push = Push::new(db.clone(), Providers::from_config(config)?);
    let push_wake = Arc::new(tokio::sync::Notify::new());
    let push_settings = PushSettings::from_config(config);
    let writer_task = if push.enabled() {
        writer_task.with_push_outbox(push_settings.coalesce, push_wake.clone())
    } else {
        writer_task
    };
    stages.writer.spawn(|stop| writer_task.run(stop));
    let rate = MessageRate::new(
        config.user_messages_per_second,
        crate::counters::RedisCounters::open(config.redis_url.as_deref()),
    );
    let chats = Chats::new(
        db.clone(),
        accounts.clone(),
        events,
        writer,
        media.clone(),
        config.max_body_bytes,
        rate,
        // Another instance's writes are heard only later, through Redis: no cache there.
        match config.redis_url {
            Some(_) => Duration::ZERO,
            None => Duration::from_secs(config.chat_list_cache_secs),
        },
    );
    if let Some(relays) = relays {
        // The relays re-read memberships through the chat service after an outage.
        let chats = chats.clone();
        stages.services.spawn(|stop| relays.run(stop, chats));
    }
    // Uploads no message carried within a day, and those of deleted chats, are removed.
    let swept_media = media.clone();
    stages.services.spawn(|stop| async move {
        swept_media.sweep_now().await;
        periodically(Duration::from_secs(600), stop, move || {
            let media = swept_media.clone();
            async move { media.sweep_now().await }
        })
        .await
    });
    let realtime = Realtime::new(
        chats.clone(),
        accounts.clone(),
        fanout.clone(),
        presence,
        SocketSettings::from_config(config),
    );
    let timeout = Duration::from_secs(config.presence_timeout_secs);
    let presence_owner = realtime.clone();
    stages
        .services
        .spawn(|stop| presence_owner.presence_task(timeout, stop));
    if config.ws_allow_anonymous_v1 {
        tracing::warn!(
            "ws_allow_anonymous_v1 is on: v1 sockets without a token are accepted, and anyone who \
             knows a chat's id and a member's id can post as that member. Watch \
             causerie_ws_anonymous_sockets_total and causerie_ws_anonymous_messages_total on \
             /metrics and turn it off once no client needs it (docs/operations.md)."
        );
    }
    if push.enabled() {
        for _ in 0..PUSH_WORKERS {
            let worker = crate::push::Worker::new(
                db.clone(),
                push.clone(),
                realtime.clone(),
                push_settings.clone(),
                push_wake.clone(),
            );
            stages.push.spawn(|stop| worker.run(stop));
        }
    }
    let limits = RateLimits::new(config);
    let swept = limits.clone();
    let swept_accounts = accounts.clone();
    let swept_chats = chats.clone();
    stages.services.spawn(|stop| {
        periodically(Duration::from_secs(60), stop, move || {
            swept.sweep();
            swept_accounts.sweep();
            swept_chats.sweep();
            std::future::ready(())
        })
    });
    let flushed = accounts.clone();
    stages.services.spawn(|stop| {
        periodically(Duration::from_secs(3600), stop, move || {
            let accounts = flushed.clone();
            async move { accounts.flush_expired_blacklist().await }
        })
    });
    let admin = Admin::new(
        db.clone(),
        accounts.clone(),
        chats.clone(),
        realtime.clone(),
        push.clone(),
        config,
    );
    let swept_sessions = admin.clone();
    stages.services.spawn(|stop| {
        periodically(Duration::from_secs(3600), stop, move || {
            let admin = swept_sessions.clone();
            async move { admin.sweep_sessions().await }
        })
    });
    Ok(AppState {
        accounts,
        media,
        chats,
        realtime,
        limits,
        admin,
        push,
        ops: Arc::new(Ops {
            db,
            fanout,
            metrics: ops::metrics_handle(),
            stopping: CancellationToken::new(),
        }),
    })
}

/// The routes that carry their OpenAPI description (`#[utoipa::path]`), registered with it:
/// the document cannot list a route that is not served, nor miss one registered here.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::web::openapi::base())
        .merge(crate::accounts::routes::router())
        .merge(crate::chats::routes::router())
        .merge(crate::push::routes::router())
        .merge(crate::chats::attachment_routes::router())
        .merge(crate::web::documented_router())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics_text))
}

/// The OpenAPI document of the server: the documented routes, completed by `web::openapi`.
#[cfg(test)]
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    let (_, document) = documented_routes().split_for_parts();
    crate::web::openapi::complete(document)
}

fn router(state: AppState, config: &Config) -> Router {
    let (documented, document) = documented_routes().split_for_parts();
    let document = crate::web::openapi::complete(document);
    Router::new()
        .merge(documented)
        // The WebSocket handshakes are described in `web::openapi::sockets`, the docs page and
        // the chat client's assets are not part of the API.
        .merge(crate::realtime::routes::router())
        .merge(crate::web::router())
        .merge(crate::admin::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(crate::web::openapi::Served::new(&document)))
        .layer(Extension(BodyLimit(config.max_body_bytes)))
        .layer(Extension(LinkBase {
            public_url: config.public_url.clone(),
            trust_proxy: config.trust_forwarded_for,
        }))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
            config.http_body_timeout_secs,
        )))
        // The span names the path, never the query: `?token=` must not reach the logs.
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &Request| tracing::debug_span!("request", method = %req.method(), path = %req.uri().path()),
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(cors_layer(config))
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

/// A server listening on a socket, as tests and `serve` run it.
pub struct Server {
    addr: SocketAddr,
    pub(crate) state: AppState,
    grace: Duration,
    accepting: CancellationToken,
    http: tokio::task::JoinHandle<()>,
    stages: Stages,
}

impl Server {
    /// Binds `config.bind` (port 0 picks a free port), migrates, and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let listener = listener::bind(config.bind_addr(), config.listen_backlog)
            .with_context(|| format!("binding {} (setting `bind`)", config.bind))?;
        let addr = listener.local_addr()?;
        let stages = Stages {
            writer: Stage::new("message writer"),
            push: Stage::new("push workers"),
            services: Stage::new("background services"),
        };
        let state = assemble(&config, &stages).await?;
        let app = tower::ServiceExt::<Request>::map_request(router(state.clone(), &config), add_trailing_slash);
        let accepting = CancellationToken::new();
        let settings = listener::ListenerSettings {
            header_timeout: Duration::from_secs(config.http_header_timeout_secs),
            // Behind a trusted proxy every connection comes from the proxy: the cap would
            // count the proxy, not the clients.
            max_per_address: if config.trust_forwarded_for {
                0
            } else {
                config.max_connections_per_ip
            },
        };
        let http = tokio::spawn(listener::serve(listener, app, settings, accepting.clone()));
        Ok(Server {
            addr,
            state,
            grace: Duration::from_secs(config.shutdown_grace_secs),
            accepting,
            http,
            stages,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops in order, within the configured grace time: stop accepting; close every socket
    /// with 1012 (each first answers the sends it has read, then waits for the close
    /// handshake) while in-flight HTTP requests finish; drain the message writer (everything
    /// queued is committed and answered, anything later refused); stop the background
    /// services; close the database pool.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.grace;
        self.state.ops.stopping.cancel();
        self.accepting.cancel();
        let sockets = self.state.realtime.close_sockets(self.grace);
        let http = tokio::time::timeout_at(deadline, self.http);
        let (still_open, http) = tokio::join!(sockets, http);
        if still_open > 0 {
            tracing::warn!(still_open, "shutdown grace period over with sockets still open");
        }
        match http {
            Ok(joined) => joined?,
            Err(_) => tracing::warn!("shutdown grace period over with HTTP requests still running"),
        }
        self.stages.writer.stop(deadline).await;
        self.stages.push.stop(deadline).await;
        self.stages.services.stop(deadline).await;
        self.state.ops.db.close().await;
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
