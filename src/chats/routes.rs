//! The finished app's REST API under `/api/` (contract section 4).

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::draft::{Draft, MESSAGE_MAX_CHARS};
use super::groups::{MEMBERS_MAX, TITLE_MAX};
use super::messages::MessageChange;
use super::view::{ChatView, MessageView};
use super::{ChatError, Chats};
use crate::accounts::{view, Accounts, CurrentUser, NAME_MAX};
use crate::error::{ApiError, ApiResult};
use crate::http::{Body, Fields, PageLink, PageRequest};
use crate::ids::{ChatId, MessageId, UserId};
use crate::store::messages::HistoryFilter;
use crate::store::users::ProfileChange;

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
            ChatError::Unavailable => ApiError::Unavailable,
            ChatError::WriteFailed(reason) => ApiError::Internal(anyhow::anyhow!(reason)),
            ChatError::Store(err) => ApiError::Internal(anyhow::Error::new(err).context("chat storage")),
            ChatError::Accounts(err) => err.into(),
        }
    }
}

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Chats: FromRef<S>,
    Accounts: FromRef<S>,
{
    Router::new()
        .route("/api/user/", get(user_list))
        .route("/api/user/{id}/", get(user_detail).put(user_update).patch(user_update))
        .route("/api/searchUser/", get(search_users))
        .route("/api/chat/", get(chat_list))
        .route("/api/chat/{id}/", get(chat_detail).delete(chat_delete))
        .route("/api/createChat/", post(create_chat))
        .route("/api/message/", get(message_list).post(message_create))
        .route(
            "/api/message/{id}/",
            get(message_detail)
                .put(message_update)
                .patch(message_update)
                .delete(message_delete),
        )
        .route("/api/updateMessagesStatus/", post(update_messages_status))
        .route("/api/groups/", post(group_create))
        .route(
            "/api/groups/{id}/",
            axum::routing::patch(group_rename).put(group_rename),
        )
        .route("/api/groups/{id}/members/", post(group_add_member))
        .route(
            "/api/groups/{id}/members/{user}/",
            axum::routing::delete(group_remove_member),
        )
}

type Params = Query<HashMap<String, String>>;

/// An id in the path: anything that does not parse is simply not found.
fn id_path<T: FromStr>(raw: &str) -> ApiResult<T> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// A query filter that must be a uuid when given.
fn id_param<T: FromStr>(params: &HashMap<String, String>, name: &str) -> ApiResult<Option<T>> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::field(name, "Enter a valid UUID.")),
    }
}

fn bool_param(params: &HashMap<String, String>, name: &str) -> ApiResult<Option<bool>> {
    match params.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(Some(true)),
        Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(Some(false)),
        Some(_) => Err(ApiError::field(name, "Enter a valid boolean.")),
    }
}

/// A list of uuids in a body field; `None` when it is not one.
fn id_list<T: FromStr>(value: &Value, max: usize) -> Option<Vec<T>> {
    let items = value.as_array().filter(|items| items.len() <= max)?;
    items.iter().map(|v| v.as_str().and_then(|s| s.parse().ok())).collect()
}

// ---- users ------------------------------------------------------------------------------

async fn user_list(user: CurrentUser, Query(q): Params, link: PageLink) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&q)?;
    let me = &user.0;
    let text_matches = |name: &str, value: &str| q.get(name).is_none_or(|want| want.trim().eq_ignore_ascii_case(value));
    let id_matches = id_param::<UserId>(&q, "id")?.is_none_or(|id| id == me.id);
    let valid_matches = bool_param(&q, "valid")?.is_none_or(|v| v == me.is_active);
    let matches = id_matches
        && valid_matches
        && text_matches("email", &me.email)
        && text_matches("first_name", &me.first_name)
        && text_matches("last_name", &me.last_name);
    let results: Vec<Value> = if matches { vec![view::profile(me)] } else { Vec::new() };
    let total = results.len() as i64;
    Ok(Json(page.resolve(total).render(total, results, &link)?))
}

async fn user_detail(user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    if id_path::<UserId>(&id)? != user.id() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(view::profile(&user.0)))
}

