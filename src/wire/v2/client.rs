//! Client → server: the commands, and how an inbound frame becomes one.
//!
//! Reading is two steps, as in mini-redis's `Command::from_frame`: the text becomes a JSON
//! object, its `type` picks the command, and the command reads its own fields. Each refusal
//! carries the code and detail docs/protocol.md lists, not serde's words.

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::MemberChange;
use crate::chats::{Draft, CLIENT_ID_MAX};
use crate::http::Fields;
use crate::ids::{AttachmentId, ChatId, MessageId};
use crate::wire::parse::{self, has_value, missing, optional_seq, required_id, Object};
use crate::wire::ErrorBody;

/// Most chats one `resume` may name.
pub const RESUME_MAX_CHATS: usize = 1000;

/// An inbound frame: a command, and the `ref` (any JSON value) that the replies and errors it
/// causes carry back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientFrame {
    #[serde(flatten)]
    pub command: Command,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<Value>,
}

/// What a client asks of the server, by the frame's `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Send(SendMessage),
    Subscribe(Subscribe),
    Resume(Resume),
    Unsubscribe(Unsubscribe),
    Read(MarkRead),
    Typing(Typing),
    Edit(EditMessage),
    Delete(DeleteMessage),
    AddMember(MemberChange),
    RemoveMember(MemberChange),
    /// Push notifications for one chat, for the caller (answered by `muted`).
    Mute(Mute),
    Ping,
    /// `auth`: the socket's credentials, as the first frame of a `/ws/` socket opened without
    /// a token, or a fresh access token before the current one expires.
    Auth(Authenticate),
}

/// `auth`: an access token for this socket; answered by `authenticated`.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Authenticate {
    pub token: String,
}

/// Tokens are not written to logs, not even in debug output.
impl std::fmt::Debug for Authenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticate { token: … }")
    }
}

/// `send`: store a message once; answered by `ack` (or an error naming the `clientId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    pub chat: ChatId,
    /// 1 to 64 characters, unique per message for its author in that chat.
    pub client_id: String,
    pub message: String,
    /// The message's type (0 text, 1 location, 2 photo); left out: 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<i32>,
    /// Left out: `""`; `Some(None)`: null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_data: Option<Option<String>>,
    /// Ids of the sender's uploads the message carries (at most 10); left out: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentId>,
}

/// `subscribe`: follow a chat, replaying what is stored after `afterSeq` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscribe {
    pub chat: ChatId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<i64>,
}

/// `resume`: subscribe to each chat after the last sequence held, `{"chats":{id: lastSeq}}`
/// (a frame may also name one chat as `chat` + `lastSeq`). The chats in the frame's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resume {
    #[serde(serialize_with = "chat_seqs")]
    pub chats: Vec<(ChatId, i64)>,
}

/// `unsubscribe`: stop following a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Unsubscribe {
    pub chat: ChatId,
}

/// `read`: a read receipt for a message and everything before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MarkRead {
    pub chat: ChatId,
    #[serde(flatten)]
    pub upto: ReadUpto,
}

/// Which message a receipt names: `"seq"` or `"messageId"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReadUpto {
    Seq(i64),
    MessageId(MessageId),
}

/// `typing`: tell the chat's followers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Typing {
    pub chat: ChatId,
}

/// `edit`: the author changes a message's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EditMessage {
    pub id: MessageId,
    pub message: String,
}

/// `mute`: stop (`muted: true`) or restart push notifications of one chat for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mute {
    pub chat: ChatId,
    pub muted: bool,
}

/// `delete`: the author deletes a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeleteMessage {
    pub id: MessageId,
}

impl Command {
    /// This command in a frame whose replies carry `reference`.
    pub fn with_ref(self, reference: impl Into<Value>) -> ClientFrame {
        ClientFrame {
            command: self,
            reference: Some(reference.into()),
        }
    }
}

impl From<Command> for ClientFrame {
    fn from(command: Command) -> ClientFrame {
        ClientFrame {
            command,
            reference: None,
        }
    }
}

