//! Files embedded in the binary (the web client's and the admin site's), served as they are.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// `body` with its type, never cached stale (the binary is the version) and never sniffed.
pub(crate) fn embedded(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
        .into_response()
}
