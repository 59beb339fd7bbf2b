//! The admin site's session cookie and CSRF checks, as extractors: a handler that takes
//! [`Staff`] only runs for a signed-in staff member, and one that takes [`Posted`] only runs
//! when the form carries that session's CSRF token.
//!
//! The cookie holds an opaque random value (the database keeps its SHA-256); it is HttpOnly,
//! SameSite=Strict, limited to `/admin/`, and `Secure` when the request came over HTTPS.
//! Forms carry the session's synchronizer token in a hidden `csrf` field. The login form,
//! which has no session yet, carries a random value that must equal a short-lived cookie of
//! its own (double submit).

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::error::AdminError;
use super::service::{Admin, Staff};
use crate::limits::{ClientIp, RateLimits};

pub(crate) const SESSION_COOKIE: &str = "causerie_admin";
pub(crate) const LOGIN_COOKIE: &str = "causerie_admin_login";
const SESSION_PATH: &str = "/admin/";
const LOGIN_PATH: &str = "/admin/login/";
/// How long a login form stays usable.
const LOGIN_FORM_SECS: i64 = 3600;

/// The value of cookie `name` in the request, if any.
pub(crate) fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether this request came over HTTPS, as far as the settings let us know.
pub(crate) fn is_secure(admin: &Admin, headers: &HeaderMap) -> bool {
    let proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
    admin.secure(proto)
}

fn cookie_header(name: &str, value: &str, path: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    // A cookie built from our own ASCII name and a base64/hex value is a valid header value.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` for a new session.
pub(crate) fn session_cookie(value: &str, max_age_secs: i64, secure: bool) -> (axum::http::HeaderName, HeaderValue) {
    (
        SET_COOKIE,
        cookie_header(SESSION_COOKIE, value, SESSION_PATH, max_age_secs, secure),
    )
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn clear_session_cookie(secure: bool) -> (axum::http::HeaderName, HeaderValue) {
    (SET_COOKIE, cookie_header(SESSION_COOKIE, "", SESSION_PATH, 0, secure))
}

/// `Set-Cookie` for the login form's double-submit value.
pub(crate) fn login_cookie(value: &str, secure: bool) -> (axum::http::HeaderName, HeaderValue) {
    (
        SET_COOKIE,
        cookie_header(LOGIN_COOKIE, value, LOGIN_PATH, LOGIN_FORM_SECS, secure),
    )
}

pub(crate) fn clear_login_cookie(secure: bool) -> (axum::http::HeaderName, HeaderValue) {
    (SET_COOKIE, cookie_header(LOGIN_COOKIE, "", LOGIN_PATH, 0, secure))
}

/// Constant-time equality of two tokens (an empty expected token never matches).
pub(crate) fn tokens_match(given: &str, expected: &str) -> bool {
    !expected.is_empty() && given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Where a signed-out visitor of `path` is sent: the login page, coming back afterwards.
fn to_login(parts: &Parts) -> Response {
    let back = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .filter(|p| parts.method == axum::http::Method::GET && *p != "/admin/")
        .map(|p| format!("?next={}", form_urlencoded_component(p)))
        .unwrap_or_default();
    Redirect::to(&format!("{LOGIN_PATH}{back}")).into_response()
}

pub(crate) fn form_urlencoded_component(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// A `next` target that stays inside the admin site (never another host).
pub(crate) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with("/admin/") && !next.starts_with("//") && !next.contains('\\') => next,
        _ => "/admin/",
    }
}

impl<S> FromRequestParts<S> for Staff
where
    S: Send + Sync,
    Admin: FromRef<S>,
    RateLimits: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Staff, Response> {
        if let Some(staff) = parts.extensions.get::<Staff>() {
            return Ok(staff.clone());
        }
        let ClientIp(address) = ClientIp::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let admin = Admin::from_ref(state);
        let Some(cookie) = read_cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(parts));
        };
        match admin.session(&cookie, address).await {
            Ok(Some(staff)) => {
                parts.extensions.insert(staff.clone());
                Ok(staff)
            }
            Ok(None) => Err(to_login(parts)),
            Err(err) => Err(err.into_response()),
        }
    }
}

/// A form POSTed by a signed-in staff member with their session's CSRF token. A missing or
/// wrong token is refused (403) before the handler runs, so nothing changes.
pub(crate) struct Posted<T> {
    pub staff: Staff,
    pub form: T,
}

impl<S, T> FromRequest<S> for Posted<T>
where
    S: Send + Sync,
    Admin: FromRef<S>,
    RateLimits: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Posted<T>, Response> {
        let (mut parts, body) = req.into_parts();
        let staff = Staff::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = checked_form::<T>(&bytes, &staff.session.csrf_token).map_err(IntoResponse::into_response)?;
        Ok(Posted { staff, form })
    }
}

/// Forms that carry nothing but the CSRF token.
#[derive(serde::Deserialize)]
pub(crate) struct Confirm {}

/// Decodes a form whose `csrf` field must equal `expected`; the token is checked first, so a
/// forged request learns nothing about the fields.
pub(crate) fn checked_form<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, AdminError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| AdminError::BadCsrf)?;
    let given = pairs
        .iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if !tokens_match(given, expected) {
        return Err(AdminError::BadCsrf);
    }
    serde_urlencoded::from_bytes(body).map_err(|_| AdminError::BadForm)
}