fn chat_seqs<S: Serializer>(chats: &[(ChatId, i64)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(chats.iter().map(|(chat, seq)| (chat, seq)))
}

/// A frame refused while reading it, and the `ref` its error frame carries (none when the
/// text was no JSON object).
#[derive(Debug, PartialEq)]
pub(crate) struct Refused {
    pub error: ErrorBody,
    pub reference: Option<Value>,
}

impl ClientFrame {
    /// Reads an inbound text frame. `max_extra` caps `extraData` as for REST bodies.
    pub(crate) fn parse(text: &str, max_extra: usize) -> Result<ClientFrame, Refused> {
        let frame = parse::parse_object(text).map_err(|error| Refused { error, reference: None })?;
        let reference = frame.get("ref").cloned();
        match Command::from_frame(&frame, max_extra) {
            Ok(command) => Ok(ClientFrame { command, reference }),
            Err(error) => Err(Refused { error, reference }),
        }
    }
}

impl Command {
    pub(crate) fn from_frame(frame: &Object, max_extra: usize) -> Result<Command, ErrorBody> {
        let kind = match frame.get("type") {
            None | Some(Value::Null) => "",
            Some(Value::String(kind)) => kind.as_str(),
            Some(_) => return Err(ErrorBody::new("invalid_frame", "\"type\" must be a string.")),
        };
        Ok(match kind {
            "send" => Command::Send(SendMessage::from_frame(frame, max_extra)?),
            "subscribe" => Command::Subscribe(Subscribe {
                chat: required_id(frame, "chat")?,
                after_seq: optional_seq(frame, "afterSeq")?,
            }),
            "resume" => Command::Resume(Resume::from_frame(frame)?),
            "unsubscribe" => Command::Unsubscribe(Unsubscribe {
                chat: required_id(frame, "chat")?,
            }),
            "read" => Command::Read(MarkRead::from_frame(frame)?),
            "typing" => Command::Typing(Typing {
                chat: required_id(frame, "chat")?,
            }),
            "edit" => Command::Edit(EditMessage::from_frame(frame)?),
            "delete" => Command::Delete(DeleteMessage {
                id: required_id(frame, "id")?,
            }),
            "add_member" => Command::AddMember(MemberChange::from_frame(frame)?),
            "remove_member" => Command::RemoveMember(MemberChange::from_frame(frame)?),
            "mute" => Command::Mute(Mute {
                chat: required_id(frame, "chat")?,
                muted: match frame.get("muted") {
                    None | Some(Value::Null) => return Err(missing("muted")),
                    Some(Value::Bool(muted)) => *muted,
                    Some(_) => return Err(ErrorBody::new("invalid_field", "\"muted\" must be a boolean.")),
                },
            }),
            "ping" => Command::Ping,
            "auth" => Command::Auth(Authenticate::from_frame(frame)?),
            "" => return Err(missing("type")),
            _ => {
                return Err(ErrorBody::new(
                    "unknown_type",
                    format!("Unknown frame type \"{kind}\"."),
                ))
            }
        })
    }
}

impl SendMessage {
    fn from_frame(frame: &Object, max_extra: usize) -> Result<SendMessage, ErrorBody> {
        let chat = required_id(frame, "chat")?;
        let client_id = match frame.get("clientId") {
            None | Some(Value::Null) => return Err(missing("clientId")),
            Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= CLIENT_ID_MAX => id.clone(),
            Some(_) => {
                return Err(ErrorBody::new(
                    "invalid_client_id",
                    format!("\"clientId\" must be a string of 1 to {CLIENT_ID_MAX} characters."),
                ))
            }
        };
        if !frame.contains_key("message") {
            return Err(ErrorBody::new("missing_message", "\"message\" is required."));
        }
        // The message's own type travels as "messageType" (the frame's "type" is "send"); the
        // other fields are named as in a REST body.
        let mut fields = frame.clone();
        fields.remove("type");
        if let Some(kind) = frame.get("messageType") {
            fields.insert("type".into(), kind.clone());
        }
        let draft = parse::read_draft(&fields, max_extra)?;
        Ok(SendMessage {
            chat,
            client_id,
            message: draft.text,
            message_type: frame.contains_key("messageType").then_some(draft.kind),
            extra_data: frame.contains_key("extraData").then_some(draft.extra_data),
            attachments: draft.attachments,
        })
    }

    /// The message as the chat service takes it, the left-out fields at their defaults.
    pub(crate) fn into_draft(self) -> Draft {
        Draft {
            attachments: self.attachments,
            ..parse::draft(self.message, self.message_type, self.extra_data, Some(self.client_id))
        }
    }
}

impl Resume {
    fn from_frame(frame: &Object) -> Result<Resume, ErrorBody> {
        let mut chats = Vec::new();
        if let Some(Value::Object(listed)) = frame.get("chats") {
            for (chat, seq) in listed {
                let chat = chat
                    .parse()
                    .map_err(|_| ErrorBody::new("invalid_field", "chat ids must be uuids."))?;
                let seq = seq
                    .as_i64()
                    .ok_or_else(|| ErrorBody::new("invalid_field", "sequences must be integers."))?;
                chats.push((chat, seq));
            }
        } else {
            let chat = required_id(frame, "chat")?;
            let seq = optional_seq(frame, "lastSeq")?.ok_or_else(|| missing("lastSeq"))?;
            chats.push((chat, seq));
        }
        if chats.is_empty() || chats.len() > RESUME_MAX_CHATS {
            return Err(ErrorBody::new(
                "invalid_field",
                format!("resume needs 1 to {RESUME_MAX_CHATS} chats."),
            ));
        }
        Ok(Resume { chats })
    }
}

impl MarkRead {
    fn from_frame(frame: &Object) -> Result<MarkRead, ErrorBody> {
        let chat = required_id(frame, "chat")?;
        let upto = match optional_seq(frame, "seq")? {
            Some(seq) => ReadUpto::Seq(seq),
            None if frame.contains_key("messageId") => ReadUpto::MessageId(required_id(frame, "messageId")?),
            None => return Err(ErrorBody::new("missing_field", "\"seq\" or \"messageId\" is required.")),
        };
        Ok(MarkRead { chat, upto })
    }
}

impl EditMessage {
    fn from_frame(frame: &Object) -> Result<EditMessage, ErrorBody> {
        let id = required_id(frame, "id")?;
        if !has_value(frame, "message") {
            return Err(missing("message"));
        }
        // Read as a REST body's text; its length and blankness are the message rules'
        // (`Draft::check`), with their own codes.
        let mut fields = Fields::new(frame);
        let message = fields.optional_raw_str("message", usize::MAX).unwrap_or_default();
        fields
            .finish()
            .map_err(|err| ErrorBody::new("invalid_frame", parse::field_errors_text(err)))?;
        Ok(EditMessage { id, message })
    }
}

impl Authenticate {
    fn from_frame(frame: &Object) -> Result<Authenticate, ErrorBody> {
        match frame.get("token") {
            None | Some(Value::Null) => Err(missing("token")),
            Some(Value::String(token)) if !token.is_empty() => Ok(Authenticate { token: token.clone() }),
            Some(_) => Err(ErrorBody::new("invalid_field", "\"token\" must be a non-empty string.")),
        }
    }
}

impl MemberChange {
    fn from_frame(frame: &Object) -> Result<MemberChange, ErrorBody> {
        Ok(MemberChange {
            chat: required_id(frame, "chat")?,
            user: required_id(frame, "user")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn parse(text: &str) -> Result<ClientFrame, Refused> {
        ClientFrame::parse(text, 100)
    }

    /// The code and detail a frame is refused with.
    fn refusal(text: &str) -> (String, String) {
        let refused = parse(text).expect_err(text);
        (refused.error.code.into_owned(), refused.error.detail)
    }

    #[test]
    fn every_command_reads_back_as_it_was_built() {
        let (chat, user, id) = (ChatId::new(), UserId::new(), MessageId::new());
        let commands = [
            Command::Send(SendMessage {
                chat,
                client_id: " c-1 ".into(),
                message: "hi".into(),
                message_type: None,
                extra_data: None,
                attachments: Vec::new(),
            }),
            Command::Send(SendMessage {
                chat,
                client_id: "c-2".into(),
                message: "there".into(),
                message_type: Some(1),
                extra_data: Some(None),
                attachments: Vec::new(),
            }),
            Command::Send(SendMessage {
                chat,
                client_id: "c-3".into(),
                message: String::new(),
                message_type: Some(2),
                extra_data: Some(Some("p.jpg".into())),
                attachments: Vec::new(),
            }),
            Command::Subscribe(Subscribe { chat, after_seq: None }),
            Command::Subscribe(Subscribe {
                chat,
                after_seq: Some(4),
            }),
            Command::Resume(Resume { chats: vec![(chat, 3)] }),
            Command::Unsubscribe(Unsubscribe { chat }),
            Command::Read(MarkRead {
                chat,
                upto: ReadUpto::Seq(7),
            }),
            Command::Read(MarkRead {
                chat,
                upto: ReadUpto::MessageId(id),
            }),
            Command::Typing(Typing { chat }),
            Command::Edit(EditMessage {
                id,
                message: " fixed ".into(),
            }),
            Command::Delete(DeleteMessage { id }),
            Command::AddMember(MemberChange { chat, user }),
            Command::RemoveMember(MemberChange { chat, user }),
            Command::Mute(Mute { chat, muted: true }),
            Command::Mute(Mute { chat, muted: false }),
            Command::Ping,
            Command::Auth(Authenticate { token: "a.b.c".into() }),
        ];
        for command in commands {
            let frame = ClientFrame::from(command.clone());
            let text = serde_json::to_string(&frame).unwrap();
            assert_eq!(parse(&text), Ok(frame), "{text}");
            let with_ref = command.with_ref("r-1");
            let text = serde_json::to_string(&with_ref).unwrap();
            assert_eq!(parse(&text), Ok(with_ref), "{text}");
        }
    }

    #[test]
    fn the_wire_names_are_the_protocols() {
        let chat = ChatId::new();
        let send = Command::Send(SendMessage {
            chat,
            client_id: "c".into(),
            message: "m".into(),
            message_type: Some(1),
            extra_data: Some(None),
            attachments: Vec::new(),
        })
        .with_ref(3);
        assert_eq!(
            serde_json::to_value(&send).unwrap(),
            serde_json::json!({ "type": "send", "chat": chat, "clientId": "c", "message": "m", "messageType": 1, "extraData": null, "ref": 3 })
        );
        let resume = ClientFrame::from(Command::Resume(Resume {
            chats: vec![(chat, 41)],
        }));
        assert_eq!(
            serde_json::to_string(&resume).unwrap(),
            format!(r#"{{"type":"resume","chats":{{"{chat}":41}}}}"#)
        );
        let read = ClientFrame::from(Command::Read(MarkRead {
            chat,
            upto: ReadUpto::Seq(2),
        }));
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            format!(r#"{{"type":"read","chat":"{chat}","seq":2}}"#)
        );
    }

    #[test]
    fn refusals_keep_the_protocols_codes_and_details() {
        let chat = ChatId::new();
        let cases: &[(String, &str, &str)] = &[
            (
                "nope".into(),
                "invalid_json",
                "JSON parse error - expected ident at line 1 column 2",
            ),
            ("[1]".into(), "invalid_frame", "A frame must be a JSON object."),
            (r#"{"chat":1}"#.into(), "missing_field", "\"type\" is required."),
            (r#"{"type":""}"#.into(), "missing_field", "\"type\" is required."),
            (r#"{"type":5}"#.into(), "invalid_frame", "\"type\" must be a string."),
            (
                r#"{"type":"launch"}"#.into(),
                "unknown_type",
                "Unknown frame type \"launch\".",
            ),
            (
                r#"{"type":"subscribe"}"#.into(),
                "missing_field",
                "\"chat\" is required.",
            ),
            (
                r#"{"type":"subscribe","chat":null}"#.into(),
                "missing_field",
                "\"chat\" is required.",
            ),
            (
                r#"{"type":"subscribe","chat":"x"}"#.into(),
                "invalid_field",
                "\"chat\" must be a uuid.",
            ),
            (
                format!(r#"{{"type":"subscribe","chat":"{chat}","afterSeq":"1"}}"#),
                "invalid_field",
                "\"afterSeq\" must be an integer.",
            ),
            (
                format!(r#"{{"type":"send","chat":"{chat}","message":"m"}}"#),
                "missing_field",
                "\"clientId\" is required.",
            ),
            (
                format!(r#"{{"type":"send","chat":"{chat}","clientId":"","message":"m"}}"#),
                "invalid_client_id",
                "\"clientId\" must be a string of 1 to 64 characters.",
            ),
            (
                format!(r#"{{"type":"send","chat":"{chat}","clientId":7,"message":"m"}}"#),
                "invalid_client_id",
                "\"clientId\" must be a string of 1 to 64 characters.",
            ),
            (
                format!(r#"{{"type":"send","chat":"{chat}","clientId":"c"}}"#),
                "missing_message",
                "\"message\" is required.",
            ),
            (
                format!(r#"{{"type":"send","chat":"{chat}","clientId":"c","message":["x"],"messageType":"one"}}"#),
                "invalid_frame",
                "message: Not a valid string.; type: A valid integer is required.",
            ),
            (
                format!(r#"{{"type":"send","chat":"{chat}","clientId":"c","message":null}}"#),
                "invalid_frame",
                "message: This field may not be null.",
            ),
            (
                format!(r#"{{"type":"resume","chats":{{"{chat}":"3"}}}}"#),
                "invalid_field",
                "sequences must be integers.",
            ),
            (
                r#"{"type":"resume","chats":{"x":3}}"#.into(),
                "invalid_field",
                "chat ids must be uuids.",
            ),
            (
                r#"{"type":"resume","chats":{}}"#.into(),
                "invalid_field",
                "resume needs 1 to 1000 chats.",
            ),
            (
                format!(r#"{{"type":"resume","chat":"{chat}"}}"#),
                "missing_field",
                "\"lastSeq\" is required.",
            ),
            (
                format!(r#"{{"type":"read","chat":"{chat}"}}"#),
                "missing_field",
                "\"seq\" or \"messageId\" is required.",
            ),
            (
                format!(r#"{{"type":"read","chat":"{chat}","messageId":null}}"#),
                "missing_field",
                "\"messageId\" is required.",
            ),
            (
                format!(r#"{{"type":"read","chat":"{chat}","seq":1.5}}"#),
                "invalid_field",
                "\"seq\" must be an integer.",
            ),
            (
                r#"{"type":"edit","id":"x","message":"m"}"#.into(),
                "invalid_field",
                "\"id\" must be a uuid.",
            ),
            (
                format!(r#"{{"type":"edit","id":"{chat}"}}"#),
                "missing_field",
                "\"message\" is required.",
            ),
            (
                format!(r#"{{"type":"edit","id":"{chat}","message":{{}}}}"#),
                "invalid_frame",
                "message: Not a valid string.",
            ),
            (
                format!(r#"{{"type":"add_member","chat":"{chat}"}}"#),
                "missing_field",
                "\"user\" is required.",
            ),
        ];
        for (text, code, detail) in cases {
            assert_eq!(refusal(text), (code.to_string(), detail.to_string()), "{text}");
        }
    }

    #[test]
    fn a_refusal_carries_the_frames_ref() {
        let refused = parse(r#"{"type":"subscribe","ref":{"n":1}}"#).unwrap_err();
        assert_eq!(refused.reference, Some(serde_json::json!({ "n": 1 })));
        assert_eq!(parse("{").unwrap_err().reference, None);
    }

    #[test]
    fn sends_read_their_fields_as_rest_bodies_do() {
        let chat = ChatId::new();
        let frame = parse(&format!(
            r#"{{"type":"send","chat":"{chat}","clientId":"c","message":12,"messageType":"1","extraData":" 4,5 "}}"#
        ))
        .unwrap();
        let Command::Send(send) = frame.command else {
            panic!("{frame:?}")
        };
        assert_eq!(send.message, "12", "numbers are text, as in DRF's CharField");
        assert_eq!(send.message_type, Some(1));
        assert_eq!(send.extra_data, Some(Some("4,5".into())), "extraData is trimmed");
        let draft = send.into_draft();
        assert_eq!(draft.client_id.as_deref(), Some("c"));
        // The message rules come after reading: a blank text reads fine.
        let blank = parse(&format!(
            r#"{{"type":"send","chat":"{chat}","clientId":"c","message":" "}}"#
        ));
        assert!(blank.is_ok());
    }
}
