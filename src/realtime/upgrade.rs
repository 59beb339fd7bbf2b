//! The WebSocket upgrade, done here rather than by axum's `WebSocketUpgrade` so that the frame
//! gate (`gate`) can sit between the upgraded connection and tungstenite. The request checks and
//! their answers are axum's (RFC 6455 §4.2.1; RFC 8441 for HTTP/2).

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};

use super::gate::{FrameGate, GateLimits, LargeFrames};

/// The WebSocket of an upgraded connection.
pub(crate) type SocketStream = WebSocketStream<FrameGate<TokioIo<Upgraded>>>;
/// The halves a session splits its socket into.
pub(crate) type SocketSink = futures_util::stream::SplitSink<SocketStream, tungstenite::Message>;
pub(crate) type SocketReader = futures_util::stream::SplitStream<SocketStream>;

/// An open socket: the message stream, and what its gate took out of it.
pub(crate) struct Socket {
    pub(crate) ws: SocketStream,
    pub(crate) frames: Arc<LargeFrames>,
}

/// The socket over `upgraded`, handed to `session`.
fn open<F, Fut>(upgraded: Upgraded, config: WebSocketConfig, gate: Option<Arc<GateLimits>>, session: F) -> Fut
where
    F: FnOnce(Socket) -> Fut,
{
    use futures_util::FutureExt;
    let gate = FrameGate::new(TokioIo::new(upgraded), gate);
    let frames = gate.frames();
    // Without a handshake to do, tokio-tungstenite's constructor is ready at its first poll.
    let ws = WebSocketStream::from_raw_socket(gate, Role::Server, Some(config))
        .now_or_never()
        .expect("a WebSocket over an upgraded connection is ready at once");
    session(Socket { ws, frames })
}

/// A WebSocket handshake request, checked; answered by [`Upgrade::accept`].
pub(crate) struct Upgrade {
    on_upgrade: OnUpgrade,
    /// None over HTTP/2 (extended CONNECT has no key).
    key: Option<HeaderValue>,
    offered: Vec<HeaderValue>,
    selected: Option<HeaderValue>,
}

fn rejection(status: StatusCode, body: &'static str) -> Response {
    (status, body).into_response()
}

fn header_is(headers: &HeaderMap, name: HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|h| h.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

fn header_lists(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get(name).is_some_and(|h| {
        h.to_str()
            .is_ok_and(|h| h.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Upgrade, Response> {
        let key = if parts.version <= Version::HTTP_11 {
            if parts.method != Method::GET {
                return Err(rejection(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Request method must be `GET`",
                ));
            }
            if !header_lists(&parts.headers, header::CONNECTION, "upgrade") {
                return Err(rejection(
                    StatusCode::BAD_REQUEST,
                    "Connection header did not include 'upgrade'",
                ));
            }
            if !header_is(&parts.headers, header::UPGRADE, "websocket") {
                return Err(rejection(
                    StatusCode::BAD_REQUEST,
                    "`Upgrade` header did not include 'websocket'",
                ));
            }
            let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY) else {
                return Err(rejection(StatusCode::BAD_REQUEST, "`Sec-WebSocket-Key` header missing"));
            };
            Some(key.clone())
        } else {
            if parts.method != Method::CONNECT {
                return Err(rejection(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Request method must be `CONNECT`",
                ));
            }
            if parts
                .extensions
                .get::<hyper::ext::Protocol>()
                .is_none_or(|p| p.as_str() != "websocket")
            {
                return Err(rejection(
                    StatusCode::BAD_REQUEST,
                    "`:protocol` pseudo-header did not include 'websocket'",
                ));
            }
            None
        };
        if !header_is(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(rejection(
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Version` header did not include '13'",
            ));
        }
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(rejection(
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket request couldn't be upgraded since no upgrade state was present",
            ));
        };
        let offered = parts
            .headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .filter_map(|protocol| HeaderValue::from_bytes(protocol.trim_ascii()).ok())
            .collect();
        Ok(Upgrade {
            on_upgrade,
            key,
            offered,
            selected: None,
        })
    }
}

impl Upgrade {
    /// The subprotocols the client offered, in its order.
    pub(crate) fn requested_protocols(&self) -> impl Iterator<Item = &HeaderValue> {
        self.offered.iter()
    }

    /// Selects the first of `ours` that the client offered (echoed in the answer).
    pub(crate) fn protocols(mut self, ours: &[&'static str]) -> Upgrade {
        self.selected = ours
            .iter()
            .find(|p| self.offered.iter().any(|o| o.as_bytes() == p.as_bytes()))
            .map(|p| HeaderValue::from_static(p));
        self
    }

    pub(crate) fn selected_protocol(&self) -> Option<&HeaderValue> {
        self.selected.as_ref()
    }

    /// Answers the handshake and runs `session` on the socket once the connection is upgraded.
    /// `gate` None lets every frame reach tungstenite as it is (see `gate`).
    pub(crate) fn accept<F, Fut>(self, config: WebSocketConfig, gate: Option<Arc<GateLimits>>, session: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Upgrade {
            on_upgrade,
            key,
            selected,
            ..
        } = self;
        tokio::spawn(async move {
            // A client that goes away before the upgrade completes: nothing to run.
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            // Built outside this future, which then holds only the session's: every idle
            // socket's task would otherwise keep room for the gate and the constructor's future.
            open(upgraded, config, gate, session).await;
        });
        let mut response = match key {
            Some(key) => {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                let headers = response.headers_mut();
                headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
                // Safe: base64 is a valid header value.
                headers.insert(
                    header::SEC_WEBSOCKET_ACCEPT,
                    HeaderValue::from_str(&accept).expect("base64"),
                );
                response
            }
            // HTTP/2 (RFC 8441): a 2xx with no body opens the stream.
            None => Response::new(Body::empty()),
        };
        if let Some(protocol) = selected {
            response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        response
    }
}
