//! Chats: the list (search by a member's email or name), creating a two-person chat or a
//! group, and a chat's page with its members and messages (newest first).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::error::{AdminError, AdminResult};
use super::html::{self, render, FormErrors, Layout, Pager};
use super::messages::MessageView;
use super::service::{Admin, Staff};
use super::session::Posted;
use crate::chats::StaffMember;
use crate::ids::{ChatId, UserId};
use crate::limits::RateLimits;
use crate::store::chats::ChatRow;
use crate::store::users::UserRow;
use crate::validation::FieldErrors;

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Admin: FromRef<S>,
    RateLimits: FromRef<S>,
{
    Router::new()
        .route("/admin/chats/", get(list))
        .route("/admin/chats/new/", get(new_forms))
        .route("/admin/chats/new/pair/", post(create_pair))
        .route("/admin/chats/new/group/", post(create_group))
        .route("/admin/chats/{id}/", get(detail))
}

/// A member as the pages show them.
struct MemberView {
    id: String,
    email: String,
    name: String,
    is_admin: bool,
    is_active: bool,
}

impl MemberView {
    fn of(member: &StaffMember) -> MemberView {
        MemberView {
            id: member.user.id.to_string(),
            email: member.user.email.clone(),
            name: full_name(&member.user),
            is_admin: member.is_admin,
            is_active: member.user.is_active,
        }
    }
}

fn full_name(user: &UserRow) -> String {
    format!("{} {}", user.first_name, user.last_name).trim().to_string()
}

/// What a chat is called: a group by its title.
fn kind(chat: &ChatRow) -> String {
    match (&chat.title, chat.is_group) {
        (Some(title), true) => format!("Group “{title}”"),
        (None, true) => "Group".into(),
        _ => "Two-person chat".into(),
    }
}

struct ChatLine {
    id: String,
    kind: String,
    members: Vec<MemberView>,
    message_count: i64,
    last_message_at: String,
}

#[derive(Template)]
#[template(path = "chats.html")]
struct ListPage {
    layout: Layout,
    q: String,
    chats: Vec<ChatLine>,
    pager: Pager,
    error: Option<String>,
}

async fn list(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult<Response> {
    let q = html::param(&query, "q");
    let terms: Vec<String> = q.split_whitespace().map(str::to_string).collect();
    let page = html::page_number(query.get("page"));
    let layout = Layout::new(&staff, "chats", "Chats").notice(query.get("notice").map(String::as_str));
    let (overview, error) = match admin
        .chats()
        .overview(&terms, html::PAGE_SIZE, html::offset(page))
        .await
    {
        Ok(overview) => (Some(overview), None),
        Err(err) => match AdminError::from(err) {
            AdminError::Invalid(fields) => (None, fields.into_values().flatten().next()),
            other => return Err(other),
        },
    };
    let total = overview.as_ref().map_or(0, |o| o.total);
    let chats = overview
        .map(|o| {
            o.chats
                .iter()
                .map(|c| ChatLine {
                    id: c.chat.id.to_string(),
                    kind: kind(&c.chat),
                    members: c.members.iter().map(MemberView::of).collect(),
                    message_count: c.message_count,
                    last_message_at: html::when_opt(c.last_message_at),
                })
                .collect()
        })
        .unwrap_or_default();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        &ListPage {
            layout,
            pager: Pager::new("/admin/chats/", &[("q", &q)], page, total),
            q,
            chats,
            error,
        },
    ))
}

#[derive(Deserialize, Default)]
struct PairForm {
    #[serde(default)]
    first: String,
    #[serde(default)]
    second: String,
}

#[derive(Deserialize, Default)]
struct GroupForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    owner: String,
    /// Emails or ids, separated by commas, spaces or new lines.
    #[serde(default)]
    members: String,
}

#[derive(Template)]
#[template(path = "chat_new.html")]
struct NewPage {
    layout: Layout,
    pair: PairForm,
    pair_errors: FormErrors,
    group: GroupForm,
    group_errors: FormErrors,
}

