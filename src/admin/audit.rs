//! The audit log: every admin action, newest first, filterable by actor and object.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::error::AdminResult;
use super::html::{self, render, Layout, Pager};
use super::service::{Admin, Staff};
use crate::limits::RateLimits;
use crate::store::admin::AuditFilter;

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Admin: FromRef<S>,
    RateLimits: FromRef<S>,
{
    Router::new().route("/admin/audit/", get(list))
}

struct EntryView {
    at: String,
    actor: String,
    actor_id: String,
    action: String,
    object_kind: String,
    object_id: String,
    /// The object's page, when it has one.
    object_href: Option<String>,
    summary: String,
    address: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    actor: String,
    object: String,
    entries: Vec<EntryView>,
    pager: Pager,
}

async fn list(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult<Response> {
    let get = |key| html::param(&query, key);
    let (actor, object) = (get("actor"), get("object"));
    let filter = AuditFilter {
        actor: (!actor.is_empty()).then(|| actor.clone()),
        object_id: (!object.is_empty()).then(|| object.to_lowercase()),
    };
    let page = html::page_number(query.get("page"));
    let found = admin.audit(&filter, html::PAGE_SIZE, html::offset(page)).await?;
    let entries = found
        .entries
        .into_iter()
        .map(|e| EntryView {
            at: html::when(e.at),
            actor: e.actor_email,
            actor_id: e.actor_id.map(|a| a.to_string()).unwrap_or_default(),
            object_href: match e.object_kind.as_str() {
                "user" => Some(format!("/admin/users/{}/", e.object_id)),
                "chat" => Some(format!("/admin/chats/{}/", e.object_id)),
                "attachment" => Some(format!("/admin/attachments/{}/", e.object_id)),
                _ => None,
            },
            action: e.action,
            object_kind: e.object_kind,
            object_id: e.object_id,
            summary: e.summary,
            address: e.address,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &AuditPage {
            layout: Layout::new(&staff, "audit", "Audit log"),
            pager: Pager::new(
                "/admin/audit/",
                &[("actor", &actor), ("object", &object)],
                page,
                found.total,
            ),
            actor,
            object,
            entries,
        },
    ))
}
