//! The finished app's REST API under `/api/` (contract section 4). Each handler's
//! `#[utoipa::path]` is its entry in the OpenAPI document; `router` registers handler and entry
//! together.

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::requests::{
    ChatFilters, ChatPatch, GroupTitle, MarkRead, MessageFilters, MessagePatch, NewChat, NewGroup, NewMember,
    NewMessage, ProfilePatch, Search, UserFilters,
};
use super::view::{ChatView, MessageView, Status, StatusWord};
use super::{ChatError, Chats};
use crate::accounts::view::{Profile, UserBrief};
use crate::accounts::{Accounts, CurrentUser};
use crate::error::{ApiError, ApiResult, Detail, FieldErrorsBody};
use crate::http::answers::{Forbidden, InvalidPage, NotFound};
use crate::http::{Form, Ids, Page, PageLink, PageRequest, Query};
use crate::ids::{ChatId, MessageId, UserId};
use crate::store::messages::HistoryFilter;
use crate::store::users::UserRow;

/// How chat failures look to an HTTP client.
impl From<ChatError> for ApiError {
    fn from(err: ChatError) -> ApiError {
        match err {
            ChatError::NotFound => ApiError::NotFound,
            ChatError::Forbidden => ApiError::PermissionDenied,
            ChatError::Refused(refusal) => ApiError::field(refusal.field, refusal.detail),
            ChatError::Invalid { field, detail } => ApiError::field(field, detail),
            ChatError::InvalidSeq { .. } => ApiError::field("seq", "No message with this sequence in this chat."),
            ChatError::NotAGroup => ApiError::BadRequest("Members of a two-person chat cannot change.".into()),
            ChatError::Throttled => ApiError::Throttled(1),
            ChatError::Unavailable => ApiError::Unavailable,
            ChatError::WriteFailed(reason) => ApiError::Internal(anyhow::anyhow!(reason)),
            ChatError::Store(err) => ApiError::Internal(anyhow::Error::new(err).context("chat storage")),
            ChatError::Accounts(err) => err.into(),
            ChatError::Media(err) => err.into(),
        }
    }
}

pub(crate) fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Chats: FromRef<S>,
    Accounts: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(profile_list))
        .routes(routes!(profile_detail, profile_update))
        .routes(routes!(search_users))
        .routes(routes!(chat_list))
        .routes(routes!(chat_detail, chat_update, chat_delete))
        .routes(routes!(create_chat))
        .routes(routes!(message_list, message_create))
        .routes(routes!(message_detail, message_update, message_delete))
        .routes(routes!(update_messages_status))
        .routes(routes!(group_create))
        .routes(routes!(group_rename))
        .routes(routes!(group_add_member))
        .routes(routes!(group_remove_member))
}

// The pages, named for `#[utoipa::path]` (which takes a generic body type for a derived one).
type ProfilePage = Page<Profile>;
type UserBriefPage = Page<UserBrief>;
type ChatPage = Page<ChatView>;
type MessagePage = Page<MessageView>;

// ---- users ------------------------------------------------------------------------------

/// The caller, reached through their own `/api/user/{id}/`; anyone else's id is "not found".
/// An extractor, so that the 404 comes before the body is read.
struct OwnRecord(UserRow);

impl<S> FromRequestParts<S> for OwnRecord
where
    S: Send + Sync,
    Accounts: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<OwnRecord, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        let Ids(id) = Ids::<UserId>::from_request_parts(parts, state).await?;
        if id != user.id {
            return Err(ApiError::NotFound);
        }
        Ok(OwnRecord(UserRow::clone(&user)))
    }
}

