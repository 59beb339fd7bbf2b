//! Settings: built-in defaults < `causerie.toml` < `CAUSERIE_*` environment variables.
//!
//! One struct, validated once at start so a bad value fails loudly with the setting's name
//! instead of surfacing later as a confusing runtime error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// What `media_allowed_types` accepts unless configured: common images, PDF, audio, video.
pub const DEFAULT_ALLOWED_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "application/pdf",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "audio/m4a",
    "audio/aac",
    "audio/x-flac",
    "video/mp4",
    "video/webm",
    "video/quicktime",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid setting `{setting}`: {reason}")]
    Invalid { setting: &'static str, reason: String },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmailBackend {
    /// Print outgoing mail (the password reset link) to the log.
    Console,
    Smtp,
    /// Keep mail in memory (tests read it back).
    Memory,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The shape of a v1 socket's outbound message frames when its URL has no `format`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum V1Format {
    /// Day 2's shape: the text under `message`, the stored fields beside it.
    Text,
    /// The finished app's shape: `{"message":{…the stored message…}}`.
    Object,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP/WebSocket server listens on.
    pub bind: String,
    /// `sqlite://path` (or a bare path) or `postgres://…`.
    pub database_url: String,
    /// Max pooled database connections.
    pub database_max_connections: u32,
    /// HS256 signing key. When unset, one is generated and kept beside the database.
    pub secret_key: Option<String>,
    /// Where the generated key is kept when `secret_key` is unset (default: beside the SQLite file,
    /// or `causerie.secret` in the working directory for PostgreSQL).
    pub secret_key_file: Option<PathBuf>,
    /// Redis URL for fan-out across instances; unset means in-process fan-out.
    pub redis_url: Option<String>,

    pub access_token_lifetime_secs: u64,
    pub refresh_token_lifetime_secs: u64,
    /// SimpleJWT's ROTATE_REFRESH_TOKENS.
    pub rotate_refresh_tokens: bool,
    /// SimpleJWT's BLACKLIST_AFTER_ROTATION.
    pub blacklist_after_rotation: bool,

    /// Origins allowed by CORS. `["*"]` allows any (tokens travel in headers, not cookies).
    pub cors_origins: Vec<String>,
    /// Largest accepted HTTP request body in bytes.
    pub max_body_bytes: usize,

    pub email_backend: EmailBackend,
    pub email_from: String,
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    /// `starttls`, `tls` or `none`.
    pub smtp_security: String,
    /// Public base URL used in links sent by email.
    pub public_url: String,
    /// djoser's PASSWORD_RESET_CONFIRM_URL: path with `{uid}` and `{token}`.
    pub password_reset_confirm_url: String,

    /// Login attempts per client address per minute.
    pub rate_login_per_minute: u32,
    /// Registrations per client address per hour.
    pub rate_register_per_hour: u32,
    /// Password reset requests per client address per hour.
    pub rate_password_reset_per_hour: u32,
    /// Trust `X-Forwarded-For` for the client address (only behind a proxy you run).
    pub trust_forwarded_for: bool,

    /// Largest accepted WebSocket frame in bytes; larger closes the socket with 1009 (v1
    /// text frames up to `ws_max_photo_bytes` excepted).
    pub ws_max_frame_bytes: usize,
    /// Largest v1 text frame (one unfragmented frame) accepted when it is a photo frame (type
    /// 2 with a `data:` URL); a larger one is answered with an error frame, unread, and the
    /// socket stays open.
    pub ws_max_photo_bytes: usize,
    /// Bytes all sockets together may hold in frames larger than `ws_max_frame_bytes` at
    /// once; a socket whose frame does not fit waits (reading nothing) until others are done.
    pub ws_large_frame_budget_bytes: usize,
    /// Sustained inbound frames per second allowed on one socket.
    pub ws_frames_per_second: u32,
    /// Burst of inbound frames allowed on one socket above the sustained rate.
    pub ws_frames_burst: u32,
    /// Frames queued for one socket before it is considered a slow reader and dropped.
    pub ws_send_queue: usize,
    /// Seconds between server pings; a peer silent for three intervals is dropped.
    pub ws_ping_interval_secs: u64,
    /// The v1 frame shape of a socket whose URL names no `format` (`?format=` overrides).
    pub ws_v1_format: V1Format,
    /// Accept v1 sockets without a token on an existing chat; each frame's `author` must be a
    /// member of that chat. For the migration window of apps that send no token (a risk:
    /// anyone who knows a chat id and a member's id can post as that member).
    pub ws_allow_anonymous_v1: bool,
    /// Seconds after its expiry that an access token is still accepted at a WebSocket
    /// handshake (only there; the user must still be active and the token unrevoked).
    pub ws_token_grace_secs: u64,
    /// Seconds a v1 socket stays open after its token expired (v1 has no in-band
    /// re-authentication); then it is closed with 4401 `token expired`.
    pub ws_v1_expiry_grace_secs: u64,
    /// Origins a browser may open WebSockets from; unset: the CORS origins. `["*"]` allows
    /// any. Clients that send no `Origin` (apps, scripts) are not affected.
    pub ws_allowed_origins: Option<Vec<String>>,
    /// Most sockets one user may hold open at once (on every instance, with Redis); 0 for no
    /// cap. Checked at the handshake.
    pub ws_max_sockets_per_user: usize,

    /// Most messages in one commit.
    pub group_commit_max: usize,

    /// Seconds allowed for graceful shutdown after SIGTERM.
    pub shutdown_grace_secs: u64,

    /// Seconds a client has to send a request's head; also how long an idle keep-alive
    /// connection stays open (slow-header clients are cut off).
    pub http_header_timeout_secs: u64,
    /// Seconds a request body may go without sending any data.
    pub http_body_timeout_secs: u64,
    /// Most open connections (WebSockets included) from one client address; 0 for no cap.
    /// Not applied with `trust_forwarded_for` (every connection then comes from the proxy).
    pub max_connections_per_ip: usize,
    /// Connections the kernel may hold waiting for `accept` (capped by `net.core.somaxconn`).
    pub listen_backlog: u32,

    /// Seconds an admin site session lives without a request.
    pub admin_session_idle_secs: u64,
    /// Seconds an admin site session lives at most, however active.
    pub admin_session_max_secs: u64,

    // ---- accounts and abuse limits (docs/security.md) ---------------------------------
    /// Seconds a cached per-user auth record (activity, token epoch) may be served without
    /// storage; invalidation events make changes exact before that. 0 disables the cache.
    pub auth_cache_secs: u64,
    /// Seconds a user who declared themselves online (PATCH `online: true`) stays online
    /// without a socket or an authenticated request (docs/protocol.md, "Presence").
    pub presence_timeout_secs: u64,
    /// Seconds a user's cached chat list page may be served; every change it shows voids it
    /// at once (single instance; off whenever `redis_url` is set). Bounds what a CLI command
    /// writing around the server may leave stale. 0 disables the cache.
    pub chat_list_cache_secs: u64,
    /// Failed logins on one account (from anywhere) before each further attempt must wait.
    pub login_free_failures: u32,
    /// The longest wait between login attempts on one account (the backoff doubles up to it).
    pub login_backoff_max_secs: u64,
    /// Messages one user may post per second, over all sockets and REST together (0: no cap).
    pub user_messages_per_second: u32,
    /// With `trust_forwarded_for`: how many proxies of yours append to `X-Forwarded-For`; the
    /// client is the hop just before them (the right-most hop you did not write).
    pub trusted_proxies: usize,
    // ---- push notifications (docs/push.md) ----
    /// FCM HTTP v1: the service-account JSON (`project_id`, `client_email`, `private_key`,
    /// `token_uri`). Unset: no FCM pushes (Android/iOS devices are still stored).
    pub push_fcm_credentials_file: Option<PathBuf>,
    /// Where FCM's API is (tests point it at a fake).
    pub push_fcm_endpoint: String,
    /// Web Push: the VAPID private key (PEM, or the raw key in base64url). Unset: no Web Push.
    pub push_vapid_private_key_file: Option<PathBuf>,
    /// VAPID `sub`: a `mailto:` or `https:` contact for the push services.
    pub push_vapid_subject: String,
    /// Show the message text in the notification; false: a fixed "New message".
    pub push_preview: bool,
    /// Messages to one user within this many milliseconds become one push.
    pub push_coalesce_ms: u64,
    /// Sends of one push before it is given up (429 and 5xx are retried with backoff).
    pub push_max_attempts: u32,
    // ---- media (attachments) ----
    /// Directory of stored attachments when no S3 bucket is set (default: `media` beside the
    /// SQLite file, or in the working directory for PostgreSQL).
    pub media_root: Option<PathBuf>,
    /// Largest accepted upload in bytes; larger is refused (413) while it is read.
    pub media_max_bytes: u64,
    /// Content types accepted, as sniffed from the bytes (never the client's word).
    pub media_allowed_types: Vec<String>,
    /// Bytes one user may upload per 24 hours (429 beyond); 0 for no quota.
    pub media_quota_bytes_per_day: u64,
    /// Largest image accepted, in pixels (width × height): a decompression-bomb guard.
    pub media_max_pixels: u64,
    /// Seconds a signed download URL stays valid.
    pub media_url_ttl_secs: u64,
    /// S3 bucket for attachments; unset: the local directory `media_root`.
    pub media_s3_bucket: Option<String>,
    /// S3-compatible endpoint (e.g. `http://127.0.0.1:9000`); unset: AWS.
    pub media_s3_endpoint: Option<String>,
    /// S3 region (else `AWS_REGION` / `AWS_DEFAULT_REGION`).
    pub media_s3_region: Option<String>,

    pub log_format: LogFormat,
    /// `tracing` filter, e.g. `info,causerie=debug`.
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1:8000".into(),
            database_url: "sqlite://causerie.db".into(),
            database_max_connections: 10,
            secret_key: None,
            secret_key_file: None,
            redis_url: None,
            access_token_lifetime_secs: 30 * 60,
            refresh_token_lifetime_secs: 180 * 24 * 3600,
            // The series' settings (Day 2 on): the finished app stores the refresh token each
            // refresh returns, so rotation must be on or its second refresh fails.
            rotate_refresh_tokens: true,
            blacklist_after_rotation: true,
            cors_origins: vec!["*".into()],
            max_body_bytes: 1024 * 1024,
            email_backend: EmailBackend::Console,
            email_from: "webmaster@localhost".into(),
            smtp_host: None,
            smtp_port: 587,
            smtp_username: None,
            smtp_password: None,
            smtp_security: "starttls".into(),
            public_url: "http://127.0.0.1:8000".into(),
            password_reset_confirm_url: "#/password/reset/confirm/{uid}/{token}".into(),
            rate_login_per_minute: 20,
            rate_register_per_hour: 30,
            rate_password_reset_per_hour: 10,
            trust_forwarded_for: false,
            ws_max_frame_bytes: 64 * 1024,
            ws_max_photo_bytes: 10 * 1024 * 1024,
            ws_large_frame_budget_bytes: 256 * 1024 * 1024,
            ws_frames_per_second: 20,
            ws_frames_burst: 40,
            ws_send_queue: 1024,
            ws_ping_interval_secs: 20,
            ws_v1_format: V1Format::Text,
            ws_allow_anonymous_v1: false,
            ws_token_grace_secs: 0,
            ws_v1_expiry_grace_secs: 300,
            ws_allowed_origins: None,
            ws_max_sockets_per_user: 100,
            group_commit_max: 2048,
            shutdown_grace_secs: 10,
            http_header_timeout_secs: 10,
            http_body_timeout_secs: 30,
            max_connections_per_ip: 1024,
            listen_backlog: 4096,
            admin_session_idle_secs: 3600,
            admin_session_max_secs: 12 * 3600,
            auth_cache_secs: 60,
            presence_timeout_secs: 120,
            chat_list_cache_secs: 60,
            login_free_failures: 5,
            login_backoff_max_secs: 300,
            user_messages_per_second: 40,
            trusted_proxies: 1,
            push_fcm_credentials_file: None,
            push_fcm_endpoint: "https://fcm.googleapis.com".into(),
            push_vapid_private_key_file: None,
            push_vapid_subject: "mailto:webmaster@localhost".into(),
            push_preview: true,
            push_coalesce_ms: 2000,
            push_max_attempts: 5,
            media_root: None,
            media_max_bytes: 25 * 1024 * 1024,
            media_allowed_types: DEFAULT_ALLOWED_TYPES.iter().map(|t| t.to_string()).collect(),
            media_quota_bytes_per_day: 1024 * 1024 * 1024,
            media_max_pixels: 50_000_000,
            media_url_ttl_secs: 3600,
            media_s3_bucket: None,
            media_s3_endpoint: None,
            media_s3_region: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
        }
    }
}

