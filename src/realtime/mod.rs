//! Realtime: WebSocket handshakes and sessions (their frames are `crate::wire`'s), the room
//! hub, fan-out and presence. The `Realtime` service owns the open sockets: it tracks each
//! session's task and closes them all, in order, at shutdown.

mod errors;
mod event;
pub(crate) mod fanout;
mod gate;
mod hub;
mod photos;
mod presence;
pub(crate) mod routes;
mod session;
mod upgrade;
mod v2;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::Accounts;
use crate::chats::Chats;
use crate::config::{Config, V1Format};
use crate::ids::UserId;
pub(crate) use event::AccountClosed;
pub(crate) use fanout::Fanout;
pub(crate) use hub::Hub;
pub(crate) use presence::PresenceCounter;

/// The socket settings sessions run with.
pub(crate) struct SocketSettings {
    pub max_frame_bytes: usize,
    /// Largest v1 text frame read when it is a photo frame (`ws_max_photo_bytes`).
    pub max_photo_bytes: usize,
    /// Bytes all sockets may hold in frames over `max_frame_bytes` at once.
    pub large_frame_budget_bytes: usize,
    pub frames_per_second: u32,
    pub frames_burst: u32,
    pub send_queue: usize,
    pub ping_interval: Duration,
    /// The frame shape of a v1 socket whose URL names no `format`.
    pub v1_format: event::Format,
    /// Tokenless v1 sockets are accepted (`ws_allow_anonymous_v1`).
    pub allow_anonymous_v1: bool,
    /// Seconds an expired access token is still accepted at a handshake.
    pub token_grace_secs: u64,
    /// Seconds a v1 socket outlives its token.
    pub v1_expiry_grace_secs: u64,
    /// Origins browsers may open sockets from; None: any.
    pub allowed_origins: Option<Vec<String>>,
    /// Most open sockets per user; 0: no cap.
    pub max_sockets_per_user: usize,
}

impl SocketSettings {
    pub(crate) fn from_config(config: &Config) -> SocketSettings {
        SocketSettings {
            max_frame_bytes: config.ws_max_frame_bytes,
            max_photo_bytes: config.ws_max_photo_bytes,
            large_frame_budget_bytes: config.ws_large_frame_budget_bytes,
            frames_per_second: config.ws_frames_per_second,
            frames_burst: config.ws_frames_burst,
            send_queue: config.ws_send_queue,
            ping_interval: Duration::from_secs(config.ws_ping_interval_secs.max(1)),
            v1_format: match config.ws_v1_format {
                V1Format::Text => event::Format::V1Text,
                V1Format::Object => event::Format::V1Object,
            },
            allow_anonymous_v1: config.ws_allow_anonymous_v1,
            token_grace_secs: config.ws_token_grace_secs,
            v1_expiry_grace_secs: config.ws_v1_expiry_grace_secs,
            allowed_origins: {
                let origins = config.ws_origins();
                (!origins.iter().any(|o| o == "*")).then(|| origins.to_vec())
            },
            max_sockets_per_user: config.ws_max_sockets_per_user,
        }
    }
}

struct Inner {
    chats: Chats,
    accounts: Accounts,
    fanout: Fanout,
    presence: Arc<PresenceCounter>,
    settings: SocketSettings,
    /// The frame gate's limits and the server-wide budget for large frames.
    gate: Arc<gate::GateLimits>,
    /// Every session task, so that shutdown can wait for the last close handshake.
    sockets: TaskTracker,
    /// Cancelled when the server starts shutting down: sessions answer their pending sends,
    /// close with 1012 and end.
    closing: CancellationToken,
}

/// The realtime service: one per server, cheap to clone.
#[derive(Clone)]
pub(crate) struct Realtime(Arc<Inner>);

impl Realtime {
    pub(crate) fn new(
        chats: Chats,
        accounts: Accounts,
        fanout: Fanout,
        presence: Arc<PresenceCounter>,
        settings: SocketSettings,
    ) -> Realtime {
        let gate = Arc::new(gate::GateLimits {
            max_frame_bytes: settings.max_frame_bytes,
            max_large_bytes: settings.max_photo_bytes,
            budget: Arc::new(tokio::sync::Semaphore::new(settings.large_frame_budget_bytes)),
        });
        Realtime(Arc::new(Inner {
            chats,
            accounts,
            fanout,
            presence,
            settings,
            gate,
            sockets: TaskTracker::new(),
            closing: CancellationToken::new(),
        }))
    }

    pub(crate) fn chats(&self) -> &Chats {
        &self.0.chats
    }

    pub(crate) fn accounts(&self) -> &Accounts {
        &self.0.accounts
    }

    pub(crate) fn fanout(&self) -> &Fanout {
        &self.0.fanout
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        self.0.fanout.hub()
    }

    pub(crate) fn presence(&self) -> &PresenceCounter {
        &self.0.presence
    }

    pub(crate) fn settings(&self) -> &SocketSettings {
        &self.0.settings
    }

    /// What the gates of v1 sockets apply (they may carry photos).
    pub(crate) fn gate_limits(&self) -> Arc<gate::GateLimits> {
        self.0.gate.clone()
    }

    /// Resolves once the server starts shutting down.
    pub(crate) fn closing(&self) -> &CancellationToken {
        &self.0.closing
    }

    /// True when `user` already holds `ws_max_sockets_per_user` sockets (counted on every
    /// instance with Redis).
    pub(crate) async fn socket_cap_reached(&self, user: UserId) -> bool {
        let cap = self.settings().max_sockets_per_user;
        cap > 0 && self.presence().open_sockets(user).await >= cap
    }

    /// Runs a session as a tracked task of this service.
    fn track<F: Future<Output = ()> + Send + 'static>(&self, session: F) -> impl Future<Output = ()> + Send + 'static {
        self.0.sockets.track_future(session)
    }

    /// Closes every open socket of `user`, on this instance and every other one, with close
    /// 4401 (docs/protocol.md). Call after the change that makes their token stop working is
    /// stored, so that a reconnect is refused.
    pub(crate) fn disconnect_user(&self, user: UserId, why: AccountClosed) {
        self.0.fanout.disconnect(user, why);
    }

    /// True while `user` has a socket open on any instance (push notifications skip them).
    pub(crate) async fn is_online(&self, user: UserId) -> bool {
        self.0.presence.is_online(user).await
    }

    /// The presence task: declarations, leases and the sweep of users not seen within
    /// `timeout` (`presence_timeout_secs`), until `stop`.
    pub(crate) fn presence_task(
        &self,
        timeout: Duration,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        presence::run(self.clone(), timeout, stop)
    }

    /// Sockets open on this instance.
    pub(crate) fn open_sockets(&self) -> usize {
        self.hub().connection_count()
    }

    /// Live instances sharing this one's Redis; None without Redis (or when it does not answer).
    pub(crate) async fn live_instances(&self) -> Option<u64> {
        self.0.fanout.live_instances().await
    }

    /// Tells every session to close (1012, after answering what it has pending) and waits for
    /// them, at most `within`. Returns how many were still open when the time ran out.
    pub(crate) async fn close_sockets(&self, within: Duration) -> usize {
        self.0.closing.cancel();
        self.0.sockets.close();
        match tokio::time::timeout(within, self.0.sockets.wait()).await {
            Ok(()) => 0,
            Err(_) => self.0.sockets.len(),
        }
    }
}
