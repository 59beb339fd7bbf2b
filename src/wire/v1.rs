//! v1, the seed's protocol (contract section 5): one socket per chat, fire and forget.
//!
//! Inbound, the seed's page sends a [`MessageFrame`]. Outbound, every socket of the chat gets
//! each stored message: with `format=text` (the default) as the message object itself (a
//! [`MessageView`] without `seq` and `clientId`), with `format=object` as an [`ObjectFrame`].
//! A refused frame is answered with an [`ErrorFrame`].

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::parse::{self, Object};
use super::{ErrorBody, MessageView};
use crate::chats::Draft;
use crate::ids::{ChatId, UserId};

/// `{"message","refChat","author","type","extraData"}`: every field but `message` may be left
/// out. `refChat` and `author`, when given, must be the socket's chat and user; `type` is then
/// 0 (text; 1 location, 2 photo), `extraData` `""` (`null` stores null).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageFrame {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ref_chat: Option<ChatId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<UserId>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<i32>,
    /// Left out: `""`; `Some(None)`: null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_data: Option<Option<String>>,
    /// Not in the seed's page: a client that names its messages gets v2's idempotent storing
    /// (a repeated `clientId` stores nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl MessageFrame {
    /// A text message with every optional field left out.
    pub fn text(message: impl Into<String>) -> MessageFrame {
        MessageFrame {
            message: message.into(),
            ..MessageFrame::default()
        }
    }

    /// Reads a frame sent to the socket of `chat` by `user`.
    pub(crate) fn from_frame(
        frame: &Object,
        chat: ChatId,
        user: UserId,
        max_extra: usize,
    ) -> Result<MessageFrame, ErrorBody> {
        if !frame.contains_key("message") {
            return Err(ErrorBody::new("missing_message", "The frame has no \"message\" field."));
        }
        let ref_chat = naming(
            frame.get("refChat"),
            chat,
            "wrong_chat",
            "refChat does not match this socket's chat.",
        )?;
        // The seed's page sends `"author": null` before it knows who is logged in.
        let author = naming(
            frame.get("author").filter(|a| !a.is_null()),
            user,
            "wrong_author",
            "author does not match the authenticated user.",
        )?;
        let draft = parse::read_draft(frame, max_extra)?;
        Ok(MessageFrame {
            message: draft.text,
            ref_chat,
            author,
            kind: frame.contains_key("type").then_some(draft.kind),
            extra_data: frame.contains_key("extraData").then_some(draft.extra_data),
            client_id: draft.client_id,
        })
    }

    /// The message as the chat service takes it, the left-out fields at their defaults.
    pub(crate) fn into_draft(self) -> Draft {
        parse::draft(self.message, self.kind, self.extra_data, self.client_id)
    }
}

/// A field that, when given, must name `expected`. Any other value (another id, not a uuid,
/// not a string) is refused with `code`.
fn naming<T: FromStr + PartialEq>(
    named: Option<&Value>,
    expected: T,
    code: &'static str,
    detail: &'static str,
) -> Result<Option<T>, ErrorBody> {
    match named {
        None => Ok(None),
        Some(named) if named.as_str().and_then(|s| s.parse::<T>().ok()).as_ref() == Some(&expected) => {
            Ok(Some(expected))
        }
        Some(_) => Err(ErrorBody::new(code, detail)),
    }
}

/// `format=object`: `{"message":{…the stored message}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectFrame<M = MessageView> {
    pub message: M,
}

/// `{"error":{"code","detail"}}`: no `message` key, so the seed's page ignores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub error: ErrorBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(frame: &MessageFrame, chat: ChatId, user: UserId) -> Result<MessageFrame, ErrorBody> {
        let text = serde_json::to_string(frame).unwrap();
        MessageFrame::from_frame(&parse::parse_object(&text)?, chat, user, 1000)
    }

    #[test]
    fn a_frame_reads_back_as_it_was_built() {
        let (chat, user) = (ChatId::new(), UserId::new());
        let minimal = MessageFrame::text("hi");
        assert_eq!(read(&minimal, chat, user), Ok(minimal.clone()));
        let full = MessageFrame {
            message: "here".into(),
            ref_chat: Some(chat),
            author: Some(user),
            kind: Some(1),
            extra_data: Some(None),
            client_id: Some("c-1".into()),
        };
        assert_eq!(read(&full, chat, user), Ok(full.clone()));
        let draft = full.into_draft();
        assert_eq!((draft.kind, draft.extra_data), (1, None));
        let draft = minimal.into_draft();
        assert_eq!((draft.kind, draft.extra_data), (0, Some(String::new())));
    }

    #[test]
    fn another_chat_or_author_is_refused_before_the_fields() {
        let (chat, user) = (ChatId::new(), UserId::new());
        let code = |frame: &str| {
            MessageFrame::from_frame(&parse::parse_object(frame).unwrap(), chat, user, 1000)
                .unwrap_err()
                .code
        };
        assert_eq!(code(r#"{"message":["x"],"refChat":"general"}"#), "wrong_chat");
        assert_eq!(
            code(&format!(r#"{{"message":1,"refChat":"{chat}","author":5}}"#)),
            "wrong_author"
        );
        assert_eq!(code(r#"{"message":["x"]}"#), "invalid_frame");
        assert_eq!(code(r#"{"text":"x"}"#), "missing_message");
    }
}