impl Config {
    /// Loads defaults, then `causerie.toml` (or the given file), then `CAUSERIE_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let file = file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("causerie.toml"));
        // CAUSERIE_* also names things that are not settings (CAUSERIE_CONFIG, the tests'
        // CAUSERIE_TEST_*, the CLI's CAUSERIE_NEW_PASSWORD): only settings' names are read.
        let known = Config::setting_names();
        let env = Env::prefixed("CAUSERIE_")
            .map(|key| key.as_str().to_ascii_lowercase().into())
            .filter(move |key| known.iter().any(|k| k == key.as_str()));
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, reason: &str| {
            Err(ConfigError::Invalid {
                setting,
                reason: reason.into(),
            })
        };
        if self.bind.parse::<SocketAddr>().is_err() {
            return invalid("bind", "expected host:port, e.g. 127.0.0.1:8000");
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return invalid("database_url", "expected sqlite://PATH or postgres://…");
        }
        if self.database_max_connections == 0 {
            return invalid("database_max_connections", "must be at least 1");
        }
        if let Some(key) = &self.secret_key {
            if key.len() < 32 {
                return invalid("secret_key", "must be at least 32 characters");
            }
        }
        if let Some(url) = &self.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return invalid("redis_url", "expected redis://host:port");
            }
        }
        if self.access_token_lifetime_secs == 0 {
            return invalid("access_token_lifetime_secs", "must be positive");
        }
        if self.refresh_token_lifetime_secs < self.access_token_lifetime_secs {
            return invalid(
                "refresh_token_lifetime_secs",
                "must not be shorter than the access lifetime",
            );
        }
        if self.email_backend == EmailBackend::Smtp && self.smtp_host.is_none() {
            return invalid("smtp_host", "required when email_backend is smtp");
        }
        if !["starttls", "tls", "none"].contains(&self.smtp_security.as_str()) {
            return invalid("smtp_security", "expected starttls, tls or none");
        }
        if url::Url::parse(&self.public_url).is_err() {
            return invalid("public_url", "expected an absolute URL");
        }
        if self.max_body_bytes < 1024 {
            return invalid("max_body_bytes", "must be at least 1024");
        }
        if self.ws_max_frame_bytes < 256 {
            return invalid("ws_max_frame_bytes", "must be at least 256");
        }
        if self.ws_max_photo_bytes > u32::MAX as usize {
            return invalid("ws_max_photo_bytes", "must be at most 4294967295");
        }
        if self.ws_large_frame_budget_bytes > tokio::sync::Semaphore::MAX_PERMITS {
            return invalid("ws_large_frame_budget_bytes", "is too large");
        }
        if self.ws_large_frame_budget_bytes < self.ws_max_photo_bytes {
            // A frame larger than the whole budget would wait for ever.
            return invalid("ws_large_frame_budget_bytes", "must be at least ws_max_photo_bytes");
        }
        if self.ws_frames_per_second == 0 || self.ws_frames_burst == 0 {
            return invalid("ws_frames_per_second", "rate and burst must be positive");
        }
        if self.presence_timeout_secs == 0 {
            return invalid("presence_timeout_secs", "must be at least 1");
        }
        if self.ws_send_queue < 8 {
            return invalid("ws_send_queue", "must be at least 8");
        }
        if self.ws_token_grace_secs > 24 * 3600 {
            return invalid("ws_token_grace_secs", "must be at most 86400 (a day)");
        }
        if self.ws_allowed_origins.iter().flatten().any(|o| o.trim().is_empty()) {
            return invalid("ws_allowed_origins", "origins must not be empty");
        }
        if self.listen_backlog == 0 {
            return invalid("listen_backlog", "must be at least 1");
        }
        if self.http_header_timeout_secs == 0 {
            return invalid("http_header_timeout_secs", "must be at least 1");
        }
        if self.http_body_timeout_secs == 0 {
            return invalid("http_body_timeout_secs", "must be at least 1");
        }
        if self.admin_session_idle_secs == 0 {
            return invalid("admin_session_idle_secs", "must be at least 1");
        }
        if self.admin_session_max_secs < self.admin_session_idle_secs {
            return invalid(
                "admin_session_max_secs",
                "must not be shorter than admin_session_idle_secs",
            );
        }
        if url::Url::parse(&self.push_fcm_endpoint).is_err() {
            return invalid("push_fcm_endpoint", "expected an absolute URL");
        }
        if !(self.push_vapid_subject.starts_with("mailto:") || self.push_vapid_subject.starts_with("https:")) {
            return invalid("push_vapid_subject", "expected a mailto: or https: URL");
        }
        if self.push_max_attempts == 0 {
            return invalid("push_max_attempts", "must be at least 1");
        }
        if self.group_commit_max == 0 {
            return invalid("group_commit_max", "must be at least 1");
        }
        for (name, value) in [
            ("rate_login_per_minute", self.rate_login_per_minute),
            ("rate_register_per_hour", self.rate_register_per_hour),
            ("rate_password_reset_per_hour", self.rate_password_reset_per_hour),
        ] {
            if value == 0 {
                return invalid(name, "must be positive");
            }
        }
        if self.login_backoff_max_secs == 0 {
            return invalid("login_backoff_max_secs", "must be at least 1");
        }
        if self.trust_forwarded_for && self.trusted_proxies == 0 {
            return invalid("trusted_proxies", "must be at least 1 with trust_forwarded_for");
        }
        if self.media_max_bytes == 0 {
            return invalid("media_max_bytes", "must be positive");
        }
        if self.media_max_pixels == 0 {
            return invalid("media_max_pixels", "must be positive");
        }
        if self.media_url_ttl_secs == 0 {
            return invalid("media_url_ttl_secs", "must be at least 1");
        }
        if let Some(endpoint) = &self.media_s3_endpoint {
            if url::Url::parse(endpoint).is_err() {
                return invalid("media_s3_endpoint", "expected an absolute URL");
            }
        }
        if self.log_format == LogFormat::Json && self.log_level.is_empty() {
            return invalid("log_level", "must not be empty");
        }
        Ok(())
    }

    /// The names of every setting (the keys of the serialized defaults).
    pub fn setting_names() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The origins WebSocket handshakes are accepted from (`ws_allowed_origins`, else CORS's).
    pub fn ws_origins(&self) -> &[String] {
        self.ws_allowed_origins.as_deref().unwrap_or(&self.cors_origins)
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }

    pub fn bind_addr(&self) -> SocketAddr {
        // validate() proved it parses.
        self.bind.parse().expect("validated bind address")
    }
}