/// The caller's own record.
///
/// Filters must all match the caller, else the page is empty.
#[utoipa::path(
    get,
    path = "/api/user/",
    tag = "users",
    params(PageRequest, UserFilters),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "A page holding the caller or nothing", body = ProfilePage),
        (status = BAD_REQUEST, description = "A malformed `id` or `valid` filter", body = FieldErrorsBody),
        InvalidPage,
    )
)]
async fn profile_list(
    State(chats): State<Chats>,
    user: CurrentUser,
    Query(page): Query<PageRequest>,
    Query(filters): Query<UserFilters>,
    link: PageLink,
) -> ApiResult<Json<Page<Profile>>> {
    let me = &user.0;
    let text_matches = |want: &Option<String>, value: &str| want.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(value));
    let matches = filters.id.is_none_or(|id| id == me.id)
        && filters.valid.is_none_or(|v| v == me.is_active)
        && text_matches(&filters.email, &me.email)
        && text_matches(&filters.first_name, &me.first_name)
        && text_matches(&filters.last_name, &me.last_name);
    let results = if matches { vec![chats.profile(me)] } else { Vec::new() };
    let total = results.len() as i64;
    Ok(Json(page.resolve(total).render(total, results, &link)?))
}

/// The caller's profile.
#[utoipa::path(
    get,
    path = "/api/user/{id}/",
    tag = "users",
    params(("id" = UserId, Path, description = "The caller's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The profile", body = Profile),
        NotFound,
    )
)]
async fn profile_detail(State(chats): State<Chats>, OwnRecord(user): OwnRecord) -> Json<Profile> {
    Json(chats.profile(&user))
}

/// Change the caller's profile.
///
/// Only the caller's own record (others: 404). `avatar` is the id or the `url` of an image the
/// caller uploaded (`POST /api/attachments/`) and has not posted; null or `""` clears it. The
/// avatar it replaces is removed.
#[utoipa::path(
    method(put, patch),
    path = "/api/user/{id}/",
    tag = "users",
    params(("id" = UserId, Path, description = "The caller's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The updated profile", body = Profile),
        NotFound,
    )
)]
async fn profile_update(
    State(chats): State<Chats>,
    OwnRecord(user): OwnRecord,
    Form(patch): Form<ProfilePatch>,
) -> ApiResult<Json<Profile>> {
    let updated = chats.update_profile(&user, patch.into()).await?;
    Ok(Json(chats.profile(&updated)))
}

/// Find other users by name.
///
/// Active users other than the caller whose first or last name contains every term.
#[utoipa::path(
    get,
    path = "/api/searchUser/",
    tag = "users",
    params(PageRequest, Search),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "A page of users", body = UserBriefPage),
        InvalidPage,
    )
)]
async fn search_users(
    State(chats): State<Chats>,
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Query(page): Query<PageRequest>,
    Query(search): Query<Search>,
    link: PageLink,
) -> ApiResult<Json<Page<UserBrief>>> {
    let terms = &search.terms;
    // Only `?page=last` needs the count before the page.
    let page = if page.is_last() {
        page.resolve(accounts.search(user.id(), terms, 0, 0).await?.total)
    } else {
        page
    };
    let found = accounts.search(user.id(), terms, page.limit(), page.offset()).await?;
    let results = found.users.iter().map(|u| chats.brief(u)).collect();
    Ok(Json(page.render(found.total, results, &link)?))
}

// ---- chats ------------------------------------------------------------------------------

/// The caller's chats, most recently updated first.
#[utoipa::path(
    get,
    path = "/api/chat/",
    tag = "chats",
    params(PageRequest, ChatFilters),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "A page of chats", body = ChatPage),
        (status = BAD_REQUEST, description = "A malformed `id` filter", body = FieldErrorsBody),
        InvalidPage,
    )
)]
async fn chat_list(
    State(chats): State<Chats>,
    user: CurrentUser,
    Query(page): Query<PageRequest>,
    Query(filters): Query<ChatFilters>,
    link: PageLink,
) -> ApiResult<Response> {
    let only = filters.id;
    // Only `?page=last` needs the count before the page.
    let page = if page.is_last() {
        page.resolve(chats.count_chats(user.id(), only).await?)
    } else {
        page
    };
    let listed = chats
        .list_chats_json(user.id(), only, page.limit(), page.offset())
        .await?;
    page.render_json(listed.total, &listed.results, &link)
}