fn new_page(staff: &Staff) -> NewPage {
    NewPage {
        layout: Layout::new(staff, "chats", "New chat"),
        pair: PairForm::default(),
        pair_errors: FormErrors::default(),
        group: GroupForm::default(),
        group_errors: FormErrors::default(),
    }
}

async fn new_forms(staff: Staff, Query(query): Query<HashMap<String, String>>) -> Response {
    let mut page = new_page(&staff);
    // Links from a user's page fill in the first person.
    page.pair.first = query.get("first").cloned().unwrap_or_default();
    render(StatusCode::OK, &page)
}

async fn create_pair(State(admin): State<Admin>, Posted { staff, form }: Posted<PairForm>) -> AdminResult<Response> {
    match admin.open_pair(&staff, &form.first, &form.second).await {
        Ok((chat, created)) => {
            let notice = if created { "chat_created" } else { "chat_existing" };
            Ok(Redirect::to(&format!("/admin/chats/{}/?notice={notice}", chat.id)).into_response())
        }
        Err(AdminError::Invalid(errors)) => {
            let mut page = new_page(&staff);
            page.pair = form;
            page.pair_errors = FormErrors::from_fields(field_names(errors, &["first", "second"], "second"));
            Ok(render(StatusCode::BAD_REQUEST, &page))
        }
        Err(other) => Err(other),
    }
}

async fn create_group(State(admin): State<Admin>, Posted { staff, form }: Posted<GroupForm>) -> AdminResult<Response> {
    let members: Vec<String> = form
        .members
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    match admin.create_group(&staff, &form.title, &form.owner, &members).await {
        Ok(chat) => Ok(Redirect::to(&format!("/admin/chats/{}/?notice=group_created", chat.id)).into_response()),
        Err(AdminError::Invalid(errors)) => {
            let mut page = new_page(&staff);
            page.group = form;
            page.group_errors = FormErrors::from_fields(field_names(errors, &["title", "owner", "members"], "members"));
            Ok(render(StatusCode::BAD_REQUEST, &page))
        }
        Err(other) => Err(other),
    }
}

/// The chat rules name API fields (`chatWithUser`, `members`); on a form, errors about fields it
/// does not have go to `fallback`.
fn field_names(errors: FieldErrors, known: &[&str], fallback: &str) -> FieldErrors {
    let mut out = FieldErrors::new();
    for (field, messages) in errors {
        let field = if known.contains(&field.as_str()) {
            field
        } else {
            fallback.to_string()
        };
        out.entry(field).or_default().extend(messages);
    }
    out
}

#[derive(Template)]
#[template(path = "chat.html")]
struct DetailPage {
    layout: Layout,
    id: String,
    kind: String,
    created: String,
    updated: String,
    last_seq: i64,
    members: Vec<MemberView>,
    messages: Vec<MessageView>,
    pager: Pager,
    /// Where a message's delete form brings the browser back to.
    here: String,
}

async fn detail(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult<Response> {
    let chat_id: ChatId = id.parse().map_err(|_| AdminError::NotFound)?;
    let (chat, members) = admin.chats().chat_with_members(chat_id).await?;
    let page = html::page_number(query.get("page"));
    let messages = admin
        .chats()
        .chat_messages(chat_id, html::PAGE_SIZE, html::offset(page))
        .await?;
    let authors: Vec<UserId> = messages.messages.iter().filter_map(|m| m.author).collect();
    let views = MessageView::many(&admin, &messages.messages, &authors).await?;
    let path = format!("/admin/chats/{chat_id}/");
    let here = if page > 1 {
        format!("{path}?page={page}")
    } else {
        path.clone()
    };
    Ok(render(
        StatusCode::OK,
        &DetailPage {
            layout: Layout::new(&staff, "chats", kind(&chat)).notice(query.get("notice").map(String::as_str)),
            id: chat.id.to_string(),
            kind: kind(&chat),
            created: html::when(chat.created_at),
            updated: html::when(chat.updated_at),
            last_seq: chat.last_seq,
            members: members.iter().map(MemberView::of).collect(),
            messages: views,
            pager: Pager::new(&path, &[], page, messages.total),
            here,
        },
    ))
}
