//! Rendering: every admin page goes out through [`render`] with the same headers (a strict CSP,
//! no caching, no framing), and every [`AdminError`] becomes its HTML page here, in one place.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::error::AdminError;
use super::nav::{self, Section, SECTIONS};
use super::service::Staff;

/// Only the site's own script and style, no connections, forms only to this origin, never in
/// a frame.
const ADMIN_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Rows per page in every list.
pub(crate) const PAGE_SIZE: i64 = 50;

/// What every signed-in page shows around its content.
pub(crate) struct Layout {
    pub title: String,
    pub section: &'static str,
    pub nav: &'static [Section],
    pub me: String,
    pub csrf: String,
    pub notice: Option<&'static str>,
}

impl Layout {
    pub(crate) fn new(staff: &Staff, section: &'static str, title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            section,
            nav: SECTIONS,
            me: staff.user.email.clone(),
            csrf: staff.session.csrf_token.clone(),
            notice: None,
        }
    }

    /// Shows the confirmation named by `?notice=`, if it is one of ours.
    pub(crate) fn notice(mut self, key: Option<&str>) -> Layout {
        self.notice = key.and_then(nav::notice);
        self
    }
}

/// A rendered page with the admin's headers.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => with_headers(status, html),
        Err(err) => {
            tracing::error!(%err, "rendering an admin page");
            with_headers(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>The page could not be rendered.</p>".into(),
            )
        }
    }
}

fn with_headers(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(ADMIN_CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A page that only says what went wrong, with a way back.
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: String,
    pub details: Vec<String>,
    /// Where "back" goes.
    pub back: &'a str,
    pub back_label: &'a str,
}

pub(crate) fn error_page(status: StatusCode, title: &str, message: impl Into<String>) -> Response {
    render(
        status,
        &ErrorPage {
            title,
            message: message.into(),
            details: Vec::new(),
            back: "/admin/",
            back_label: "Back to the admin site",
        },
    )
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::NotFound => error_page(StatusCode::NOT_FOUND, "Not found", "There is no such object."),
            AdminError::Forbidden(why) => error_page(StatusCode::FORBIDDEN, "Not allowed", why),
            AdminError::Invalid(fields) => render(
                StatusCode::BAD_REQUEST,
                &ErrorPage {
                    title: "Please correct the form",
                    message: "The form has errors; nothing was changed.".into(),
                    details: fields
                        .iter()
                        .flat_map(|(field, messages)| messages.iter().map(move |m| format!("{field}: {m}")))
                        .collect(),
                    back: "/admin/",
                    back_label: "Back to the admin site",
                },
            ),
            AdminError::BadForm => error_page(
                StatusCode::BAD_REQUEST,
                "Bad form",
                "The form was not understood; nothing was changed.",
            ),
            AdminError::BadCsrf => error_page(
                StatusCode::FORBIDDEN,
                "Forbidden (CSRF check failed)",
                "The form did not carry this session's security token, so nothing was changed. \
                 Reload the page and try again.",
            ),
            AdminError::BadCredentials => error_page(
                StatusCode::UNAUTHORIZED,
                "Sign-in failed",
                "Please enter the correct email address and password for a staff account.",
            ),
            AdminError::NotStaff => render(
                StatusCode::FORBIDDEN,
                &ErrorPage {
                    title: "Staff only",
                    message: "This account is not a staff account, so it cannot use the admin site. \
                              Ask an administrator if you need access."
                        .into(),
                    details: Vec::new(),
                    back: "/admin/login/",
                    back_label: "Sign in with another account",
                },
            ),
            AdminError::Throttled(secs) => {
                let mut response = error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts",
                    format!("Too many sign-in attempts from your address. Try again in {secs} seconds."),
                );
                if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            AdminError::Unavailable => error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "The database does not answer right now; nothing was changed. Try again later.",
            ),
            AdminError::Internal(err) => {
                tracing::error!(error = ?err, "admin request failed");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server error",
                    "Something went wrong on the server; the error was logged.",
                )
            }
        }
    }
}

/// A time as the admin shows it.
pub(crate) fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub(crate) fn when_opt(at: Option<DateTime<Utc>>) -> String {
    at.map(when).unwrap_or_else(|| "—".into())
}

/// The page number asked for (`?page=`), from 1; anything else is page 1.
pub(crate) fn page_number(raw: Option<&String>) -> i64 {
    raw.and_then(|p| p.parse::<i64>().ok()).filter(|p| *p >= 1).unwrap_or(1)
}

pub(crate) fn offset(page: i64) -> i64 {
    (page - 1).saturating_mul(PAGE_SIZE)
}

/// Links to the neighbouring pages of a list, keeping its filters.
pub(crate) struct Pager {
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `filters` are the list's query parameters other than `page` (empty ones are left out).
    pub(crate) fn new(path: &str, filters: &[(&str, &str)], page: i64, total: i64) -> Pager {
        let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
        let link = |to: i64| {
            let mut pairs: Vec<(&str, String)> = filters
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, v.to_string()))
                .collect();
            pairs.push(("page", to.to_string()));
            format!("{path}?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
        };
        Pager {
            page,
            pages,
            total,
            prev: (page > 1).then(|| link((page - 1).min(pages))),
            next: (page < pages).then(|| link(page + 1)),
        }
    }
}

/// A form's errors by field, as its template shows them beside each field.
#[derive(Default)]
pub(crate) struct FormErrors(crate::validation::FieldErrors);

impl FormErrors {
    pub(crate) fn from_fields(fields: crate::validation::FieldErrors) -> FormErrors {
        FormErrors(fields)
    }

    /// The messages about `field`.
    pub(crate) fn of(&self, field: &str) -> &[String] {
        self.0.get(field).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// A query parameter, trimmed ("" when absent).
pub(crate) fn param(query: &std::collections::HashMap<String, String>, key: &str) -> String {
    query.get(key).map(|v| v.trim().to_string()).unwrap_or_default()
}

/// "yes" / "no" filter values of the lists; anything else filters nothing.
pub(crate) fn yes_no(raw: Option<&String>) -> Option<bool> {
    match raw.map(String::as_str) {
        Some("yes") => Some(true),
        Some("no") => Some(false),
        _ => None,
    }
}

/// A size in bytes as people read it ("512 B", "1.5 MiB").
pub(crate) fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
