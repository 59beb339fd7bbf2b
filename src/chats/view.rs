//! How messages and chats look on the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::view::UserBrief;
/// Where realtime and the views find the timestamp format.
pub(crate) use crate::http::micros;
use crate::ids::{ChatId, MessageId, UserId};
use crate::media::view::AttachmentView;
use crate::store::messages::MessageRow;

/// The contract's message object. Its keys come out in the order DRF's `ModelSerializer` (with
/// `fields = "__all__"`) emits them: the primary key, the model's own fields in declaration
/// order, then its forward relations (`refChat`, `author`). After them, what only the realtime
/// shape carries (chat order `seq`, the sender's `clientId`, the tombstone flag).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Message)]
pub struct MessageView {
    pub id: MessageId,
    pub message: String,
    /// 0 text, 1 geolocation (`extraData` = `"lat,lon"`), 2 photo.
    #[serde(rename = "type")]
    pub kind: i32,
    /// Coordinates or an attachment (data URL or link); may be empty or null.
    #[schema(required = true)]
    pub extra_data: Option<String>,
    pub is_read: bool,
    #[serde(with = "micros")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "micros")]
    pub updated_at: DateTime<Utc>,
    pub ref_chat: ChatId,
    /// `null` once the author's account is deleted.
    #[schema(required = true)]
    pub author: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(ignore)]
    pub seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(ignore)]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    #[schema(ignore)]
    pub deleted: bool,
    /// The files the message carries (left out when none), with signed URLs made when the
    /// message is shown; `extraData` is then the first one's `url`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    #[schema(required = false)]
    pub attachments: Vec<AttachmentView>,
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
            attachments: Vec::new(),
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

/// A chat as the app shows it, from one member's side: the series' `ChatSerializer` (a model
/// serializer declaring `fromUser`, `toUser` and `lastMessage`), so the primary key, the
/// declared fields, then the model's own `createdAt`, `updatedAt`; Causerie's additions (unread
/// count, groups) after them.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Chat)]
pub(crate) struct ChatView {
    pub id: ChatId,
    /// `null` for a deleted user, and for groups.
    #[schema(required = true)]
    pub from_user: Option<UserBrief>,
    #[schema(required = true)]
    pub to_user: Option<UserBrief>,
    /// The last live message, as a list of zero or one (the series' serializer shape).
    #[schema(max_items = 1)]
    pub last_message: Vec<MessageView>,
    #[serde(with = "micros")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "micros")]
    pub updated_at: DateTime<Utc>,
    /// Messages from others the caller has not read.
    pub unread_count: i64,
    pub is_group: bool,
    /// A group's title (`null` for two-person chats).
    #[schema(required = true)]
    pub title: Option<String>,
    /// Whether the caller muted this chat: no push notifications for it
    /// (`PATCH /api/chat/{id}/ {"muted": …}`).
    pub muted: bool,
    /// Groups only: every member, admins flagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub members: Option<Vec<MemberView>>,
}

/// A group member: the user's brief with their role.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = Member)]
pub(crate) struct MemberView {
    #[serde(flatten)]
    pub user: UserBrief,
    #[serde(rename = "isAdmin")]
    pub is_admin: bool,
}

/// The answer of the app's bulk "mark read": `{"status":"OK"}`, or `{"status":"KO"}` for input
/// it cannot use.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Status {
    pub status: StatusWord,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) enum StatusWord {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "KO")]
    Ko,
}
