//! Settings: built-in defaults < `causerie.toml` < `CAUSERIE_*` environment variables.
//!
//! One struct, validated once at start so a bad value fails loudly with the setting's name
//! instead of surfacing later as a confusing runtime error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

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

    /// Largest accepted WebSocket frame in bytes; larger closes the socket with 1009.
    pub ws_max_frame_bytes: usize,
    /// Sustained inbound frames per second allowed on one socket.
    pub ws_frames_per_second: u32,
    /// Burst of inbound frames allowed on one socket above the sustained rate.
    pub ws_frames_burst: u32,
    /// Frames queued for one socket before it is considered a slow reader and dropped.
    pub ws_send_queue: usize,
    /// Seconds between server pings; a peer silent for three intervals is dropped.
    pub ws_ping_interval_secs: u64,

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
            rotate_refresh_tokens: false,
            blacklist_after_rotation: false,
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
            ws_frames_per_second: 20,
            ws_frames_burst: 40,
            ws_send_queue: 1024,
            ws_ping_interval_secs: 20,
            group_commit_max: 2048,
            shutdown_grace_secs: 10,
            http_header_timeout_secs: 10,
            http_body_timeout_secs: 30,
            max_connections_per_ip: 1024,
            listen_backlog: 4096,
            admin_session_idle_secs: 3600,
            admin_session_max_secs: 12 * 3600,
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
        if self.ws_frames_per_second == 0 || self.ws_frames_burst == 0 {
            return invalid("ws_frames_per_second", "rate and burst must be positive");
        }
        if self.ws_send_queue < 8 {
            return invalid("ws_send_queue", "must be at least 8");
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

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }

    pub fn bind_addr(&self) -> SocketAddr {
        // validate() proved it parses.
        self.bind.parse().expect("validated bind address")
    }
}
