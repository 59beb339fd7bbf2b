//! WebSocket clients for the tests: real tokio-tungstenite sockets against the real server.

use std::time::Duration;

use causerie::wire::v2::ServerFrame;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The fields of a frame of `variant` (e.g. `ServerFrame::Ack`); panics on a frame of another
/// type. Works on a frame and on a reference to one.
#[allow(unused_macros)]
macro_rules! frame_of {
    ($frame:expr, $variant:path) => {
        match $frame {
            $variant(fields) => fields,
            other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    };
}

/// How long a test waits for a frame it expects.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);
/// How long a test listens to be sure that no frame comes.
pub const QUIET_WAIT: Duration = Duration::from_millis(400);

/// A frame's JSON with `field` taken out: how a test makes a malformed frame from a good one.
pub fn without(frame: impl Serialize, field: &str) -> Value {
    let mut frame = serde_json::to_value(frame).expect("frames serialize");
    frame.as_object_mut().expect("frames are objects").remove(field);
    frame
}

/// A frame's JSON with `field` set to `value`.
pub fn with(frame: impl Serialize, field: &str, value: impl Into<Value>) -> Value {
    let mut frame = serde_json::to_value(frame).expect("frames serialize");
    frame[field] = value.into();
    frame
}

pub struct WsClient {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The subprotocol the server selected, if any.
    pub protocol: Option<String>,
}

/// The outcome of a handshake the server refused.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

/// Opens a socket at `url` (ws://…), offering `protocol` when given.
pub async fn try_connect(url: &str, protocol: Option<&str>) -> Result<WsClient, Refused> {
    match protocol {
        Some(protocol) => try_connect_with(url, &[("Sec-WebSocket-Protocol", protocol)]).await,
        None => try_connect_with(url, &[]).await,
    }
}

/// Opens a socket at `url` with these extra handshake headers (`Origin`, `Sec-WebSocket-Protocol`).
pub async fn try_connect_with(url: &str, headers: &[(&'static str, &str)]) -> Result<WsClient, Refused> {
    let mut request = url.into_client_request().expect("valid ws url");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok(WsClient { socket, protocol })
        }
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Err(Refused {
                status: response.status().as_u16(),
                body,
            })
        }
        Err(other) => panic!("WebSocket connection to {url} failed: {other}"),
    }
}

pub async fn connect(url: &str, protocol: Option<&str>) -> WsClient {
    match try_connect(url, protocol).await {
        Ok(client) => client,
        Err(refused) => panic!("handshake to {url} refused: {refused:?}"),
    }
}

impl WsClient {
    /// Sends a frame: one of `causerie::wire`'s, or raw JSON for a malformed one.
    pub async fn send_frame(&mut self, frame: &impl Serialize) {
        let text = serde_json::to_string(frame).expect("frames serialize");
        self.send_text(&text).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("send frame");
    }

    /// The next JSON text frame (pings and pongs skipped); panics on close or timeout.
    pub async fn recv_json(&mut self) -> Value {
        self.recv().await
    }

    /// The next v2 frame; panics on close, timeout, or a frame that is not a v2 frame.
    pub async fn recv_frame(&mut self) -> ServerFrame {
        self.recv().await
    }

    /// The next text frame read as `T`; panics on close, timeout, or another shape.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> T {
        match self.next(FRAME_WAIT).await {
            Some(frame) => frame,
            None => panic!("no frame within {FRAME_WAIT:?}"),
        }
    }

    /// The next JSON frame within `wait`, or None on timeout; panics on close.
    pub async fn next_json(&mut self, wait: Duration) -> Option<Value> {
        self.next(wait).await
    }

    /// The next v2 frame within `wait`, or None on timeout; panics on close.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<ServerFrame> {
        self.next(wait).await
    }

    /// The next text frame within `wait`, read as `T`, or None on timeout; panics on close.
    pub async fn next<T: DeserializeOwned>(&mut self, wait: Duration) -> Option<T> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("socket closed while waiting for a frame"),
                Ok(Some(Err(err))) => panic!("socket error while waiting for a frame: {err}"),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Message::Text(text) => {
                    return Some(
                        serde_json::from_str(&text).unwrap_or_else(|err| panic!("unexpected frame {text}: {err}")),
                    )
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Binary(_) => panic!("unexpected binary frame"),
                Message::Close(close) => panic!("socket closed while waiting for a frame: {close:?}"),
            }
        }
    }

    /// Receives v2 frames until one satisfies `want`, returning it (others are dropped).
    pub async fn recv_until(&mut self, want: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            let frame = self.recv_frame().await;
            if want(&frame) {
                return frame;
            }
        }
    }

    /// Receives v2 frames up to and including the first one `want` accepts.
    pub async fn frames_until(&mut self, want: impl Fn(&ServerFrame) -> bool) -> Vec<ServerFrame> {
        let mut seen = Vec::new();
        loop {
            let frame = self.recv_frame().await;
            let done = want(&frame);
            seen.push(frame);
            if done {
                return seen;
            }
        }
    }

    /// Every frame that arrives within a short while (none has to).
    pub async fn frames_for_a_while(&mut self) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + QUIET_WAIT;
        while let Some(frame) = self
            .next_frame(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            frames.push(frame);
        }
        frames
    }

    /// Asserts that no text frame arrives for a short while.
    pub async fn expect_silence(&mut self) {
        if let Some(frame) = self.next_json(QUIET_WAIT).await {
            panic!("expected no frame, got {frame}");
        }
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => panic!("socket not closed within {FRAME_WAIT:?}"),
                Ok(None) => return None,
                Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .socket
            .close(Some(tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
    }
}
