//! v2, `causerie.v2` (docs/protocol.md "v2"): acknowledged, idempotent sends; per-chat ordered
//! streams with `resume`; receipts, typing, presence, edits, deletes and group membership.
//!
//! A client sends [`ClientFrame`]s (a [`Command`] and an optional `ref`); the server answers
//! and delivers [`ServerFrame`]s.

mod client;
mod server;

pub(crate) use client::Refused;
pub use client::{
    Authenticate, ClientFrame, Command, DeleteMessage, EditMessage, MarkRead, Mute, ReadUpto, Resume, SendMessage,
    Subscribe, Typing, Unsubscribe, RESUME_MAX_CHATS,
};
pub use server::{
    Ack, Authenticated, ChatMessage, ChatUpdated, ErrorReply, FrameType, MessageDeleted, Muted, Pong, Presence,
    ReadReceipt, ServerFrame, Subscribed, TypingNotice, Unsubscribed,
};

use serde::{Deserialize, Serialize};

use crate::ids::{ChatId, UserId};

/// The WebSocket subprotocol that selects v2.
pub const SUBPROTOCOL: &str = "causerie.v2";

/// How long receivers show "typing…" without a newer `typing` frame.
pub const TYPING_EXPIRES_MS: u64 = 5000;

/// A group membership change: the `add_member` / `remove_member` commands, and the
/// `member_added` / `member_removed` frames that announce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    pub chat: ChatId,
    pub user: UserId,
}
