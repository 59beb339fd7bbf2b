//! The finished app's REST API under `/api/` (contract section 4).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

use super::groups;
use super::service::{self, Draft, MessageChange};
use super::view::MessageView;
use crate::accounts::service::NAME_MAX;
use crate::accounts::view;
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::http::{Body, Fields, PageLink, PageRequest};
use crate::store::chats::{self, ChatRow};
use crate::store::messages::{self, HistoryFilter};
use crate::store::users::{self, ProfileChange};

pub fn router() -> Router<AppState> {
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

fn uuid_path(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// A query filter that must be a uuid when given.
fn uuid_param(params: &HashMap<String, String>, name: &str) -> ApiResult<Option<Uuid>> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => Uuid::parse_str(v)
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

// ---- users ------------------------------------------------------------------------------

async fn user_list(user: CurrentUser, Query(q): Params, link: PageLink) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&q)?;
    let me = &user.0;
    let text_matches = |name: &str, value: &str| q.get(name).is_none_or(|want| want.trim().eq_ignore_ascii_case(value));
    let id_matches = uuid_param(&q, "id")?.is_none_or(|id| id == me.id);
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
    if uuid_path(&id)? != user.id() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(view::profile(&user.0)))
}

async fn user_update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    if uuid_path(&id)? != user.id() {
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
        users::update_profile(&state.db, user.id(), &change)
            .await?
            .ok_or(ApiError::NotFound)?
    };
    Ok(Json(view::profile(&updated)))
}

async fn search_users(
    State(state): State<AppState>,
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
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let terms: Vec<String> = terms
        .into_iter()
        .take(10)
        .map(|t| t.chars().take(NAME_MAX).collect())
        .collect();
    // Only `?page=last` needs the count before the page.
    let page = if page.is_last() {
        page.resolve(users::search(&state.db, user.id(), &terms, 0, 0).await?.0)
    } else {
        page
    };
    let (total, rows) = users::search(&state.db, user.id(), &terms, page.limit(), page.offset()).await?;
    let results: Vec<Value> = rows.iter().map(view::brief).collect();
    Ok(Json(page.render(total, results, &link)?))
}

// ---- chats ------------------------------------------------------------------------------

/// A chat as the app shows it, from `viewer`'s side: both users, the last message, unread count.
pub async fn chat_json(state: &AppState, chat: &ChatRow, viewer: Uuid) -> ApiResult<Value> {
    let brief_of = |id: Option<Uuid>| async move {
        match id {
            Some(id) => users::by_id(&state.db, id)
                .await
                .map(|u| u.map(|u| view::brief(&u)).unwrap_or(Value::Null)),
            None => Ok(Value::Null),
        }
    };
    let from_user = brief_of(chat.from_user).await?;
    let to_user = brief_of(chat.to_user).await?;
    let last: Vec<MessageView> = messages::last_in_chat(&state.db, chat.id)
        .await?
        .iter()
        .map(MessageView::rest)
        .collect();
    let unread = messages::unread_count(&state.db, chat.id, viewer).await?;
    let mut value = json!({
        "id": chat.id,
        "fromUser": from_user,
        "toUser": to_user,
        "lastMessage": last,
        "unreadCount": unread,
        "isGroup": chat.is_group,
        "title": chat.title,
        "createdAt": view::iso(chat.created_at),
        "updatedAt": view::iso(chat.updated_at),
    });
    if chat.is_group {
        let members = chats::members(&state.db, chat.id).await?;
        let ids: Vec<Uuid> = members.iter().map(|m| m.user_id).collect();
        let rows = users::many_by_id(&state.db, &ids).await?;
        let list: Vec<Value> = members
            .iter()
            .filter_map(|m| {
                rows.iter().find(|u| u.id == m.user_id).map(|u| {
                    let mut brief = view::brief(u);
                    brief["isAdmin"] = json!(m.is_admin);
                    brief
                })
            })
            .collect();
        value["members"] = json!(list);
    }
    Ok(value)
}

