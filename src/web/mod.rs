//! The web side: the chat client page (`/chat/`, `/chat/{chat_id}/`), the OpenAPI document
//! (`/api/schema/`) and its docs page (`/documentation/`, `/api/docs/`). Every asset is embedded
//! in the binary; nothing is fetched from the network.

pub(crate) mod openapi;

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::asset::embedded;

const CHAT_HTML: &str = include_str!("assets/chat.html");
const CHAT_JS: &str = include_str!("assets/chat.js");
const CHAT_CSS: &str = include_str!("assets/chat.css");
const PUSH_SW: &str = include_str!("assets/sw.js");

/// Where the page's script and style live. Outside the prefixes whose paths get a trailing
/// slash added before routing (see `app::add_trailing_slash`).
pub(crate) const CHAT_JS_PATH: &str = "/static/web/chat.js";
pub(crate) const CHAT_CSS_PATH: &str = "/static/web/chat.css";
/// The service worker that shows Web Push notifications (docs/push.md), allowed to control
/// `/chat/` from here.
pub(crate) const PUSH_SW_PATH: &str = "/static/web/sw.js";

/// The page runs only its own script and style and talks only to this origin (HTTP and its
/// WebSocket: CSP 3 `'self'` covers `ws:`/`wss:` to the same host).
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The routes of this module that are part of the API: the document itself.
pub(crate) fn documented_router<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new().routes(routes!(schema))
}

/// The pages and their assets.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/chat/", get(chat_page))
        .route("/chat/{chat_id}/", get(chat_page_for))
        .route(CHAT_JS_PATH, get(chat_js))
        .route(CHAT_CSS_PATH, get(chat_css))
        .route(PUSH_SW_PATH, get(push_sw))
        .route("/documentation/", get(docs_index))
        .route("/documentation/{*rest}", get(docs_file))
        .route("/api/docs/", get(docs_index))
        .route("/api/docs/{*rest}", get(docs_file))
}

async fn push_sw() -> Response {
    let mut response = embedded("text/javascript; charset=utf-8", PUSH_SW);
    response
        .headers_mut()
        .insert("service-worker-allowed", HeaderValue::from_static("/chat/"));
    response
}

async fn chat_page() -> Response {
    let mut response = embedded("text/html; charset=utf-8", CHAT_HTML);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The same page; its script reads the chat id from the location. Ids that are not uuids are
/// "not found" here rather than a page that cannot work.
async fn chat_page_for(Path(chat_id): Path<String>) -> Response {
    if uuid::Uuid::parse_str(&chat_id).is_err() {
        return ApiError::NotFound.into_response();
    }
    chat_page().await
}

async fn chat_js() -> Response {
    embedded("text/javascript; charset=utf-8", CHAT_JS)
}

async fn chat_css() -> Response {
    embedded("text/css; charset=utf-8", CHAT_CSS)
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/schema/",
    tag = "operations",
    responses((status = OK, description = "OpenAPI 3.1", content_type = "application/json"))
)]
async fn schema(Extension(document): Extension<openapi::Served>) -> Response {
    document.response()
}

fn swagger_config() -> Arc<utoipa_swagger_ui::Config<'static>> {
    Arc::new(
        utoipa_swagger_ui::Config::new(["/api/schema/"])
            .persist_authorization(true)
            .try_it_out_enabled(true),
    )
}

/// Serves one file of the vendored Swagger UI. Paths reach here with the trailing slash the
/// router adds (`swagger-ui.css/`), so it is trimmed before the lookup.
fn swagger_file(path: &str) -> Response {
    let path = path.trim_matches('/');
    match utoipa_swagger_ui::serve(path, swagger_config()) {
        Ok(Some(file)) => (
            [
                (header::CONTENT_TYPE, file.content_type),
                (header::CACHE_CONTROL, "no-cache".to_string()),
            ],
            file.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => ApiError::NotFound.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "serving the API docs page");
            (StatusCode::INTERNAL_SERVER_ERROR, "docs unavailable").into_response()
        }
    }
}

async fn docs_index() -> Response {
    swagger_file("")
}

async fn docs_file(Path(rest): Path<String>) -> Response {
    swagger_file(&rest)
}
