//! The bodies and query filters of the finished app's API, each read with DRF's (bodies) or
//! django-filter's (queries) messages. The schema attributes describe what each reader reads;
//! `http::tests` holds the two together.

use chrono::{DateTime, Utc};
use utoipa::{IntoParams, ToSchema};

use super::draft::{Draft, MESSAGE_MAX_CHARS};
use super::groups::{MEMBERS_MAX, TITLE_MAX};
use super::messages::MessageChange;
use crate::accounts::NAME_MAX;
use crate::error::ApiError;
use crate::http::{Fields, FromBody, FromQuery, QueryParams};
use crate::ids::{ChatId, MessageId, UserId};
use crate::store::users::ProfileChange;
use crate::validation::REQUIRED;

/// Longest avatar (an upload's id or URL).
const AVATAR_MAX: usize = 2048;
/// Most ids one "mark read" may name.
const MARK_READ_MAX: usize = 1000;
/// Most search terms used, and the longest of each.
const SEARCH_TERMS_MAX: usize = 10;

// ---- bodies -----------------------------------------------------------------------------

/// `PUT`/`PATCH /api/user/{id}/`: what the app changes on its own record. `password`, `email`,
/// `is_staff` and `is_superuser` are read-only here and ignored, as DRF ignores read-only
/// fields.
#[derive(Debug, ToSchema)]
pub(crate) struct ProfilePatch {
    #[schema(max_length = 150, nullable = false)]
    pub first_name: Option<String>,
    #[schema(max_length = 150, nullable = false)]
    pub last_name: Option<String>,
    #[schema(nullable = false)]
    pub online: Option<bool>,
    /// Null clears it.
    #[schema(rename = "lastConnexionDate", value_type = Option<DateTime<Utc>>)]
    pub last_connexion_date: Option<Option<DateTime<Utc>>>,
    /// The id or the `url` of an image the caller uploaded; null or `""` clears it.
    #[schema(max_length = 2048, value_type = Option<String>)]
    pub avatar: Option<Option<String>>,
}

impl FromBody for ProfilePatch {
    fn from_fields(f: &mut Fields<'_>) -> Option<ProfilePatch> {
        Some(ProfilePatch {
            first_name: f.optional_str("first_name", NAME_MAX),
            last_name: f.optional_str("last_name", NAME_MAX),
            online: f.optional_bool("online"),
            last_connexion_date: f.optional_datetime("lastConnexionDate"),
            avatar: f.optional_nullable_str("avatar", AVATAR_MAX),
        })
    }
}

impl From<ProfilePatch> for ProfileChange {
    fn from(patch: ProfilePatch) -> ProfileChange {
        ProfileChange {
            first_name: patch.first_name,
            last_name: patch.last_name,
            online: patch.online,
            last_connexion_date: patch.last_connexion_date,
            avatar: patch.avatar,
        }
    }
}

/// `POST /api/createChat/`.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub(crate) struct NewChat {
    /// Must be the caller.
    pub ref_user: UserId,
    /// The other participant: an active user other than the caller.
    pub chat_with_user: UserId,
}

impl FromBody for NewChat {
    fn from_fields(f: &mut Fields<'_>) -> Option<NewChat> {
        let ref_user = f.required_id("refUser");
        let chat_with_user = f.required_id("chatWithUser");
        Some(NewChat {
            ref_user: ref_user?,
            chat_with_user: chat_with_user?,
        })
    }
}

/// `POST /api/message/`: the chat and the message. `author` in the body is ignored: the author
/// is always the caller.
#[derive(Debug, ToSchema)]
pub(crate) struct NewMessage {
    #[schema(rename = "refChat")]
    pub chat: ChatId,
    #[serde(flatten)]
    pub draft: Draft,
}

impl FromBody for NewMessage {
    fn from_fields(f: &mut Fields<'_>) -> Option<NewMessage> {
        let chat = f.required_id("refChat");
        if !f.present("message") {
            f.error("message", REQUIRED);
        }
        // No size cap while reading: the body limit (`max_body_bytes`, which is also the
        // largest `extraData` the chat rules take) has already held the whole body to it, and
        // the rules check the sizes again with their own codes.
        let draft = Draft::read(f, usize::MAX);
        Some(NewMessage { chat: chat?, draft })
    }
}

