//! DRF's PageNumberPagination: `{"count","next","previous","results"}`, `?page=N`, `?page_size=`.

use axum::http::Uri;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::ApiError;

pub(crate) const DEFAULT_PAGE_SIZE: i64 = 20;
pub(crate) const MAX_PAGE_SIZE: i64 = 100;

#[derive(Clone, Copy, Debug)]
pub(crate) struct PageRequest {
    pub page: i64,
    pub size: i64,
}

impl PageRequest {
    /// Reads `page` and `page_size` from the query; a page past the end is DRF's 404 "Invalid page."
    /// and is checked by [`PageRequest::render`] once the count is known.
    pub(crate) fn from_query(query: &std::collections::HashMap<String, String>) -> Result<PageRequest, ApiError> {
        let page = match query.get("page").map(|p| p.trim()) {
            None | Some("") => 1,
            Some("last") => i64::MAX,
            Some(p) => match p.parse::<i64>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(ApiError::InvalidPage),
            },
        };
        let size = query
            .get("page_size")
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|n| *n >= 1)
            .map(|n| n.min(MAX_PAGE_SIZE))
            .unwrap_or(DEFAULT_PAGE_SIZE);
        Ok(PageRequest { page, size })
    }

    /// True for `?page=last`, which needs the total before the page can be read.
    pub(crate) fn is_last(self) -> bool {
        self.page == i64::MAX
    }

    /// Offset for the query; `page=last` is resolved against `total` by the caller via `resolve`.
    pub(crate) fn resolve(self, total: i64) -> PageRequest {
        if self.page == i64::MAX {
            let last = ((total + self.size - 1) / self.size).max(1);
            PageRequest { page: last, ..self }
        } else {
            self
        }
    }

    pub(crate) fn offset(self) -> i64 {
        (self.page.saturating_sub(1)).saturating_mul(self.size)
    }

    pub(crate) fn limit(self) -> i64 {
        self.size
    }

    /// The paginated body, with absolute `next` and `previous` links.
    pub(crate) fn render<T: Serialize>(self, total: i64, results: Vec<T>, here: &PageLink) -> Result<Value, ApiError> {
        let (base, uri) = (here.base.as_str(), &here.uri);
        let last = ((total + self.size - 1) / self.size).max(1);
        if self.page > last {
            return Err(ApiError::InvalidPage);
        }
        let link = |page: i64| -> Value {
            let mut pairs: Vec<(String, String)> = uri
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .filter(|(k, _)| k != "page")
                        .collect()
                })
                .unwrap_or_default();
            if page > 1 {
                pairs.push(("page".into(), page.to_string()));
            }
            let mut url = format!("{}{}", base.trim_end_matches('/'), uri.path());
            if !pairs.is_empty() {
                url.push('?');
                url.push_str(
                    &url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(pairs)
                        .finish(),
                );
            }
            Value::String(url)
        };
        Ok(json!({
            "count": total,
            "next": if self.page < last { link(self.page + 1) } else { Value::Null },
            "previous": if self.page > 1 { link(self.page - 1) } else { Value::Null },
            "results": results,
        }))
    }
}

/// Where the request was sent, for absolute pagination links (DRF builds them from the request's
/// host, so they work behind any address the client used).
pub(crate) struct PageLink {
    base: String,
    uri: Uri,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PageLink {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let host = header("x-forwarded-host")
            .or_else(|| header("host"))
            .unwrap_or_else(|| "localhost".into());
        let scheme = header("x-forwarded-proto")
            .filter(|p| p == "https")
            .unwrap_or_else(|| "http".into());
        Ok(PageLink {
            base: format!("{scheme}://{host}"),
            uri: parts.uri.clone(),
        })
    }
}
