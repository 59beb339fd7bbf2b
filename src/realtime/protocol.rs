//! The wire: inbound frames parsed into commands, outbound frames rendered from events.
//! v1 is the seed's protocol (contract section 5); v2 is `causerie.v2` (docs/protocol.md).

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::event::Event;
use crate::chats::routes::read_draft;
use crate::chats::service::Draft;
use crate::http::Fields;

/// An error frame: `{"error":{"code","detail"}}` in v1 (no `message` key, so seed clients
/// ignore it), `{"type":"error","code","detail"}` in v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    pub code: &'static str,
    pub detail: String,
}

impl ErrorFrame {
    pub fn new(code: &'static str, detail: impl Into<String>) -> ErrorFrame {
        ErrorFrame {
            code,
            detail: detail.into(),
        }
    }

    pub fn v1(&self) -> String {
        json!({ "error": { "code": self.code, "detail": self.detail } }).to_string()
    }
}

/// Parses a text frame into a JSON object.
pub fn parse_object(text: &str) -> Result<Map<String, Value>, ErrorFrame> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ErrorFrame::new("invalid_frame", "A frame must be a JSON object.")),
        Err(err) => Err(ErrorFrame::new("invalid_json", format!("JSON parse error - {err}"))),
    }
}

/// A v1 frame as the seed's page sends it: `{"message","refChat","author","type","extraData"}`.
/// `refChat` and `author`, when present, must name the socket's chat and user.
pub fn parse_v1_message(
    map: &Map<String, Value>,
    chat: Uuid,
    user: Uuid,
    max_extra: usize,
) -> Result<Draft, ErrorFrame> {
    if !map.contains_key("message") {
        return Err(ErrorFrame::new(
            "missing_message",
            "The frame has no \"message\" field.",
        ));
    }
    if let Some(named) = map.get("refChat") {
        if named.as_str().and_then(|s| Uuid::parse_str(s).ok()) != Some(chat) {
            return Err(ErrorFrame::new(
                "wrong_chat",
                "refChat does not match this socket's chat.",
            ));
        }
    }
    if let Some(named) = map.get("author").filter(|a| !a.is_null()) {
        if named.as_str().and_then(|s| Uuid::parse_str(s).ok()) != Some(user) {
            return Err(ErrorFrame::new(
                "wrong_author",
                "author does not match the authenticated user.",
            ));
        }
    }
    let mut f = Fields::new(map);
    let draft = read_draft(&mut f, max_extra);
    f.finish()
        .map_err(|e| ErrorFrame::new("invalid_frame", field_errors_text(e)))?;
    Ok(draft)
}

pub fn field_errors_text(err: crate::error::ApiError) -> String {
    match err {
        crate::error::ApiError::Validation(errors) => errors
            .iter()
            .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// How long receivers should show "typing…" without a newer typing event.
pub const TYPING_EXPIRES_MS: u64 = 5000;

/// The v2 rendering of an event.
pub fn v2_frame(event: &Event) -> Value {
    match event {
        Event::Message { message } => {
            json!({ "type": "message", "chat": message.ref_chat, "message": message })
        }
        Event::MessageEdited { message } => {
            json!({ "type": "message_edited", "chat": message.ref_chat, "message": message })
        }
        Event::MessageDeleted { chat, id, seq } => {
            json!({ "type": "message_deleted", "chat": chat, "id": id, "seq": seq })
        }
        Event::Read {
            chat,
            user,
            upto_seq,
            ids,
        } => {
            json!({ "type": "read", "chat": chat, "user": user, "uptoSeq": upto_seq, "ids": ids })
        }
        Event::Typing { chat, user } => {
            json!({ "type": "typing", "chat": chat, "user": user, "expiresInMs": TYPING_EXPIRES_MS })
        }
        Event::Presence { user, online, at } => json!({
            "type": "presence",
            "user": user,
            "online": online,
            "lastConnexionDate": crate::accounts::view::iso(*at),
        }),
        Event::ChatUpdated { chat } => json!({ "type": "chat_updated", "chat": chat }),
        Event::MemberAdded { chat, user } => json!({ "type": "member_added", "chat": chat, "user": user }),
        Event::MemberRemoved { chat, user } => json!({ "type": "member_removed", "chat": chat, "user": user }),
        Event::Resync { chat } => json!({ "type": "resync", "chat": chat }),
    }
}