/// `PUT`/`PATCH /api/message/{id}/`: `{"isRead":true}` by the recipient, `{"message":…}` by the
/// author; an empty body changes nothing.
#[derive(Debug, ToSchema)]
pub(crate) struct MessagePatch {
    #[schema(rename = "message", max_length = 10_000, nullable = false)]
    pub text: Option<String>,
    #[schema(rename = "isRead", nullable = false)]
    pub is_read: Option<bool>,
}

impl FromBody for MessagePatch {
    fn from_fields(f: &mut Fields<'_>) -> Option<MessagePatch> {
        Some(MessagePatch {
            text: f.optional_raw_str("message", MESSAGE_MAX_CHARS),
            is_read: f.optional_bool("isRead"),
        })
    }
}

impl MessagePatch {
    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_none() && self.is_read.is_none()
    }
}

impl From<MessagePatch> for MessageChange {
    fn from(patch: MessagePatch) -> MessageChange {
        MessageChange {
            text: patch.text,
            is_read: patch.is_read,
        }
    }
}

/// `POST /api/updateMessagesStatus/`. The app's endpoint answers bad input with
/// `{"status":"KO"}` rather than a 400, so this reader refuses nothing: ids it cannot use
/// leave `ids` empty.
#[derive(Debug, ToSchema)]
pub(crate) struct MarkRead {
    #[schema(rename = "messageIds", max_items = 1000, nullable = false, required = true)]
    pub ids: Option<Vec<MessageId>>,
}

impl FromBody for MarkRead {
    fn from_fields(f: &mut Fields<'_>) -> Option<MarkRead> {
        Some(MarkRead {
            ids: f.lenient_id_list("messageIds", MARK_READ_MAX),
        })
    }
}

/// `POST /api/groups/`: the caller becomes its admin.
#[derive(Debug, ToSchema)]
pub(crate) struct NewGroup {
    #[schema(max_length = 128, pattern = r"\S")]
    pub title: String,
    /// Active users to add besides the caller.
    #[schema(required = false, max_items = 1000)]
    pub members: Vec<UserId>,
}

impl FromBody for NewGroup {
    fn from_fields(f: &mut Fields<'_>) -> Option<NewGroup> {
        let title = f.required_str("title", TITLE_MAX);
        let members = f.optional_id_list("members", MEMBERS_MAX, "Enter a list of valid UUIDs.");
        Some(NewGroup {
            title: title?,
            members: members?,
        })
    }
}

/// `PUT`/`PATCH /api/groups/{id}/`.
#[derive(Debug, ToSchema)]
pub(crate) struct GroupTitle {
    #[schema(max_length = 128, pattern = r"\S")]
    pub title: String,
}

impl FromBody for GroupTitle {
    fn from_fields(f: &mut Fields<'_>) -> Option<GroupTitle> {
        Some(GroupTitle {
            title: f.required_str("title", TITLE_MAX)?,
        })
    }
}

/// `POST /api/groups/{id}/members/`.
#[derive(Debug, ToSchema)]
pub(crate) struct NewMember {
    pub user: UserId,
    /// Whether the new member is an admin too (default false).
    #[schema(rename = "isAdmin", required = false)]
    pub is_admin: bool,
}

impl FromBody for NewMember {
    fn from_fields(f: &mut Fields<'_>) -> Option<NewMember> {
        let user = f.required_id("user");
        let is_admin = f.optional_bool("isAdmin").unwrap_or(false);
        Some(NewMember { user: user?, is_admin })
    }
}

// ---- query filters ----------------------------------------------------------------------

/// `/api/user/` filters: each must match the caller, else the page is empty.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserFilters {
    /// Filter by id.
    pub id: Option<UserId>,
    /// Filter by email (case-insensitive).
    pub email: Option<String>,
    /// Filter by first name (case-insensitive).
    pub first_name: Option<String>,
    /// Filter by last name (case-insensitive).
    pub last_name: Option<String>,
    /// Filter by active state.
    pub valid: Option<bool>,
}

