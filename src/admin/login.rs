//! Signing in and out. The password is checked as the API's login checks it; only staff get a
//! session. Attempts are rate-limited per client address like `/auth/jwt/create/`.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRef, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::error::AdminError;
use super::html::render;
use super::nav;
use super::service::{Admin, Staff};
use super::session::{self, Confirm, Posted};
use crate::error::ApiError;
use crate::limits::{ClientIp, RateLimits, Scope};

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Admin: FromRef<S>,
    RateLimits: FromRef<S>,
{
    Router::new()
        .route("/admin/login/", get(form).post(sign_in))
        .route("/admin/logout/", post(sign_out))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    next: &'a str,
    error: Option<&'a str>,
    notice: Option<&'static str>,
}

async fn form(
    State(admin): State<Admin>,
    signed_in: Result<Staff, Response>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let next = session::safe_next(query.get("next").map(String::as_str)).to_string();
    // Already signed in: straight on.
    if signed_in.is_ok() {
        return Redirect::to(&next).into_response();
    }
    let token = hex::encode({
        let mut bytes = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
        bytes
    });
    let secure = session::is_secure(&admin, &headers);
    let mut response = render(
        StatusCode::OK,
        &LoginPage {
            csrf: &token,
            email: "",
            next: &next,
            error: None,
            notice: query.get("notice").and_then(|k| nav::notice(k)),
        },
    );
    let (name, value) = session::login_cookie(&token, secure);
    response.headers_mut().append(name, value);
    response
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn sign_in(
    State(admin): State<Admin>,
    State(limits): State<RateLimits>,
    ClientIp(address): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secure = session::is_secure(&admin, &headers);
    if let Err(ApiError::Throttled(secs)) = limits.check(Scope::Login, address) {
        return AdminError::Throttled(secs).into_response();
    }
    // The login form has no session yet: its token must equal the form's own cookie.
    let expected = session::read_cookie(&headers, session::LOGIN_COOKIE).unwrap_or_default();
    let form: LoginForm = match session::checked_form(&body, &expected) {
        Ok(form) => form,
        Err(err) => return err.into_response(),
    };
    let next = session::safe_next(form.next.as_deref()).to_string();
    match admin.sign_in(&form.email, form.password, address).await {
        Ok(cookie) => {
            let mut response = Redirect::to(&next).into_response();
            let headers = response.headers_mut();
            let (name, value) = session::session_cookie(&cookie, admin.session_max_secs(), secure);
            headers.append(name, value);
            let (name, value) = session::clear_login_cookie(secure);
            headers.append(name, value);
            response
        }
        Err(AdminError::BadCredentials) => render(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                csrf: &expected,
                email: form.email.trim(),
                next: &next,
                error: Some("Please enter the correct email address and password for a staff account."),
                notice: None,
            },
        ),
        Err(other) => other.into_response(),
    }
}

async fn sign_out(State(admin): State<Admin>, headers: HeaderMap, Posted { staff, .. }: Posted<Confirm>) -> Response {
    let secure = session::is_secure(&admin, &headers);
    if let Err(err) = admin.sign_out(&staff).await {
        return err.into_response();
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(LOCATION, HeaderValue::from_static("/admin/login/?notice=signed_out"));
    let (name, value) = session::clear_session_cookie(secure);
    headers.append(name, value);
    response
}