/// One chat.
#[utoipa::path(
    get,
    path = "/api/chat/{id}/",
    tag = "chats",
    params(("id" = ChatId, Path, description = "The chat's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The chat", body = ChatView),
        NotFound,
    )
)]
async fn chat_detail(State(chats): State<Chats>, user: CurrentUser, Ids(id): Ids<ChatId>) -> ApiResult<Json<ChatView>> {
    Ok(Json(chats.chat_view(id, user.id()).await?))
}

/// Change the caller's own settings for a chat: `{"muted": true}` stops push notifications
/// for it, `false` starts them again.
#[utoipa::path(
    patch,
    path = "/api/chat/{id}/",
    tag = "chats",
    params(("id" = ChatId, Path, description = "The chat's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The chat", body = ChatView),
        NotFound,
    )
)]
async fn chat_update(
    State(chats): State<Chats>,
    user: CurrentUser,
    Ids(id): Ids<ChatId>,
    Form(patch): Form<ChatPatch>,
) -> ApiResult<Json<ChatView>> {
    Ok(Json(chats.set_muted(user.id(), id, patch.muted).await?))
}

/// Delete a chat and its messages.
#[utoipa::path(
    delete,
    path = "/api/chat/{id}/",
    tag = "chats",
    params(("id" = ChatId, Path, description = "The chat's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = NO_CONTENT, description = "Deleted"),
        Forbidden,
        NotFound,
    )
)]
async fn chat_delete(State(chats): State<Chats>, user: CurrentUser, Ids(id): Ids<ChatId>) -> ApiResult<StatusCode> {
    chats.delete_chat(user.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Find or create the chat with another user.
///
/// Answers 201 whether the chat was created or already existed.
#[utoipa::path(
    post,
    path = "/api/createChat/",
    tag = "chats",
    security(("jwtAuth" = [])),
    responses(
        (status = CREATED, description = "The chat", body = ChatView),
        (status = FORBIDDEN, description = "`refUser` is not the caller", body = Detail),
    )
)]
async fn create_chat(
    State(chats): State<Chats>,
    user: CurrentUser,
    Form(new): Form<NewChat>,
) -> ApiResult<(StatusCode, Json<ChatView>)> {
    if new.ref_user != user.id() {
        return Err(ApiError::PermissionDenied);
    }
    let (chat, _created) = chats.open_pair(user.id(), new.chat_with_user).await?;
    let view = chats.chat_view(chat.id, user.id()).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

// ---- messages ---------------------------------------------------------------------------

/// The sequence of a cursor message, which must belong to the listed chat.
async fn cursor_seq(chats: &Chats, cursor: Option<MessageId>, name: &str, chat: ChatId) -> ApiResult<Option<i64>> {
    let Some(id) = cursor else {
        return Ok(None);
    };
    match chats.cursor_seq(chat, id).await? {
        Some(seq) => Ok(Some(seq)),
        None => Err(ApiError::field(name, "No message with this id in this chat.")),
    }
}

/// A chat's messages, newest first; without `refChat`, the messages of all the caller's chats.
#[utoipa::path(
    get,
    path = "/api/message/",
    tag = "messages",
    params(PageRequest, MessageFilters),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "A page of messages", body = MessagePage),
        (status = BAD_REQUEST, description = "A malformed filter, or a cursor without `refChat`", body = FieldErrorsBody),
        (status = NOT_FOUND, description = "Not found, or Invalid page.", body = Detail),
    )
)]
async fn message_list(
    State(chats): State<Chats>,
    user: CurrentUser,
    Query(page): Query<PageRequest>,
    Query(filters): Query<MessageFilters>,
    link: PageLink,
) -> ApiResult<Json<Page<MessageView>>> {
    let Some(chat) = filters.chat else {
        // The series listed everyone's messages here; Causerie lists the caller's chats' only.
        for (name, cursor) in [("before", filters.before), ("after", filters.after)] {
            if cursor.is_some() {
                return Err(ApiError::field(name, "Only together with refChat."));
            }
        }
        let filter = HistoryFilter {
            id: filters.id,
            kind: filters.kind,
            is_read: filters.is_read,
            before_seq: None,
            after_seq: None,
        };
        let page = if page.is_last() {
            page.resolve(chats.messages_of(user.id(), &filter, 0, 0).await?.total)
        } else {
            page
        };
        let found = chats
            .messages_of(user.id(), &filter, page.limit(), page.offset())
            .await?;
        let results = found.messages.iter().map(|m| chats.show_rest(m)).collect();
        return Ok(Json(page.render(found.total, results, &link)?));
    };
    // A stranger is told the chat does not exist before anything about its cursors (the
    // history below checks membership again in the statement it needs anyway).
    if filters.before.is_some() || filters.after.is_some() {
        chats.chat_for_member(chat, user.id()).await?;
    }
    let filter = HistoryFilter {
        id: filters.id,
        kind: filters.kind,
        is_read: filters.is_read,
        before_seq: cursor_seq(&chats, filters.before, "before", chat).await?,
        after_seq: cursor_seq(&chats, filters.after, "after", chat).await?,
    };
    // Only `?page=last` needs the count before the page.
    let page = if page.is_last() {
        page.resolve(chats.history(chat, user.id(), &filter, 0, 0).await?.total)
    } else {
        page
    };
    let history = chats
        .history(chat, user.id(), &filter, page.limit(), page.offset())
        .await?;
    let results = history.messages.iter().map(|m| chats.show_rest(m)).collect();
    Ok(Json(page.render(history.total, results, &link)?))
}

