//! WebSocket clients for the tests: real tokio-tungstenite sockets against the real server.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame it expects.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);
/// How long a test listens to be sure that no frame comes.
pub const QUIET_WAIT: Duration = Duration::from_millis(400);

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
    let mut request = url.into_client_request().expect("valid ws url");
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(protocol).unwrap());
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
    pub async fn send_json(&mut self, value: &Value) {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
            .expect("send frame");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("send frame");
    }

    /// The next JSON text frame (pings and pongs skipped); panics on close or timeout.
    pub async fn recv_json(&mut self) -> Value {
        match self.next_json(FRAME_WAIT).await {
            Some(value) => value,
            None => panic!("no frame within {FRAME_WAIT:?}"),
        }
    }

    /// The next JSON frame within `wait`, or None on timeout; panics on close.
    pub async fn next_json(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("socket closed while waiting for a frame"),
                Ok(Some(Err(err))) => panic!("socket error while waiting for a frame: {err}"),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Message::Text(text) => return Some(serde_json::from_str(&text).expect("frames are JSON")),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Binary(_) => panic!("unexpected binary frame"),
                Message::Close(close) => panic!("socket closed while waiting for a frame: {close:?}"),
            }
        }
    }

    /// Receives frames until one satisfies `want`, returning it (others are dropped).
    pub async fn recv_until(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = self.recv_json().await;
            if want(&frame) {
                return frame;
            }
        }
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
