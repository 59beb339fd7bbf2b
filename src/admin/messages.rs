//! Messages: search across chats (text, author, chat, dates) and staff deletes, which reach the
//! chat's connected members as `message_deleted`, exactly as the author's delete does.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{NaiveDate, TimeZone, Utc};
use serde::Deserialize;

use super::error::{AdminError, AdminResult};
use super::html::{self, render, Layout, Pager};
use super::service::{Admin, Staff};
use super::session::{safe_next, Posted};
use crate::ids::{ChatId, MessageId, UserId};
use crate::limits::RateLimits;
use crate::store::messages::{MessageRow, MessageSearch};
use crate::store::users::UserRow;

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Admin: FromRef<S>,
    RateLimits: FromRef<S>,
{
    Router::new()
        .route("/admin/messages/", get(search))
        .route("/admin/messages/{id}/delete/", post(delete))
}

/// A message as the pages show it.
pub(crate) struct MessageView {
    pub id: String,
    pub chat: String,
    /// The chat id's last characters (its random part: the first ones are a timestamp), enough
    /// to tell chats apart in a list.
    pub chat_short: String,
    pub seq: i64,
    pub author_id: String,
    pub author: String,
    pub text: String,
    pub kind: &'static str,
    pub extra: String,
    pub at: String,
}

impl MessageView {
    fn of(message: &MessageRow, authors: &HashMap<UserId, UserRow>) -> MessageView {
        let author = message.author.and_then(|a| authors.get(&a));
        MessageView {
            id: message.id.to_string(),
            chat: message.chat_id.to_string(),
            chat_short: {
                let id = message.chat_id.to_string();
                id[id.len() - 8..].to_string()
            },
            seq: message.seq,
            author_id: message.author.map(|a| a.to_string()).unwrap_or_default(),
            author: author
                .map(|u| u.email.clone())
                .unwrap_or_else(|| "(deleted user)".into()),
            text: message.body.clone(),
            kind: match message.kind {
                0 => "text",
                1 => "location",
                2 => "photo",
                _ => "other",
            },
            // Photos are data URLs of any size: the list shows how big, not the bytes.
            extra: match (&message.extra_data, message.kind) {
                (Some(extra), 2) if !extra.is_empty() => format!("{} bytes", extra.len()),
                (Some(extra), _) => extra.chars().take(120).collect(),
                (None, _) => String::new(),
            },
            at: html::when(message.created_at),
        }
    }

    /// Views of these messages, their authors read in one go.
    pub(crate) async fn many(
        admin: &Admin,
        messages: &[MessageRow],
        authors: &[UserId],
    ) -> AdminResult<Vec<MessageView>> {
        let authors = admin.accounts().users_by_id(authors).await?;
        Ok(messages.iter().map(|m| MessageView::of(m, &authors)).collect())
    }
}

#[derive(Template)]
#[template(path = "messages.html")]
struct SearchPage {
    layout: Layout,
    q: String,
    author: String,
    chat: String,
    from: String,
    to: String,
    /// Whether any criterion was given (without one, the newest messages are listed).
    searched: bool,
    errors: Vec<String>,
    messages: Vec<MessageView>,
    pager: Pager,
    here: String,
}

fn day(raw: &str, field: &str, errors: &mut Vec<String>) -> Option<NaiveDate> {
    if raw.is_empty() {
        return None;
    }
    let parsed = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok();
    if parsed.is_none() {
        errors.push(format!("{field}: enter a date as YYYY-MM-DD."));
    }
    parsed
}

async fn search(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult<Response> {
    let get = |key| html::param(&query, key);
    let (q, author, chat, from, to) = (get("q"), get("author"), get("chat"), get("from"), get("to"));
    let mut errors = Vec::new();
    let mut criteria = MessageSearch {
        text: (!q.is_empty()).then(|| q.clone()),
        ..MessageSearch::default()
    };
    if !author.is_empty() {
        match admin.find_user(&author).await? {
            Some(user) => criteria.author = Some(user.id),
            None => errors.push(format!("author: no user with the email or id “{author}”.")),
        }
    }
    if !chat.is_empty() {
        match chat.parse::<ChatId>() {
            Ok(id) => criteria.chat = Some(id),
            Err(_) => errors.push("chat: enter a chat id (a uuid).".into()),
        }
    }
    // Dates are whole UTC days; "to" includes its day.
    criteria.since = day(&from, "from", &mut errors)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t));
    criteria.before = day(&to, "to", &mut errors)
        .and_then(|d| d.succ_opt())
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t));
    let page = html::page_number(query.get("page"));
    let (total, messages) = if errors.is_empty() {
        let found = admin
            .chats()
            .search_messages(&criteria, html::PAGE_SIZE, html::offset(page))
            .await?;
        let authors: Vec<UserId> = found.messages.iter().filter_map(|m| m.author).collect();
        (found.total, MessageView::many(&admin, &found.messages, &authors).await?)
    } else {
        (0, Vec::new())
    };
    let filters = [
        ("q", q.as_str()),
        ("author", author.as_str()),
        ("chat", chat.as_str()),
        ("from", from.as_str()),
        ("to", to.as_str()),
    ];
    let pager = Pager::new("/admin/messages/", &filters, page, total);
    let here = {
        let mut pairs: Vec<(&str, &str)> = filters.iter().copied().filter(|(_, v)| !v.is_empty()).collect();
        let page_text = page.to_string();
        if page > 1 {
            pairs.push(("page", &page_text));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            "/admin/messages/".to_string()
        } else {
            format!("/admin/messages/?{query}")
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(render(
        status,
        &SearchPage {
            layout: Layout::new(&staff, "messages", "Messages").notice(query.get("notice").map(String::as_str)),
            searched: filters.iter().any(|(_, v)| !v.is_empty()),
            q,
            author,
            chat,
            from,
            to,
            errors,
            messages,
            pager,
            here,
        },
    ))
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    next: Option<String>,
}

async fn delete(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Posted { staff, form }: Posted<DeleteForm>,
) -> AdminResult<Response> {
    let id: MessageId = id.parse().map_err(|_| AdminError::NotFound)?;
    admin.delete_message(&staff, id).await?;
    let back = safe_next(form.next.as_deref());
    let separator = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{separator}notice=message_deleted")).into_response())
}
