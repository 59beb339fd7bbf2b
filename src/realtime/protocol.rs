//! The wire: inbound frames parsed into commands, outbound frames rendered from events.
//! v1 is the seed's protocol (contract section 5); v2 is `causerie.v2` (docs/protocol.md).

use serde_json::{json, Map, Value};

use super::event::Event;
use crate::chats::events::ChatEvent;
use crate::chats::Draft;
use crate::http::Fields;
use crate::ids::{ChatId, UserId};

/// An error frame: `{"error":{"code","detail"}}` in v1 (no `message` key, so seed clients
/// ignore it), `{"type":"error","code","detail"}` in v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorFrame {
    pub code: &'static str,
    pub detail: String,
}

impl ErrorFrame {
    pub(crate) fn new(code: &'static str, detail: impl Into<String>) -> ErrorFrame {
        ErrorFrame {
            code,
            detail: detail.into(),
        }
    }

    pub(crate) fn v1(&self) -> String {
        json!({ "error": { "code": self.code, "detail": self.detail } }).to_string()
    }
}

/// Parses a text frame into a JSON object.
pub(crate) fn parse_object(text: &str) -> Result<Map<String, Value>, ErrorFrame> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ErrorFrame::new("invalid_frame", "A frame must be a JSON object.")),
        Err(err) => Err(ErrorFrame::new("invalid_json", format!("JSON parse error - {err}"))),
    }
}

/// A v1 frame as the seed's page sends it: `{"message","refChat","author","type","extraData"}`.
/// `refChat` and `author`, when present, must name the socket's chat and user.
pub(crate) fn parse_v1_message(
    map: &Map<String, Value>,
    chat: ChatId,
    user: UserId,
    max_extra: usize,
) -> Result<Draft, ErrorFrame> {
    if !map.contains_key("message") {
        return Err(ErrorFrame::new(
            "missing_message",
            "The frame has no \"message\" field.",
        ));
    }
    if let Some(named) = map.get("refChat") {
        if named.as_str().and_then(|s| s.parse().ok()) != Some(chat) {
            return Err(ErrorFrame::new(
                "wrong_chat",
                "refChat does not match this socket's chat.",
            ));
        }
    }
    if let Some(named) = map.get("author").filter(|a| !a.is_null()) {
        if named.as_str().and_then(|s| s.parse().ok()) != Some(user) {
            return Err(ErrorFrame::new(
                "wrong_author",
                "author does not match the authenticated user.",
            ));
        }
    }
    let mut f = Fields::new(map);
    let draft = Draft::read(&mut f, max_extra);
    f.finish()
        .map_err(|e| ErrorFrame::new("invalid_frame", field_errors_text(e)))?;
    Ok(draft)
}

pub(crate) fn field_errors_text(err: crate::error::ApiError) -> String {
    match err {
        crate::error::ApiError::Validation(errors) => crate::validation::describe(&errors),
        other => other.to_string(),
    }
}

/// How long receivers should show "typing…" without a newer typing event.
pub(crate) const TYPING_EXPIRES_MS: u64 = 5000;

/// The v2 rendering of an event (`None` for local-only events).
pub(crate) fn v2_frame(event: &Event) -> Option<Value> {
    Some(match event {
        Event::Chat { event } => match event {
            ChatEvent::Message { message } => {
                json!({ "type": "message", "chat": message.ref_chat, "message": message })
            }
            ChatEvent::MessageEdited { message } => {
                json!({ "type": "message_edited", "chat": message.ref_chat, "message": message })
            }
            ChatEvent::MessageDeleted { chat, id, seq } => {
                json!({ "type": "message_deleted", "chat": chat, "id": id, "seq": seq })
            }
            ChatEvent::Read {
                chat,
                user,
                upto_seq,
                ids,
            } => {
                json!({ "type": "read", "chat": chat, "user": user, "uptoSeq": upto_seq, "ids": ids })
            }
            ChatEvent::ChatUpdated { chat } => json!({ "type": "chat_updated", "chat": chat }),
            ChatEvent::MemberAdded { chat, user } => json!({ "type": "member_added", "chat": chat, "user": user }),
            ChatEvent::MemberRemoved { chat, user } => json!({ "type": "member_removed", "chat": chat, "user": user }),
        },
        Event::Typing { chat, user } => {
            json!({ "type": "typing", "chat": chat, "user": user, "expiresInMs": TYPING_EXPIRES_MS })
        }
        Event::Presence { user, online, at } => json!({
            "type": "presence",
            "user": user,
            "online": online,
            "lastConnexionDate": crate::accounts::view::iso(*at),
        }),
        Event::Resync { .. } | Event::Disconnect { .. } => return None,
    })
}