async fn user_update(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    if id_path::<UserId>(&id)? != user.id() {
        return Err(ApiError::NotFound);
    }
    // password, email, is_staff and is_superuser are read-only here and ignored, as DRF does.
    let mut f = Fields::new(&body);
    let change = ProfileChange {
        first_name: f.optional_str("first_name", NAME_MAX),
        last_name: f.optional_str("last_name", NAME_MAX),
        online: f.optional_bool("online"),
        last_connexion_date: f.optional_datetime("lastConnexionDate"),
        avatar: f.optional_nullable_str("avatar", 2048),
    };
    f.finish()?;
    let updated = if change.is_empty() {
        user.0
    } else {
        accounts
            .update_profile(user.id(), &change)
            .await?
            .ok_or(ApiError::NotFound)?
    };
    Ok(Json(view::profile(&updated)))
}

async fn search_users(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Query(q): Params,
    link: PageLink,
) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&q)?;
    let terms: Vec<String> = q
        .get("search")
        .map(|s| {
            s.split(|c: char| c.is_whitespace() || c == ',' || c == '\0')
                .filter(|t| !t.is_empty())
                .take(10)
                .map(|t| t.chars().take(NAME_MAX).collect())
                .collect()
        })
        .unwrap_or_default();
    // Only `?page=last` needs the count before the page.
    let page = if page.is_last() {
        page.resolve(accounts.search(user.id(), &terms, 0, 0).await?.total)
    } else {
        page
    };
    let found = accounts.search(user.id(), &terms, page.limit(), page.offset()).await?;
    let results: Vec<Value> = found.users.iter().map(view::brief).collect();
    Ok(Json(page.render(found.total, results, &link)?))
}

// ---- chats ------------------------------------------------------------------------------

async fn chat_list(
    State(chats): State<Chats>,
    user: CurrentUser,
    Query(q): Params,
    link: PageLink,
) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&q)?;
    let only = id_param::<ChatId>(&q, "id")?;
    // Only `?page=last` needs the count before the page.
    let page = if page.is_last() {
        page.resolve(chats.count_chats(user.id(), only).await?)
    } else {
        page
    };
    let listed = chats.list_chats(user.id(), only, page.limit(), page.offset()).await?;
    Ok(Json(page.render(listed.total, listed.chats, &link)?))
}

