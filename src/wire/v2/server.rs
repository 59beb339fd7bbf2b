//! Server → client: replies and deliveries.
//!
//! The frames that carry a message object are generic over how it is read: the server writes
//! `&MessageView`, clients read a [`MessageView`] (the default) or, to read many frames fast, a
//! [`MessageDigest`](crate::wire::MessageDigest).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::MemberChange;
use crate::chats::view::micros;
use crate::ids::{ChatId, MessageId, UserId};
use crate::wire::{ErrorBody, MessageView};

/// Every frame the server sends a v2 socket, by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<M = MessageView> {
    /// A `send` is stored (only to the sending socket, before its own `message` frame).
    Ack(Ack<M>),
    /// A message in a chat the socket follows, in `seq` order, once.
    Message(ChatMessage<M>),
    Subscribed(Subscribed),
    Unsubscribed(Unsubscribed),
    MessageEdited(ChatMessage<M>),
    MessageDeleted(MessageDeleted),
    Read(ReadReceipt),
    Typing(TypingNotice),
    Presence(Presence),
    MemberAdded(MemberChange),
    MemberRemoved(MemberChange),
    /// A group's title changed, or the chat was deleted.
    ChatUpdated(ChatUpdated),
    /// A `mute` is stored (only to the socket that sent it).
    Muted(Muted),
    Pong(Pong),
    /// An `auth` frame's token was accepted: the socket now lives until `expiresAt`.
    Authenticated(Authenticated),
    Error(ErrorReply),
}

/// The `type` of a [`ServerFrame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameType {
    Ack,
    Message,
    Subscribed,
    Unsubscribed,
    MessageEdited,
    MessageDeleted,
    Read,
    Typing,
    Presence,
    MemberAdded,
    MemberRemoved,
    ChatUpdated,
    Muted,
    Pong,
    Authenticated,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack<M = MessageView> {
    pub client_id: String,
    pub chat: ChatId,
    /// True for a retry: nothing new was stored, `message` is the message stored before.
    pub duplicate: bool,
    pub message: M,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Value>,
}

/// `message` and `message_edited`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage<M = MessageView> {
    pub chat: ChatId,
    pub message: M,
}

/// After a subscribe or resume, once the replay is done: the socket holds every message up to
/// `last_seq`, and live ones follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscribed {
    pub chat: ChatId,
    pub last_seq: i64,
    /// More is stored after `last_seq` than one frame replays: the chat is not followed yet;
    /// subscribe again with `afterSeq` = `last_seq` for the next page.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsubscribed {
    pub chat: ChatId,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Value>,
}

/// The caller's mute flag of `chat` as now stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Muted {
    pub chat: ChatId,
    pub muted: bool,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeleted {
    pub chat: ChatId,
    pub id: MessageId,
    pub seq: i64,
}

/// `user` read the chat up to `upto_seq`, or the listed messages (REST `isRead` /
/// `updateMessagesStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    pub chat: ChatId,
    pub user: UserId,
    pub upto_seq: Option<i64>,
    pub ids: Vec<MessageId>,
}

/// Show "typing…" for `user` until `expires_in_ms` passes without another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingNotice {
    pub chat: ChatId,
    pub user: UserId,
    pub expires_in_ms: u64,
}

/// A user one shares a chat with came online or went offline (sockets, the app's own
/// declaration, or silence for `presence_timeout_secs`: docs/protocol.md, "Presence").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    pub user: UserId,
    pub online: bool,
    #[serde(with = "micros")]
    pub last_connexion_date: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUpdated {
    pub chat: ChatId,
}

/// The answer to an `auth` frame: whose socket it is, and when its new token expires (send a
/// fresh `auth` before then, or the socket is closed with 4401 `token expired`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authenticated {
    pub user: UserId,
    #[serde(with = "micros")]
    pub expires_at: DateTime<Utc>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Value>,
}

