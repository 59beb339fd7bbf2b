//! What the chat service announces after a change is stored. Realtime delivers these to
//! sockets (and through Redis to other instances); the chat service only knows the trait.

use serde::{Deserialize, Serialize};

use super::view::MessageView;
use crate::ids::{ChatId, MessageId, UserId};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum ChatEvent {
    /// A message was stored.
    Message {
        message: MessageView,
    },
    /// Its author changed the text.
    MessageEdited {
        message: MessageView,
    },
    MessageDeleted {
        chat: ChatId,
        id: MessageId,
        seq: i64,
    },
    /// `user` has read `chat` up to `upto_seq` and/or the listed messages.
    Read {
        chat: ChatId,
        user: UserId,
        upto_seq: Option<i64>,
        ids: Vec<MessageId>,
    },
    /// The chat's title changed, or the chat was deleted.
    ChatUpdated {
        chat: ChatId,
    },
    MemberAdded {
        chat: ChatId,
        user: UserId,
    },
    /// After delivery, the removed user's sockets leave the chat's room.
    MemberRemoved {
        chat: ChatId,
        user: UserId,
    },
}

impl ChatEvent {
    pub(crate) fn chat(&self) -> ChatId {
        match self {
            ChatEvent::Message { message } | ChatEvent::MessageEdited { message } => message.ref_chat,
            ChatEvent::MessageDeleted { chat, .. }
            | ChatEvent::Read { chat, .. }
            | ChatEvent::ChatUpdated { chat }
            | ChatEvent::MemberAdded { chat, .. }
            | ChatEvent::MemberRemoved { chat, .. } => *chat,
        }
    }
}

/// Where chat events go once stored.
pub(crate) trait EventSink: Send + Sync {
    /// Delivers `event` to the chat's followers and, outside the chat's room, to the sockets of
    /// `also_to` (a user just added to a group hears of it on their `/ws/` socket).
    fn publish(&self, event: ChatEvent, also_to: &[UserId]);
}