async fn chat_detail(
    State(chats): State<Chats>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<ChatView>> {
    Ok(Json(chats.chat_view(id_path(&id)?, user.id()).await?))
}

async fn chat_delete(State(chats): State<Chats>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<StatusCode> {
    chats.delete_chat(user.id(), id_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_chat(State(chats): State<Chats>, user: CurrentUser, Body(body): Body) -> ApiResult<Response> {
    let mut f = Fields::new(&body);
    let ref_user = f.required_uuid("refUser");
    let with_user = f.required_uuid("chatWithUser");
    f.finish()?;
    let (Some(ref_user), Some(with_user)) = (ref_user, with_user) else {
        unreachable!("checked by finish()")
    };
    if UserId(ref_user) != user.id() {
        return Err(ApiError::PermissionDenied);
    }
    let (chat, _created) = chats.open_pair(user.id(), UserId(with_user)).await?;
    let body = chats.chat_view(chat.id, user.id()).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

// ---- messages ---------------------------------------------------------------------------

/// The sequence of a cursor message, which must belong to the listed chat.
async fn cursor_seq(chats: &Chats, q: &HashMap<String, String>, name: &str, chat: ChatId) -> ApiResult<Option<i64>> {
    let Some(id) = id_param::<MessageId>(q, name)? else {
        return Ok(None);
    };
    match chats.cursor_seq(chat, id).await? {
        Some(seq) => Ok(Some(seq)),
        None => Err(ApiError::field(name, "No message with this id in this chat.")),
    }
}

async fn message_list(
    State(chats): State<Chats>,
    user: CurrentUser,
    Query(q): Params,
    link: PageLink,
) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&q)?;
    let Some(chat) = id_param::<ChatId>(&q, "refChat")? else {
        return Err(ApiError::field("refChat", "This field is required."));
    };
    chats.chat_for_member(chat, user.id()).await?;
    let kind = match q.get("type").map(|t| t.trim()).filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            t.parse::<i32>()
                .map_err(|_| ApiError::field("type", "Enter a whole number."))?,
        ),
    };
    let filter = HistoryFilter {
        id: id_param(&q, "id")?,
        kind,
        is_read: bool_param(&q, "isRead")?,
        before_seq: cursor_seq(&chats, &q, "before", chat).await?,
        after_seq: cursor_seq(&chats, &q, "after", chat).await?,
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
    let results: Vec<MessageView> = history.messages.iter().map(MessageView::rest).collect();
    Ok(Json(page.render(history.total, results, &link)?))
}

async fn message_create(State(chats): State<Chats>, user: CurrentUser, Body(body): Body) -> ApiResult<Response> {
    let mut f = Fields::new(&body);
    let chat = f.required_uuid("refChat");
    if !f.present("message") {
        f.error("message", "This field is required.");
    }
    let draft = Draft::read(&mut f, chats.max_extra_bytes());
    f.finish()?;
    let chat = ChatId(chat.expect("checked by finish()"));
    // `author` in the body is ignored: the author is always the caller.
    // A retry with the same clientId answers exactly as the first time did.
    let stored = chats.post(user.id(), chat, draft).await?;
    Ok((StatusCode::CREATED, Json(MessageView::rest(&stored.row))).into_response())
}

async fn message_detail(
    State(chats): State<Chats>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageView>> {
    let message = chats.message_for_member(id_path(&id)?, user.id()).await?;
    Ok(Json(MessageView::rest(&message)))
}

async fn message_update(
    State(chats): State<Chats>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Json<MessageView>> {
    let id: MessageId = id_path(&id)?;
    let mut f = Fields::new(&body);
    let text = f.optional_raw_str("message", MESSAGE_MAX_CHARS);
    let is_read = f.optional_bool("isRead");
    f.finish()?;
    let message = if text.is_none() && is_read.is_none() {
        chats.message_for_member(id, user.id()).await?
    } else {
        chats
            .change_message(user.id(), id, MessageChange { text, is_read })
            .await?
    };
    Ok(Json(MessageView::rest(&message)))
}

async fn message_delete(
    State(chats): State<Chats>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    chats.delete_message(user.id(), id_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The app's bulk "mark read": `{"status":"OK"}`, or `{"status":"KO"}` for input it cannot use.
async fn update_messages_status(
    State(chats): State<Chats>,
    user: CurrentUser,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    match body.get("messageIds").and_then(|ids| id_list::<MessageId>(ids, 1000)) {
        Some(ids) => {
            chats.mark_read(user.id(), &ids).await?;
            Ok(Json(json!({ "status": "OK" })))
        }
        None => Ok(Json(json!({ "status": "KO" }))),
    }
}

// ---- groups -----------------------------------------------------------------------------

async fn group_create(State(chats): State<Chats>, user: CurrentUser, Body(body): Body) -> ApiResult<Response> {
    let mut f = Fields::new(&body);
    let title = f.required_str("title", TITLE_MAX);
    f.finish()?;
    let members: Vec<UserId> = match body.get("members") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => {
            id_list(value, MEMBERS_MAX).ok_or_else(|| ApiError::field("members", "Enter a list of valid UUIDs."))?
        }
    };
    let chat = chats
        .create_group(user.id(), &title.unwrap_or_default(), &members)
        .await?;
    let body = chats.chat_view(chat.id, user.id()).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn group_rename(
    State(chats): State<Chats>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Json<ChatView>> {
    let chat = id_path(&id)?;
    let mut f = Fields::new(&body);
    let title = f.required_str("title", TITLE_MAX);
    f.finish()?;
    chats.rename_group(user.id(), chat, &title.unwrap_or_default()).await?;
    Ok(Json(chats.chat_view(chat, user.id()).await?))
}

async fn group_add_member(
    State(chats): State<Chats>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let chat = id_path(&id)?;
    let mut f = Fields::new(&body);
    let member = f.required_uuid("user");
    let as_admin = f.optional_bool("isAdmin").unwrap_or(false);
    f.finish()?;
    let member = UserId(member.expect("checked by finish()"));
    let added = chats.add_member(user.id(), chat, member, as_admin).await?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(chats.chat_view(chat, user.id()).await?)).into_response())
}

async fn group_remove_member(
    State(chats): State<Chats>,
    user: CurrentUser,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    chats.remove_member(user.id(), id_path(&id)?, id_path(&member)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