/// A refused frame: nothing changed, the socket stays open. It carries the refused frame's
/// `ref`; `chat` when it is about one chat of several (`resume`, the chat of a `/ws/chat/`
/// URL); `chat` and `clientId` when it answers a `send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReply {
    pub code: Cow<'static, str>,
    pub detail: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl ErrorReply {
    /// The error frame for `error`, answering a frame that carried `reference`.
    pub fn new(error: ErrorBody, reference: Option<Value>) -> ErrorReply {
        ErrorReply {
            code: error.code,
            detail: error.detail,
            reference,
            chat: None,
            client_id: None,
        }
    }

    /// The same error, about `chat`.
    pub fn about(self, chat: ChatId) -> ErrorReply {
        ErrorReply {
            chat: Some(chat),
            ..self
        }
    }
}

impl<M> ServerFrame<M> {
    pub fn kind(&self) -> FrameType {
        match self {
            ServerFrame::Ack(_) => FrameType::Ack,
            ServerFrame::Message(_) => FrameType::Message,
            ServerFrame::Subscribed(_) => FrameType::Subscribed,
            ServerFrame::Unsubscribed(_) => FrameType::Unsubscribed,
            ServerFrame::MessageEdited(_) => FrameType::MessageEdited,
            ServerFrame::MessageDeleted(_) => FrameType::MessageDeleted,
            ServerFrame::Read(_) => FrameType::Read,
            ServerFrame::Typing(_) => FrameType::Typing,
            ServerFrame::Presence(_) => FrameType::Presence,
            ServerFrame::MemberAdded(_) => FrameType::MemberAdded,
            ServerFrame::MemberRemoved(_) => FrameType::MemberRemoved,
            ServerFrame::ChatUpdated(_) => FrameType::ChatUpdated,
            ServerFrame::Muted(_) => FrameType::Muted,
            ServerFrame::Pong(_) => FrameType::Pong,
            ServerFrame::Authenticated(_) => FrameType::Authenticated,
            ServerFrame::Error(_) => FrameType::Error,
        }
    }

    /// The chat the frame is about, if one.
    pub fn chat(&self) -> Option<ChatId> {
        match self {
            ServerFrame::Ack(Ack { chat, .. })
            | ServerFrame::Message(ChatMessage { chat, .. })
            | ServerFrame::MessageEdited(ChatMessage { chat, .. })
            | ServerFrame::Subscribed(Subscribed { chat, .. })
            | ServerFrame::Unsubscribed(Unsubscribed { chat, .. })
            | ServerFrame::MessageDeleted(MessageDeleted { chat, .. })
            | ServerFrame::Read(ReadReceipt { chat, .. })
            | ServerFrame::Typing(TypingNotice { chat, .. })
            | ServerFrame::MemberAdded(MemberChange { chat, .. })
            | ServerFrame::MemberRemoved(MemberChange { chat, .. })
            | ServerFrame::ChatUpdated(ChatUpdated { chat })
            | ServerFrame::Muted(Muted { chat, .. }) => Some(*chat),
            ServerFrame::Error(error) => error.chat,
            ServerFrame::Presence(_) | ServerFrame::Pong(_) | ServerFrame::Authenticated(_) => None,
        }
    }

    /// The message object of an `ack`, `message` or `message_edited`.
    pub fn message(&self) -> Option<&M> {
        match self {
            ServerFrame::Ack(Ack { message, .. })
            | ServerFrame::Message(ChatMessage { message, .. })
            | ServerFrame::MessageEdited(ChatMessage { message, .. }) => Some(message),
            _ => None,
        }
    }

    /// The `ref` of the frame this one answers.
    pub fn reference(&self) -> Option<&Value> {
        match self {
            ServerFrame::Ack(Ack { reference, .. })
            | ServerFrame::Subscribed(Subscribed { reference, .. })
            | ServerFrame::Unsubscribed(Unsubscribed { reference, .. })
            | ServerFrame::Pong(Pong { reference })
            | ServerFrame::Authenticated(Authenticated { reference, .. })
            | ServerFrame::Muted(Muted { reference, .. })
            | ServerFrame::Error(ErrorReply { reference, .. }) => reference.as_ref(),
            _ => None,
        }
    }

