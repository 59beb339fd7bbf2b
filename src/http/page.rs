//! DRF's PageNumberPagination: `{"count","next","previous","results"}`, `?page=N`, `?page_size=`.

use std::borrow::Cow;

use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr, Required, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::query::{FromQuery, QueryParams};
use crate::error::ApiError;

pub(crate) const DEFAULT_PAGE_SIZE: i64 = 20;
pub(crate) const MAX_PAGE_SIZE: i64 = 100;

/// One page of a list, with absolute links to its neighbours; the keys in the order DRF's
/// `get_paginated_response` writes them.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// Described by hand rather than derived: a derived generic schema inlines `T` into every
/// page; this one refers to `T`'s component and is named after it (`MessagePage`).
impl<T: ToSchema> PartialSchema for Page<T> {
    fn schema() -> RefOr<Schema> {
        let link = |description: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .format(Some(SchemaFormat::Custom("uri".into())))
                .description(Some(description))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(format!(
                "A page of {}s (DRF's page number pagination).",
                T::name()
            )))
            .property(
                "count",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .description(Some("How many items the whole list has")),
            )
            .property("next", link("The next page, when there is one"))
            .property("previous", link("The previous page, when there is one"))
            .property("results", ArrayBuilder::new().items(Ref::from_schema_name(T::name())))
            .required("count")
            .required("next")
            .required("previous")
            .required("results")
            .into()
    }
}

impl<T: ToSchema> ToSchema for Page<T> {
    fn name() -> Cow<'static, str> {
        format!("{}Page", T::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PageRequest {
    pub page: i64,
    pub size: i64,
}

/// `page` and `page_size` from the query; a page past the end is DRF's 404 "Invalid page." and
/// is checked by [`PageRequest::render`] once the count is known.
impl FromQuery for PageRequest {
    fn from_query(params: &QueryParams) -> Result<PageRequest, ApiError> {
        let page = match params.get("page").map(str::trim) {
            None | Some("") => 1,
            Some("last") => i64::MAX,
            Some(p) => match p.parse::<i64>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(ApiError::InvalidPage),
            },
        };
        let size = params
            .get("page_size")
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|n| *n >= 1)
            .map(|n| n.min(MAX_PAGE_SIZE))
            .unwrap_or(DEFAULT_PAGE_SIZE);
        Ok(PageRequest { page, size })
    }
}

/// The two parameters [`PageRequest::from_query`] reads.
impl IntoParams for PageRequest {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let param = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(i64::schema()))
                .build()
        };
        vec![
            param(
                "page",
                "Page number (from 1), or `last`; past the end is 404 \"Invalid page.\"",
            ),
            param(
                "page_size",
                &format!("Items per page (default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE})"),
            ),
        ]
    }
}

impl PageRequest {
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
    pub(crate) fn render<T>(self, total: i64, results: Vec<T>, here: &PageLink) -> Result<Page<T>, ApiError> {
        let (next, previous) = self.links(total, here)?;
        Ok(Page {
            count: total,
            next,
            previous,
            results,
        })
    }

    /// As [`PageRequest::render`], the body as JSON around `results`, the JSON array of the
    /// page's items as rendered before (a page kept between polls).
    pub(crate) fn render_json(self, total: i64, results: &str, here: &PageLink) -> Result<Response, ApiError> {
        let (next, previous) = self.links(total, here)?;
        let link = |l: Option<String>| serde_json::to_string(&l).expect("a link serialises");
        let body = format!(
            r#"{{"count":{total},"next":{},"previous":{},"results":{results}}}"#,
            link(next),
            link(previous)
        );
        Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    }

    /// The `next` and `previous` links of the page in a list of `total`; past the end is 404.
    fn links(self, total: i64, here: &PageLink) -> Result<(Option<String>, Option<String>), ApiError> {
        let last = ((total + self.size - 1) / self.size).max(1);
        if self.page > last {
            return Err(ApiError::InvalidPage);
        }
        Ok((
            (self.page < last).then(|| here.to_page(self.page + 1)),
            (self.page > 1).then(|| here.to_page(self.page - 1)),
        ))
    }
}

/// Where pagination links point: `public_url`, or, behind a proxy whose headers are trusted
/// (`trust_forwarded_for`), the host and scheme the proxy says the client used (DRF's way).
/// Never a client's own `X-Forwarded-Host` otherwise: a link in an answer would send the next
/// request wherever the client (or whoever poisoned a cache in front) wanted.
#[derive(Clone, Debug)]
pub(crate) struct LinkBase {
    pub public_url: String,
    pub trust_proxy: bool,
}

/// Where the request was sent, for absolute pagination links.
pub(crate) struct PageLink {
    base: String,
    uri: Uri,
}

impl PageLink {
    /// This request's URL with `page` set to `page` (left out for the first page, as DRF does).
    fn to_page(&self, page: i64) -> String {
        let mut pairs: Vec<(String, String)> = self
            .uri
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
        let mut url = format!("{}{}", self.base.trim_end_matches('/'), self.uri.path());
        if !pairs.is_empty() {
            url.push('?');
            url.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish(),
            );
        }
        url
    }
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
        let settings = parts.extensions.get::<LinkBase>();
        let base = match settings {
            Some(LinkBase { trust_proxy: true, .. }) | None => {
                let host = header("x-forwarded-host")
                    .or_else(|| header("host"))
                    .unwrap_or_else(|| "localhost".into());
                let scheme = header("x-forwarded-proto")
                    .filter(|p| p == "https")
                    .unwrap_or_else(|| "http".into());
                format!("{scheme}://{host}")
            }
            Some(LinkBase { public_url, .. }) => public_url.trim_end_matches('/').to_string(),
        };
        Ok(PageLink {
            base,
            uri: parts.uri.clone(),
        })
    }
}
