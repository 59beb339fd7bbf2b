//! What travels from the service to sockets (and, later, between instances): events, each
//! rendered at most once per wire format however many sockets receive it.

use std::sync::OnceLock;

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::chats::view::{micros, MessageView};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A message was stored.
    Message {
        message: MessageView,
    },
    /// Its author changed the text.
    MessageEdited {
        message: MessageView,
    },
    MessageDeleted {
        chat: Uuid,
        id: Uuid,
        seq: i64,
    },
    /// `user` has read `chat` up to `upto_seq` and/or the listed messages.
    Read {
        chat: Uuid,
        user: Uuid,
        upto_seq: Option<i64>,
        ids: Vec<Uuid>,
    },
    Typing {
        chat: Uuid,
        user: Uuid,
    },
    Presence {
        user: Uuid,
        online: bool,
        #[serde(with = "micros")]
        at: DateTime<Utc>,
    },
    /// The chat's membership or title changed.
    ChatUpdated {
        chat: Uuid,
    },
    MemberAdded {
        chat: Uuid,
        user: Uuid,
    },
    /// After delivery, the removed user's sockets leave the chat's room.
    MemberRemoved {
        chat: Uuid,
        user: Uuid,
    },
    /// Local only: events for this chat may have been missed (Redis was away); followers
    /// re-read what they are missing from storage. Never sent to clients as such.
    Resync {
        chat: Uuid,
    },
}

impl Event {
    /// The chat whose members receive this event (presence goes to users instead).
    pub fn chat(&self) -> Option<Uuid> {
        match self {
            Event::Message { message } | Event::MessageEdited { message } => Some(message.ref_chat),
            Event::MessageDeleted { chat, .. }
            | Event::Read { chat, .. }
            | Event::Typing { chat, .. }
            | Event::ChatUpdated { chat }
            | Event::MemberAdded { chat, .. }
            | Event::MemberRemoved { chat, .. }
            | Event::Resync { chat } => Some(*chat),
            Event::Presence { .. } => None,
        }
    }
}

/// How a socket wants its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Seed v1, `format=text`: `{"message":"hi", …stored fields}`.
    V1Text,
    /// Seed v1, `format=object`: `{"message":{…stored message}}`.
    V1Object,
    /// `causerie.v2` frames.
    V2,
}

/// An event with its frames rendered lazily, once per format, shared by every recipient.
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    v1_text: OnceLock<Option<Utf8Bytes>>,
    v1_object: OnceLock<Option<Utf8Bytes>>,
    v2: OnceLock<Option<Utf8Bytes>>,
}

impl Delivery {
    pub fn new(event: Event) -> Delivery {
        Delivery {
            event,
            v1_text: OnceLock::new(),
            v1_object: OnceLock::new(),
            v2: OnceLock::new(),
        }
    }

    /// The frame for `format`, or None when sockets of that format do not receive this event
    /// (v1 sockets only ever see new messages, which is all the seed's page understands).
    pub fn frame(&self, format: Format) -> Option<Utf8Bytes> {
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
    match (format, event) {
        (Format::V1Text, Event::Message { message }) => {
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
        (Format::V1Object, Event::Message { message }) => {
            Some(json!({ "message": MessageView { seq: None, client_id: None, ..message.clone() } }).to_string())
        }
        (Format::V2, Event::Resync { .. }) => None,
        (Format::V2, event) => Some(crate::realtime::protocol::v2_frame(event).to_string()),
        _ => None,
    }
}