    /// Reads the fields after `type` into the frame of that type.
    fn read_fields<'de, D>(kind: FrameType, fields: D) -> Result<ServerFrame<M>, D::Error>
    where
        D: Deserializer<'de>,
        M: Deserialize<'de>,
    {
        Ok(match kind {
            FrameType::Ack => ServerFrame::Ack(Deserialize::deserialize(fields)?),
            FrameType::Message => ServerFrame::Message(Deserialize::deserialize(fields)?),
            FrameType::Subscribed => ServerFrame::Subscribed(Deserialize::deserialize(fields)?),
            FrameType::Unsubscribed => ServerFrame::Unsubscribed(Deserialize::deserialize(fields)?),
            FrameType::MessageEdited => ServerFrame::MessageEdited(Deserialize::deserialize(fields)?),
            FrameType::MessageDeleted => ServerFrame::MessageDeleted(Deserialize::deserialize(fields)?),
            FrameType::Read => ServerFrame::Read(Deserialize::deserialize(fields)?),
            FrameType::Typing => ServerFrame::Typing(Deserialize::deserialize(fields)?),
            FrameType::Presence => ServerFrame::Presence(Deserialize::deserialize(fields)?),
            FrameType::MemberAdded => ServerFrame::MemberAdded(Deserialize::deserialize(fields)?),
            FrameType::MemberRemoved => ServerFrame::MemberRemoved(Deserialize::deserialize(fields)?),
            FrameType::ChatUpdated => ServerFrame::ChatUpdated(Deserialize::deserialize(fields)?),
            FrameType::Muted => ServerFrame::Muted(Deserialize::deserialize(fields)?),
            FrameType::Pong => ServerFrame::Pong(Deserialize::deserialize(fields)?),
            FrameType::Authenticated => ServerFrame::Authenticated(Deserialize::deserialize(fields)?),
            FrameType::Error => ServerFrame::Error(Deserialize::deserialize(fields)?),
        })
    }
}

/// Reading a frame. serde's derived reading of a `type`-tagged enum first copies the whole
/// object into a buffer of its own, then reads the variant from that: more than twice the time
/// of reading a plain struct, which a client reading a million frames a second (the bench) pays
/// in CPU taken from the server it measures. The server writes `type` first, so this reads it
/// and goes on with the same reader straight into the variant's struct; an object with `type`
/// elsewhere is gathered first, and read the slow way.
impl<'de, M: Deserialize<'de>> Deserialize<'de> for ServerFrame<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FrameVisitor(PhantomData))
    }
}

struct FrameVisitor<M>(PhantomData<M>);

impl<'de, M: Deserialize<'de>> Visitor<'de> for FrameVisitor<M> {
    type Value = ServerFrame<M>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a causerie.v2 frame: an object with a \"type\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match map.next_key::<FirstKey>()? {
            Some(FirstKey::Type) => {
                let kind = map.next_value()?;
                ServerFrame::read_fields(kind, MapAccessDeserializer::new(map))
            }
            Some(FirstKey::Other(key)) => {
                let mut object = serde_json::Map::new();
                object.insert(key, map.next_value()?);
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    object.insert(key, value);
                }
                let kind = object.remove("type").ok_or_else(|| de::Error::missing_field("type"))?;
                let kind = FrameType::deserialize(kind).map_err(de::Error::custom)?;
                ServerFrame::read_fields(kind, Value::Object(object)).map_err(de::Error::custom)
            }
            None => Err(de::Error::missing_field("type")),
        }
    }
}

/// An object's first key: `type`, or another one (kept, for the slow way).
enum FirstKey {
    Type,
    Other(String),
}