/// Send a message.
///
/// Stored, then delivered to the chat's sockets exactly like a WebSocket message. The author is
/// always the caller; a retry with the same `clientId` answers as the first time did.
#[utoipa::path(
    post,
    path = "/api/message/",
    tag = "messages",
    security(("jwtAuth" = [])),
    responses(
        (status = CREATED, description = "The stored message", body = MessageView),
        NotFound,
        (status = TOO_MANY_REQUESTS, description = "More than `user_messages_per_second` messages from this user (all sockets and REST together); nothing stored (see `Retry-After`)", body = Detail),
    )
)]
async fn message_create(
    State(chats): State<Chats>,
    user: CurrentUser,
    Form(new): Form<NewMessage>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let stored = chats.post(user.id(), new.chat, new.draft).await?;
    Ok((StatusCode::CREATED, Json(chats.show_rest(&stored.row))))
}

/// One message.
#[utoipa::path(
    get,
    path = "/api/message/{id}/",
    tag = "messages",
    params(("id" = MessageId, Path, description = "The message's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The message", body = MessageView),
        NotFound,
    )
)]
async fn message_detail(
    State(chats): State<Chats>,
    user: CurrentUser,
    Ids(id): Ids<MessageId>,
) -> ApiResult<Json<MessageView>> {
    let message = chats.message_for_member(id, user.id()).await?;
    Ok(Json(chats.show_rest(&message)))
}

/// Edit or mark a message.
#[utoipa::path(
    method(put, patch),
    path = "/api/message/{id}/",
    tag = "messages",
    params(("id" = MessageId, Path, description = "The message's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The message", body = MessageView),
        Forbidden,
        NotFound,
    )
)]
async fn message_update(
    State(chats): State<Chats>,
    user: CurrentUser,
    Ids(id): Ids<MessageId>,
    Form(patch): Form<MessagePatch>,
) -> ApiResult<Json<MessageView>> {
    let message = if patch.is_empty() {
        chats.message_for_member(id, user.id()).await?
    } else {
        chats.change_message(user.id(), id, patch.into()).await?
    };
    Ok(Json(chats.show_rest(&message)))
}

