//! Realtime: WebSocket handshakes and sessions, the wire protocol, the room hub and fan-out.

pub mod event;
pub mod fanout;
pub mod hub;
pub mod presence;
pub mod protocol;
pub mod routes;
pub mod session;
pub mod v2;
