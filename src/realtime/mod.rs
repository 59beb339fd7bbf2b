//! Realtime: WebSocket handshakes and sessions, the wire protocol, the room hub and fan-out.

pub mod event;
pub mod fanout;
pub mod hub;
pub mod protocol;
pub mod routes;
pub mod session;