async fn chat_list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Params,
    link: PageLink,
) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&q)?;
    let only = uuid_param(&q, "id")?;
    // Only `?page=last` needs the count before the page.
    let page = if page.is_last() {
        page.resolve(chats::list_for_user(&state.db, user.id(), only, 0, 0).await?.0)
    } else {
        page
    };
    let (total, rows) = chats::list_for_user(&state.db, user.id(), only, page.limit(), page.offset()).await?;
    let mut results = Vec::with_capacity(rows.len());
    for chat in &rows {
        results.push(chat_json(&state, chat, user.id()).await?);
    }
    Ok(Json(page.render(total, results, &link)?))
}

async fn chat_detail(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let chat = service::chat_for_member(&state, uuid_path(&id)?, user.id()).await?;
    Ok(Json(chat_json(&state, &chat, user.id()).await?))
}

async fn chat_delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    service::delete_chat(&state, user.id(), uuid_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_chat(State(state): State<AppState>, user: CurrentUser, Body(body): Body) -> ApiResult<Response> {
    let mut f = Fields::new(&body);
    let ref_user = f.required_uuid("refUser");
    let with_user = f.required_uuid("chatWithUser");
    f.finish()?;
    let (Some(ref_user), Some(with_user)) = (ref_user, with_user) else {
        unreachable!("checked by finish()")
    };
    if ref_user != user.id() {
        return Err(ApiError::PermissionDenied);
    }
    let (chat, _created) = service::open_pair(&state, user.id(), with_user).await?;
    let body = chat_json(&state, &chat, user.id()).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

// ---- messages ---------------------------------------------------------------------------

/// The sequence of a cursor message, which must belong to the listed chat.
async fn cursor_seq(state: &AppState, q: &HashMap<String, String>, name: &str, chat: Uuid) -> ApiResult<Option<i64>> {
    let Some(id) = uuid_param(q, name)? else {
        return Ok(None);
    };
    match messages::by_id(&state.db, id).await? {
        Some(m) if m.chat_id == chat => Ok(Some(m.seq)),
        _ => Err(ApiError::field(name, "No message with this id in this chat.")),
    }
}

async fn message_list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Params,
    link: PageLink,
) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&q)?;
    let Some(chat) = uuid_param(&q, "refChat")? else {
        return Err(ApiError::field("refChat", "This field is required."));
    };
    service::chat_for_member(&state, chat, user.id()).await?;
    let kind = match q.get("type").map(|t| t.trim()).filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            t.parse::<i32>()
                .map_err(|_| ApiError::field("type", "Enter a whole number."))?,
        ),
    };
    let filter = HistoryFilter {
        id: uuid_param(&q, "id")?,
        kind,
        is_read: bool_param(&q, "isRead")?,
        before_seq: cursor_seq(&state, &q, "before", chat).await?,
        after_seq: cursor_seq(&state, &q, "after", chat).await?,
    };
    // Only `?page=last` needs the count before the page.
    let page = if page.is_last() {
        page.resolve(messages::history(&state.db, chat, &filter, 0, 0).await?.0)
    } else {
        page
    };
    let (total, rows) = messages::history(&state.db, chat, &filter, page.limit(), page.offset()).await?;
    let results: Vec<MessageView> = rows.iter().map(MessageView::rest).collect();
    Ok(Json(page.render(total, results, &link)?))
}

/// Reads a message draft from a body (REST and v1 frames share the field names).
pub fn read_draft(f: &mut Fields<'_>, max_extra: usize) -> Draft {
    // The length is checked by `service::check_draft`, whose refusal carries the stable code
    // `message_too_long` that socket clients get (a cap here would turn it into `invalid_frame`).
    let text = f.optional_raw_str("message", usize::MAX).unwrap_or_default();
    let kind = f.optional_int("type").unwrap_or(0);
    // Absent means "" as in the seed; an explicit null stays null.
    let extra_data = match f.optional_nullable_str("extraData", max_extra) {
        None => Some(String::new()),
        Some(value) => value,
    };
    let client_id = f.optional_str("clientId", service::CLIENT_ID_MAX);
    Draft {
        text,
        kind: kind.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        extra_data,
        client_id,
    }
}