/// Delete a message (author only).
#[utoipa::path(
    delete,
    path = "/api/message/{id}/",
    tag = "messages",
    params(("id" = MessageId, Path, description = "The message's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = NO_CONTENT, description = "Deleted"),
        Forbidden,
        NotFound,
    )
)]
async fn message_delete(
    State(chats): State<Chats>,
    user: CurrentUser,
    Ids(id): Ids<MessageId>,
) -> ApiResult<StatusCode> {
    chats.delete_message(user.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mark messages read.
///
/// Only messages in the caller's chats written by someone else are changed; the rest are
/// ignored. Input it cannot use answers `{"status":"KO"}`.
#[utoipa::path(
    post,
    path = "/api/updateMessagesStatus/",
    tag = "messages",
    security(("jwtAuth" = [])),
    responses((status = OK, description = "OK, or KO for unusable input", body = Status))
)]
async fn update_messages_status(
    State(chats): State<Chats>,
    user: CurrentUser,
    Form(request): Form<MarkRead>,
) -> ApiResult<Json<Status>> {
    let status = match request.ids {
        Some(ids) => {
            chats.mark_read(user.id(), &ids).await?;
            StatusWord::Ok
        }
        None => StatusWord::Ko,
    };
    Ok(Json(Status { status }))
}

// ---- groups -----------------------------------------------------------------------------

/// Create a group chat.
///
/// The caller becomes its admin; `members` must be active users.
#[utoipa::path(
    post,
    path = "/api/groups/",
    tag = "groups",
    security(("jwtAuth" = [])),
    responses((status = CREATED, description = "The group", body = ChatView))
)]
async fn group_create(
    State(chats): State<Chats>,
    user: CurrentUser,
    Form(new): Form<NewGroup>,
) -> ApiResult<(StatusCode, Json<ChatView>)> {
    let chat = chats.create_group(user.id(), &new.title, &new.members).await?;
    let view = chats.chat_view(chat.id, user.id()).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Rename a group (admins only).
#[utoipa::path(
    method(put, patch),
    path = "/api/groups/{id}/",
    tag = "groups",
    params(("id" = ChatId, Path, description = "The group's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The group", body = ChatView),
        Forbidden,
        NotFound,
    )
)]
async fn group_rename(
    State(chats): State<Chats>,
    user: CurrentUser,
    Ids(chat): Ids<ChatId>,
    Form(title): Form<GroupTitle>,
) -> ApiResult<Json<ChatView>> {
    chats.rename_group(user.id(), chat, &title.title).await?;
    Ok(Json(chats.chat_view(chat, user.id()).await?))
}

/// Add a member (admins only).
#[utoipa::path(
    post,
    path = "/api/groups/{id}/members/",
    tag = "groups",
    params(("id" = ChatId, Path, description = "The group's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = CREATED, description = "Added; the group", body = ChatView),
        (status = OK, description = "Already a member; the group", body = ChatView),
        Forbidden,
        NotFound,
    )
)]
async fn group_add_member(
    State(chats): State<Chats>,
    user: CurrentUser,
    Ids(chat): Ids<ChatId>,
    Form(new): Form<NewMember>,
) -> ApiResult<(StatusCode, Json<ChatView>)> {
    let added = chats.add_member(user.id(), chat, new.user, new.is_admin).await?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(chats.chat_view(chat, user.id()).await?)))
}

/// Remove a member, or leave.
///
/// Admins may remove anyone; any member may remove themself.
#[utoipa::path(
    delete,
    path = "/api/groups/{id}/members/{user}/",
    tag = "groups",
    params(
        ("id" = ChatId, Path, description = "The group's id"),
        ("user" = UserId, Path, description = "The member's user id"),
    ),
    security(("jwtAuth" = [])),
    responses(
        (status = NO_CONTENT, description = "Removed"),
        (status = BAD_REQUEST, description = "Members of a two-person chat cannot change", body = Detail),
        Forbidden,
        NotFound,
    )
)]
async fn group_remove_member(
    State(chats): State<Chats>,
    user: CurrentUser,
    Ids((chat, member)): Ids<(ChatId, UserId)>,
) -> ApiResult<StatusCode> {
    chats.remove_member(user.id(), chat, member).await?;
    Ok(StatusCode::NO_CONTENT)
}
