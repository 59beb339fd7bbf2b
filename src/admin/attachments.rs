//! Attachments: every upload (by uploader, chat, type, attached or not), one upload's page with
//! its thumbnail, its file through the admin (staff may read any; each download is audited),
//! and delete, which takes the file out of the messages that carried it.

use std::collections::HashMap;

use askama::Template;
use axum::body::Body;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::error::{AdminError, AdminResult};
use super::html::{self, render, Layout, Pager};
use super::service::{Admin, Staff};
use super::session::{Confirm, Posted};
use crate::chats::attachment_routes::disposition_as;
use crate::ids::{AttachmentId, ChatId, UserId};
use crate::limits::RateLimits;
use crate::media::{Media, Variant};
use crate::store::attachments::{AttachmentFilter, AttachmentRow};
use crate::store::users::UserRow;

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Admin: FromRef<S>,
    RateLimits: FromRef<S>,
{
    Router::new()
        .route("/admin/attachments/", get(list))
        .route("/admin/attachments/{id}/", get(detail))
        .route("/admin/attachments/{id}/file/", get(file))
        .route("/admin/attachments/{id}/thumbnail/", get(thumbnail))
        .route("/admin/attachments/{id}/delete/", post(delete))
}

/// An attachment as the pages show it.
struct AttachmentView {
    id: String,
    name: String,
    owner_id: String,
    owner: String,
    chat: String,
    content_type: String,
    size: String,
    pixels: String,
    has_thumbnail: bool,
    created: String,
    attached: String,
}

impl AttachmentView {
    fn of(row: &AttachmentRow, owners: &HashMap<UserId, UserRow>) -> AttachmentView {
        AttachmentView {
            id: row.id.to_string(),
            name: row.name.clone(),
            owner_id: row.owner.map(|o| o.to_string()).unwrap_or_default(),
            owner: row
                .owner
                .and_then(|o| owners.get(&o))
                .map(|u| u.email.clone())
                .unwrap_or_else(|| "(deleted user)".into()),
            chat: row.chat_id.map(|c| c.to_string()).unwrap_or_default(),
            content_type: row.content_type.clone(),
            size: html::bytes(row.size),
            pixels: match (row.width, row.height) {
                (Some(w), Some(h)) => format!("{w} × {h}"),
                _ => String::new(),
            },
            has_thumbnail: row.thumb_size.is_some(),
            created: html::when(row.created_at),
            attached: row.attached_at.map(html::when).unwrap_or_default(),
        }
    }

    async fn many(admin: &Admin, rows: &[AttachmentRow]) -> AdminResult<Vec<AttachmentView>> {
        let ids: Vec<UserId> = rows.iter().filter_map(|r| r.owner).collect();
        let owners = admin.accounts().users_by_id(&ids).await?;
        Ok(rows.iter().map(|r| AttachmentView::of(r, &owners)).collect())
    }
}

fn attachment_id(raw: &str) -> AdminResult<AttachmentId> {
    raw.parse().map_err(|_| AdminError::NotFound)
}

#[derive(Template)]
#[template(path = "attachments.html")]
struct ListPage {
    layout: Layout,
    q: String,
    chat: String,
    attached: String,
    kind: String,
    errors: Vec<String>,
    attachments: Vec<AttachmentView>,
    pager: Pager,
}

async fn list(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult<Response> {
    let get = |key| html::param(&query, key);
    let (q, chat, attached, kind) = (get("q"), get("chat"), get("attached"), get("type"));
    let mut errors = Vec::new();
    let mut filter = AttachmentFilter {
        attached: html::yes_no(query.get("attached")),
        type_prefix: (!kind.is_empty()).then(|| kind.clone()),
        ..AttachmentFilter::default()
    };
    if !chat.is_empty() {
        match chat.parse::<ChatId>() {
            Ok(id) => filter.chat = Some(id),
            Err(_) => errors.push("chat: enter a chat id (a uuid).".into()),
        }
    }
    filter.owners = admin.users_matching(&q, &mut errors).await?;
    let page = html::page_number(query.get("page"));
    let (total, attachments) = if errors.is_empty() {
        let (total, rows) = admin.media().find(&filter, html::PAGE_SIZE, html::offset(page)).await?;
        (total, AttachmentView::many(&admin, &rows).await?)
    } else {
        (0, Vec::new())
    };
    let pager = Pager::new(
        "/admin/attachments/",
        &[("q", &q), ("chat", &chat), ("attached", &attached), ("type", &kind)],
        page,
        total,
    );
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(render(
        status,
        &ListPage {
            layout: Layout::new(&staff, "attachments", "Attachments").notice(query.get("notice").map(String::as_str)),
            q,
            chat,
            attached,
            kind,
            errors,
            attachments,
            pager,
        },
    ))
}

#[derive(Template)]
#[template(path = "attachment.html")]
struct DetailPage {
    layout: Layout,
    a: AttachmentView,
}

async fn detail(State(admin): State<Admin>, staff: Staff, Path(id): Path<String>) -> AdminResult<Response> {
    let row = admin.media().get(attachment_id(&id)?).await?;
    let a = AttachmentView::many(&admin, std::slice::from_ref(&row))
        .await?
        .pop()
        .ok_or(AdminError::NotFound)?;
    Ok(render(
        StatusCode::OK,
        &DetailPage {
            layout: Layout::new(&staff, "attachments", row.name.clone()),
            a,
        },
    ))
}

/// A file's bytes for staff. The original is always a download and sandboxed, so a file
/// someone uploaded never runs as a page of the admin site.
async fn send(admin: &Admin, row: &AttachmentRow, variant: Variant) -> AdminResult<Response> {
    let (_, content_type) = Media::file_of(row, variant)?;
    let content_type = content_type.to_string();
    let opened = admin.media().open(row, variant, None).await?;
    let name = match variant {
        Variant::Original => row.name.clone(),
        Variant::Thumbnail => format!("thumbnail-{}", row.name),
    };
    let kind = match variant {
        Variant::Original => "attachment",
        Variant::Thumbnail => "inline",
    };
    let value = |text: &str| HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""));
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, value(&content_type));
    headers.insert(CONTENT_LENGTH, value(&opened.total.to_string()));
    headers.insert(CONTENT_DISPOSITION, value(&disposition_as(kind, &name)));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok((StatusCode::OK, headers, Body::from_stream(opened.body)).into_response())
}

async fn file(State(admin): State<Admin>, staff: Staff, Path(id): Path<String>) -> AdminResult<Response> {
    let row = admin.open_attachment(&staff, attachment_id(&id)?).await?;
    send(&admin, &row, Variant::Original).await
}

async fn thumbnail(State(admin): State<Admin>, _staff: Staff, Path(id): Path<String>) -> AdminResult<Response> {
    let row = admin.media().get(attachment_id(&id)?).await?;
    send(&admin, &row, Variant::Thumbnail).await
}

async fn delete(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Posted { staff, .. }: Posted<Confirm>,
) -> AdminResult<Response> {
    admin.delete_attachment(&staff, attachment_id(&id)?).await?;
    Ok(Redirect::to("/admin/attachments/?notice=attachment_deleted").into_response())
}