async fn message_create(State(state): State<AppState>, user: CurrentUser, Body(body): Body) -> ApiResult<Response> {
    let mut f = Fields::new(&body);
    let chat = f.required_uuid("refChat");
    if !f.present("message") {
        f.error("message", "This field is required.");
    }
    let draft = read_draft(&mut f, state.config.max_body_bytes);
    f.finish()?;
    let chat = chat.expect("checked by finish()");
    // `author` in the body is ignored: the author is always the caller.
    // A retry with the same clientId answers exactly as the first time did.
    let stored = service::post(&state, user.id(), chat, draft).await?;
    Ok((StatusCode::CREATED, Json(MessageView::rest(&stored.row))).into_response())
}

async fn message_detail(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageView>> {
    let message = service::message_for_member(&state, uuid_path(&id)?, user.id()).await?;
    Ok(Json(MessageView::rest(&message)))
}

async fn message_update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Json<MessageView>> {
    let id = uuid_path(&id)?;
    let mut f = Fields::new(&body);
    let text = f.optional_raw_str("message", service::MESSAGE_MAX_CHARS);
    let is_read = f.optional_bool("isRead");
    f.finish()?;
    let message = if text.is_none() && is_read.is_none() {
        service::message_for_member(&state, id, user.id()).await?
    } else {
        service::change_message(&state, user.id(), id, MessageChange { text, is_read }).await?
    };
    Ok(Json(MessageView::rest(&message)))
}

async fn message_delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    service::delete_message(&state, user.id(), uuid_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The app's bulk "mark read": `{"status":"OK"}`, or `{"status":"KO"}` for input it cannot use.
async fn update_messages_status(
    State(state): State<AppState>,
    user: CurrentUser,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let ids: Option<Vec<Uuid>> = body
        .get("messageIds")
        .and_then(Value::as_array)
        .filter(|ids| ids.len() <= 1000)
        .and_then(|ids| {
            ids.iter()
                .map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                .collect()
        });
    match ids {
        Some(ids) => {
            service::mark_read(&state, user.id(), &ids).await?;
            Ok(Json(json!({ "status": "OK" })))
        }
        None => Ok(Json(json!({ "status": "KO" }))),
    }
}

// ---- groups -----------------------------------------------------------------------------

async fn group_create(State(state): State<AppState>, user: CurrentUser, Body(body): Body) -> ApiResult<Response> {
    let mut f = Fields::new(&body);
    let title = f.required_str("title", groups::TITLE_MAX);
    f.finish()?;
    let members: Vec<Uuid> = match body.get("members") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= groups::MEMBERS_MAX => items
            .iter()
            .map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
            .collect::<Option<Vec<Uuid>>>()
            .ok_or_else(|| ApiError::field("members", "Enter a list of valid UUIDs."))?,
        Some(_) => return Err(ApiError::field("members", "Enter a list of valid UUIDs.")),
    };
    let chat = groups::create(&state, user.id(), &title.unwrap_or_default(), &members).await?;
    Ok((StatusCode::CREATED, Json(chat_json(&state, &chat, user.id()).await?)).into_response())
}

async fn group_rename(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let chat = uuid_path(&id)?;
    let mut f = Fields::new(&body);
    let title = f.required_str("title", groups::TITLE_MAX);
    f.finish()?;
    groups::rename(&state, user.id(), chat, &title.unwrap_or_default()).await?;
    let row = service::chat_for_member(&state, chat, user.id()).await?;
    Ok(Json(chat_json(&state, &row, user.id()).await?))
}

async fn group_add_member(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let chat = uuid_path(&id)?;
    let mut f = Fields::new(&body);
    let member = f.required_uuid("user");
    let as_admin = f.optional_bool("isAdmin").unwrap_or(false);
    f.finish()?;
    let added = groups::add_member(&state, user.id(), chat, member.expect("checked by finish()"), as_admin).await?;
    let row = service::chat_for_member(&state, chat, user.id()).await?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(chat_json(&state, &row, user.id()).await?)).into_response())
}

async fn group_remove_member(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    groups::remove_member(&state, user.id(), uuid_path(&id)?, uuid_path(&member)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
