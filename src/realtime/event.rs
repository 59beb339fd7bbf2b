//! What travels from the service to sockets (and between instances): events, each rendered
//! into its frame at most once per wire format however many sockets receive it.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tungstenite::Utf8Bytes;

use crate::chats::events::ChatEvent;
use crate::chats::view::{micros, MessageView};
use crate::ids::{ChatId, UserId};
use crate::wire::v2::{
    ChatMessage, ChatUpdated, MemberChange, MessageDeleted, Presence, ReadReceipt, ServerFrame, TypingNotice,
    TYPING_EXPIRES_MS,
};
use crate::wire::{self, v1};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Event {
    /// Something stored in a chat (a message, an edit, a receipt, a membership change).
    Chat {
        event: ChatEvent,
    },
    Typing {
        chat: ChatId,
        user: UserId,
    },
    Presence {
        user: UserId,
        online: bool,
        #[serde(with = "micros")]
        at: DateTime<Utc>,
    },
    /// Local only: events for this chat may have been missed (Redis was away); followers
    /// re-read what they are missing from storage. Never sent to clients as such.
    Resync {
        chat: ChatId,
    },
    /// Every socket of `user`, on every instance, is closed (4401): the account was
    /// deactivated, deleted or its tokens revoked. Never sent to clients as a frame.
    Disconnect {
        user: UserId,
        why: AccountClosed,
    },
    /// The user's stored record changed: instances forget their cached copy (the account
    /// service's auth cache). Never sent to clients.
    AccountChanged {
        user: UserId,
    },
    /// Every instance that receives it answers `Heard` with the same token: it has applied
    /// every event its origin published before (one channel, one publisher: Redis keeps
    /// their order). Never sent to clients.
    Barrier {
        token: uuid::Uuid,
    },
    /// The answer to a `Barrier`. Never sent to clients.
    Heard {
        token: uuid::Uuid,
    },
}

/// Why an account's sockets were closed by the server (the account service's reason).
pub(crate) use crate::accounts::AccountClosed;

impl Event {
    /// The chat whose members receive this event (presence goes to users instead).
    pub(crate) fn chat(&self) -> Option<ChatId> {
        match self {
            Event::Chat { event } => Some(event.chat()),
            Event::Typing { chat, .. } | Event::Resync { chat } => Some(*chat),
            Event::Presence { .. }
            | Event::Disconnect { .. }
            | Event::AccountChanged { .. }
            | Event::Barrier { .. }
            | Event::Heard { .. } => None,
        }
    }

    /// The stored message this event carries, if it is one.
    pub(crate) fn new_message(&self) -> Option<&MessageView> {
        match self {
            Event::Chat {
                event: ChatEvent::Message { message },
            } => Some(message),
            _ => None,
        }
    }
}

/// How a socket wants its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Seed v1, `format=text`: `{"message":"hi", …stored fields}`.
    V1Text,
    /// Seed v1, `format=object`: `{"message":{…stored message}}`.
    V1Object,
    /// `causerie.v2` frames.
    V2,
}

/// An event with its frames rendered lazily, once per format, shared by every recipient.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) event: Event,
    v1_text: OnceLock<Option<Utf8Bytes>>,
    v1_object: OnceLock<Option<Utf8Bytes>>,
    v2: OnceLock<Option<Utf8Bytes>>,
}

impl Delivery {
    pub(crate) fn new(event: Event) -> Delivery {
        Delivery {
            event,
            v1_text: OnceLock::new(),
            v1_object: OnceLock::new(),
            v2: OnceLock::new(),
        }
    }

    /// The frame for `format`, or None when sockets of that format do not receive this event
    /// (v1 sockets only ever see new messages, which is all the seed's page understands).
    pub(crate) fn frame(&self, format: Format) -> Option<Utf8Bytes> {
        let cell = match format {
            Format::V1Text => &self.v1_text,
            Format::V1Object => &self.v1_object,
            Format::V2 => &self.v2,
        };
        cell.get_or_init(|| render(&self.event, format).map(Utf8Bytes::from))
            .clone()
    }
}

fn render(event: &Event, format: Format) -> Option<String> {
    match (format, event.new_message()) {
        // The seed's shapes carry only the contract's fields.
        (Format::V1Text, Some(message)) => Some(wire::to_text(&without_stream_fields(message))),
        (Format::V1Object, Some(message)) => Some(wire::to_text(&v1::ObjectFrame {
            message: without_stream_fields(message),
        })),
        (Format::V2, _) => v2_frame(event).map(|frame| wire::to_text(&frame)),
        _ => None,
    }
}

fn without_stream_fields(message: &MessageView) -> MessageView {
    MessageView {
        seq: None,
        client_id: None,
        // The seed's frames carry the contract's fields only: `extraData` is the URL.
        attachments: Vec::new(),
        ..message.clone()
    }
}

/// The v2 frame of an event (`None` for local-only events). Message objects are written from
/// the event's own, by reference.
fn v2_frame(event: &Event) -> Option<ServerFrame<&MessageView>> {
    Some(match event {
        Event::Chat { event } => match event {
            ChatEvent::Message { message } => ServerFrame::Message(ChatMessage {
                chat: message.ref_chat,
                message,
            }),
            ChatEvent::MessageEdited { message } => ServerFrame::MessageEdited(ChatMessage {
                chat: message.ref_chat,
                message,
            }),
            &ChatEvent::MessageDeleted { chat, id, seq } => {
                ServerFrame::MessageDeleted(MessageDeleted { chat, id, seq })
            }
            ChatEvent::Read {
                chat,
                user,
                upto_seq,
                ids,
            } => ServerFrame::Read(ReadReceipt {
                chat: *chat,
                user: *user,
                upto_seq: *upto_seq,
                ids: ids.clone(),
            }),
            &ChatEvent::ChatUpdated { chat } => ServerFrame::ChatUpdated(ChatUpdated { chat }),
            &ChatEvent::MemberAdded { chat, user } => ServerFrame::MemberAdded(MemberChange { chat, user }),
            &ChatEvent::MemberRemoved { chat, user } => ServerFrame::MemberRemoved(MemberChange { chat, user }),
        },
        &Event::Typing { chat, user } => ServerFrame::Typing(TypingNotice {
            chat,
            user,
            expires_in_ms: TYPING_EXPIRES_MS,
        }),
        &Event::Presence { user, online, at } => ServerFrame::Presence(Presence {
            user,
            online,
            last_connexion_date: at,
        }),
        Event::Resync { .. }
        | Event::Disconnect { .. }
        | Event::AccountChanged { .. }
        | Event::Barrier { .. }
        | Event::Heard { .. } => return None,
    })
}
