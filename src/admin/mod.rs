//! The admin site at `/admin/`, for staff (`is_staff`): users, chats, messages, push devices
//! and their push log, attachments, the audit log and a dashboard, as server-rendered HTML
//! that works without JavaScript.
//!
//! Handlers are thin: the `Admin` service holds the site's rules and calls `Accounts`, `Chats`
//! `Realtime`, `Push` and `Media` for everything else. Pages are askama templates (`templates/`, compiled into
//! the binary and HTML-escaped by default); the style sheet and the small script are embedded
//! too. Each section (`nav::SECTIONS`) has its file of routes, merged below.

mod attachments;
mod audit;
mod chats;
mod dashboard;
mod devices;
mod error;
mod html;
mod login;
mod messages;
mod nav;
mod service;
mod session;
mod users;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::http::asset::embedded;
use crate::limits::RateLimits;
pub(crate) use service::Admin;

const ADMIN_CSS: &str = include_str!("assets/admin.css");
const ADMIN_JS: &str = include_str!("assets/admin.js");

/// Outside `/admin/`, whose paths get a trailing slash before routing.
const CSS_PATH: &str = "/static/admin/admin.css";
const JS_PATH: &str = "/static/admin/admin.js";

/// Admin forms are small: larger bodies are refused before they are read.
const FORM_BODY_MAX: usize = 64 * 1024;

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Admin: FromRef<S>,
    RateLimits: FromRef<S>,
{
    Router::new()
        .route("/admin/", get(dashboard::show))
        .merge(login::router())
        .merge(users::router())
        .merge(chats::router())
        .merge(messages::router())
        .merge(devices::router())
        .merge(attachments::router())
        .merge(audit::router())
        .layer(DefaultBodyLimit::max(FORM_BODY_MAX))
        .route(CSS_PATH, get(css))
        .route(JS_PATH, get(js))
}

async fn css() -> Response {
    embedded("text/css; charset=utf-8", ADMIN_CSS)
}

async fn js() -> Response {
    embedded("text/javascript; charset=utf-8", ADMIN_JS)
}
