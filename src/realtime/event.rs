//! What travels from the service to sockets (and, later, between instances): events, each
//! rendered at most once per wire format however many sockets receive it.

use std::sync::OnceLock;

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::chats::events::ChatEvent;
use crate::chats::view::{micros, MessageView};
use crate::ids::{ChatId, UserId};

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
    /// deactivated or deleted. Never sent to clients as a frame.
    Disconnect {
        user: UserId,
        why: AccountClosed,
    },
}

/// Why an account's sockets were closed by the server.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AccountClosed {
    Deactivated,
    Deleted,
}

impl Event {
    /// The chat whose members receive this event (presence goes to users instead).
    pub(crate) fn chat(&self) -> Option<ChatId> {
        match self {
            Event::Chat { event } => Some(event.chat()),
            Event::Typing { chat, .. } | Event::Resync { chat } => Some(*chat),
            Event::Presence { .. } | Event::Disconnect { .. } => None,
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
        (Format::V1Text, Some(message)) => {
            let mut value = serde_json::to_value(MessageView {
                seq: None,
                client_id: None,
                ..message.clone()
            })
            .ok()?;
            // The seed's shape: the text under "message", the stored fields beside it.
            if let Some(map) = value.as_object_mut() {
                map.insert("message".into(), json!(message.message));
            }
            Some(value.to_string())
        }
        (Format::V1Object, Some(message)) => {
            Some(json!({ "message": MessageView { seq: None, client_id: None, ..message.clone() } }).to_string())
        }
        (Format::V2, _) => super::protocol::v2_frame(event).map(|frame| frame.to_string()),
        _ => None,
    }
}
