//! How messages and chats look on the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::accounts::view::UserBrief;
use crate::ids::{ChatId, MessageId, UserId};
use crate::store::messages::MessageRow;

/// The contract's message object (`{"id","refChat","author","message","type","extraData",
/// "isRead","createdAt","updatedAt"}`), plus the chat order `seq` used by the v2 protocol.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: MessageId,
    pub ref_chat: ChatId,
    pub author: Option<UserId>,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: i32,
    pub extra_data: Option<String>,
    pub is_read: bool,
    #[serde(with = "micros")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "micros")]
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub deleted: bool,
}

impl MessageView {
    /// The REST shape: exactly the contract's fields.
    pub(crate) fn rest(row: &MessageRow) -> MessageView {
        MessageView {
            id: row.id,
            ref_chat: row.chat_id,
            author: row.author,
            message: row.body.clone(),
            kind: row.kind,
            extra_data: row.extra_data.clone(),
            is_read: row.is_read,
            created_at: row.created_at,
            updated_at: row.updated_at,
            seq: None,
            client_id: None,
            deleted: false,
        }
    }

    /// The realtime shape: the contract's fields plus order, client id and tombstone flag.
    pub(crate) fn full(row: &MessageRow) -> MessageView {
        MessageView {
            seq: Some(row.seq),
            client_id: row.client_id.clone(),
            deleted: row.deleted,
            ..MessageView::rest(row)
        }
    }
}

/// A chat as the app shows it, from one member's side: both users, the last message, and
/// Causerie's additions (unread count, groups) after the series' fields.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChatView {
    pub id: ChatId,
    /// `null` for a deleted user, and for groups.
    pub from_user: Option<UserBrief>,
    pub to_user: Option<UserBrief>,
    /// The last live message, as a list of zero or one (the series' serializer shape).
    pub last_message: Vec<MessageView>,
    #[serde(with = "micros")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "micros")]
    pub updated_at: DateTime<Utc>,
    pub unread_count: i64,
    pub is_group: bool,
    pub title: Option<String>,
    /// Groups only: every member, admins flagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberView>>,
}

/// A group member: the user's brief with their role.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct MemberView {
    #[serde(flatten)]
    pub user: UserBrief,
    #[serde(rename = "isAdmin")]
    pub is_admin: bool,
}

/// Timestamps as `2026-11-25T10:00:00.123456Z`, the way DRF renders them.
pub(crate) mod micros {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