impl<'de> Deserialize<'de> for FirstKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = FirstKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<FirstKey, E> {
                Ok(match key {
                    "type" => FirstKey::Type,
                    other => FirstKey::Other(other.to_string()),
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MessageDigest;

    fn message(chat: ChatId) -> MessageView {
        let now = crate::store::now();
        MessageView {
            id: MessageId::new(),
            ref_chat: chat,
            author: Some(UserId::new()),
            message: "hi \"there\"".into(),
            kind: 0,
            extra_data: Some(String::new()),
            is_read: false,
            created_at: now,
            updated_at: now,
            seq: Some(3),
            client_id: Some("c-3".into()),
            deleted: false,
            attachments: Vec::new(),
        }
    }

    fn every_frame() -> Vec<ServerFrame> {
        let (chat, user) = (ChatId::new(), UserId::new());
        let message = message(chat);
        let reference = Some(serde_json::json!({ "n": 1 }));
        vec![
            ServerFrame::Ack(Ack {
                client_id: "c-3".into(),
                chat,
                duplicate: true,
                message: message.clone(),
                reference: reference.clone(),
            }),
            ServerFrame::Message(ChatMessage {
                chat,
                message: message.clone(),
            }),
            ServerFrame::Subscribed(Subscribed {
                chat,
                last_seq: 3,
                more: true,
                reference: None,
            }),
            ServerFrame::Unsubscribed(Unsubscribed {
                chat,
                reference: reference.clone(),
            }),
            ServerFrame::MessageEdited(ChatMessage { chat, message }),
            ServerFrame::MessageDeleted(MessageDeleted {
                chat,
                id: MessageId::new(),
                seq: 2,
            }),
            ServerFrame::Read(ReadReceipt {
                chat,
                user,
                upto_seq: None,
                ids: vec![MessageId::new()],
            }),
            ServerFrame::Typing(TypingNotice {
                chat,
                user,
                expires_in_ms: 5000,
            }),
            ServerFrame::Presence(Presence {
                user,
                online: true,
                last_connexion_date: crate::store::now(),
            }),
            ServerFrame::MemberAdded(MemberChange { chat, user }),
            ServerFrame::MemberRemoved(MemberChange { chat, user }),
            ServerFrame::ChatUpdated(ChatUpdated { chat }),
            ServerFrame::Authenticated(Authenticated {
                user,
                expires_at: crate::store::now(),
                reference: reference.clone(),
            }),
            ServerFrame::Muted(Muted {
                chat,
                muted: true,
                reference: Some(Value::from("m-1")),
            }),
            ServerFrame::Pong(Pong { reference }),
            ServerFrame::Error(ErrorReply {
                client_id: Some("c-4".into()),
                ..ErrorReply::new(ErrorBody::new("unavailable", "Retry."), None).about(chat)
            }),
        ]
    }

    #[test]
    fn every_frame_reads_back_as_it_was_written() {
        for frame in every_frame() {
            let text = serde_json::to_string(&frame).unwrap();
            let kind = serde_json::to_value(frame.kind()).unwrap();
            assert!(text.starts_with(&format!(r#"{{"type":{kind}"#)), "{text}");
            assert_eq!(serde_json::from_str::<ServerFrame>(&text).unwrap(), frame, "{text}");
        }
    }

    #[test]
    fn type_need_not_come_first() {
        for frame in every_frame() {
            // serde_json's own maps are ordered by key: "type" comes late.
            let text = serde_json::to_value(&frame).unwrap().to_string();
            assert_eq!(serde_json::from_str::<ServerFrame>(&text).unwrap(), frame, "{text}");
        }
    }

    #[test]
    fn a_digest_borrows_the_text() {
        let chat = ChatId::new();
        let mut full = message(chat);
        full.message = "plain".into();
        let text = serde_json::to_string(&ServerFrame::Message(ChatMessage { chat, message: &full })).unwrap();
        let frame: ServerFrame<MessageDigest<'_>> = serde_json::from_str(&text).unwrap();
        let digest = frame.message().unwrap();
        assert!(matches!(digest.message, Cow::Borrowed("plain")), "{digest:?}");
        assert_eq!((digest.seq, digest.author), (full.seq, full.author));
        assert_eq!(frame.chat(), Some(chat));
    }

    #[test]
    fn frames_without_a_known_type_are_refused() {
        for text in [
            r#"{"chat":1}"#,
            r#"{"type":"launch"}"#,
            r#"{"chat":"x","type":"launch"}"#,
            "{}",
            "[]",
        ] {
            assert!(serde_json::from_str::<ServerFrame>(text).is_err(), "{text}");
        }
    }
}