impl FromQuery for UserFilters {
    fn from_query(params: &QueryParams) -> Result<UserFilters, ApiError> {
        let mut q = params.filters();
        let filters = UserFilters {
            id: q.id("id"),
            email: q.text("email"),
            first_name: q.text("first_name"),
            last_name: q.text("last_name"),
            valid: q.boolean("valid"),
        };
        q.finish_with(Some(filters))
    }
}

/// `/api/searchUser/`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Search {
    /// Terms separated by spaces or commas; a user matches when their first or last name
    /// contains every term (case-insensitive). At most 10 terms are used.
    #[param(rename = "search", value_type = Option<String>)]
    pub terms: Vec<String>,
}

impl FromQuery for Search {
    fn from_query(params: &QueryParams) -> Result<Search, ApiError> {
        let terms = params
            .get("search")
            .map(|s| {
                s.split(|c: char| c.is_whitespace() || c == ',' || c == '\0')
                    .filter(|t| !t.is_empty())
                    .take(SEARCH_TERMS_MAX)
                    .map(|t| t.chars().take(NAME_MAX).collect())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Search { terms })
    }
}

/// `/api/chat/` filters.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChatFilters {
    /// Only this chat.
    pub id: Option<ChatId>,
}

impl FromQuery for ChatFilters {
    fn from_query(params: &QueryParams) -> Result<ChatFilters, ApiError> {
        let mut q = params.filters();
        let filters = ChatFilters { id: q.id("id") };
        q.finish_with(Some(filters))
    }
}

/// `/api/message/` filters, and Causerie's cursors.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MessageFilters {
    /// The chat (the caller must be in it). Without it: the messages of every chat the caller
    /// is in, newest first (then `before` and `after` cannot be used).
    #[param(rename = "refChat")]
    pub chat: Option<ChatId>,
    /// Filter by id.
    pub id: Option<MessageId>,
    /// Filter by type.
    #[param(rename = "type")]
    pub kind: Option<i32>,
    /// Filter by read state.
    #[param(rename = "isRead")]
    pub is_read: Option<bool>,
    /// Only messages older than this one (cursor).
    pub before: Option<MessageId>,
    /// Only messages newer than this one (cursor).
    pub after: Option<MessageId>,
}

impl FromQuery for MessageFilters {
    fn from_query(params: &QueryParams) -> Result<MessageFilters, ApiError> {
        let mut q = params.filters();
        let chat = q.id("refChat");
        let id = q.id("id");
        let kind = q.integer("type");
        let is_read = q.boolean("isRead");
        let before = q.id("before");
        let after = q.id("after");
        let filters = MessageFilters {
            chat,
            id,
            kind,
            is_read,
            before,
            after,
        };
        q.finish_with(Some(filters))
    }
}

/// `PATCH /api/chat/{id}/`: the caller's own settings for the chat.
#[derive(Debug, ToSchema)]
pub(crate) struct ChatPatch {
    /// Muted chats are never pushed to the caller.
    pub muted: bool,
}

impl FromBody for ChatPatch {
    fn from_fields(f: &mut Fields<'_>) -> Option<ChatPatch> {
        if !f.present("muted") {
            f.error("muted", REQUIRED);
            return None;
        }
        Some(ChatPatch {
            muted: f.optional_bool("muted")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::schema_check::{body_matches_its_schema, query_matches_its_params, reads_what_it_documents};
    use crate::http::PageRequest;

    #[test]
    fn every_body_documents_what_it_reads() {
        body_matches_its_schema::<ProfilePatch>();
        body_matches_its_schema::<NewChat>();
        body_matches_its_schema::<NewMessage>();
        body_matches_its_schema::<MessagePatch>();
        body_matches_its_schema::<NewGroup>();
        body_matches_its_schema::<GroupTitle>();
        body_matches_its_schema::<NewMember>();
        body_matches_its_schema::<ChatPatch>();
        // Documented as required, but a body without it is answered `KO`, not 400.
        reads_what_it_documents::<MarkRead>();
    }

    #[test]
    fn every_query_documents_what_it_reads() {
        query_matches_its_params::<PageRequest>();
        query_matches_its_params::<UserFilters>();
        query_matches_its_params::<Search>();
        query_matches_its_params::<ChatFilters>();
        query_matches_its_params::<MessageFilters>();
    }
}
