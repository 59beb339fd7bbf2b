//! djoser's and SimpleJWT's routes under `/auth/`.

use std::collections::HashMap;

use super::email::{self, Email};
use super::service::{self, Accounts, Registration, NAME_MAX};
use super::view;
use super::{AccountError, CurrentUser};
use crate::error::{ApiError, ApiResult};
use crate::http::{Body, Fields, PageLink, PageRequest};
use crate::ids::UserId;
use crate::limits::{ClientIp, RateLimits, Scope};
use crate::store::users::{ProfileChange, UserRow};
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

const PASSWORD_MAX: usize = 4096;

/// How account failures look to an HTTP client (DRF's and SimpleJWT's bodies).
impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> ApiError {
        match err {
            AccountError::Invalid(fields) => ApiError::Validation(fields),
            AccountError::InvalidAccessToken => ApiError::InvalidAccessToken,
            AccountError::TokenNotValid => ApiError::TokenNotValid,
            AccountError::TokenBlacklisted => ApiError::TokenBlacklisted,
            AccountError::BadCredentials => ApiError::BadCredentials,
            AccountError::UserInactive => ApiError::UserInactive,
            AccountError::UserNotFound => ApiError::UserNotFound,
            AccountError::Unavailable => ApiError::Unavailable,
            AccountError::Store(err) => ApiError::Internal(anyhow::Error::new(err).context("account storage")),
            AccountError::Hashing(err) => ApiError::Internal(err.context("password hashing")),
        }
    }
}

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
    RateLimits: FromRef<S>,
{
    Router::new()
        .route("/auth/users/", get(list_users).post(register))
        .route(
            "/auth/users/me/",
            get(me).put(update_me).patch(update_me).delete(delete_me),
        )
        .route("/auth/users/set_password/", post(set_password))
        .route("/auth/users/reset_password/", post(reset_password))
        .route("/auth/users/reset_password_confirm/", post(reset_password_confirm))
        .route(
            "/auth/users/{id}/",
            get(user_detail).put(update_user).patch(update_user).delete(delete_user),
        )
        .route("/auth/jwt/create/", post(jwt_create))
        .route("/auth/jwt/refresh/", post(jwt_refresh))
        .route("/auth/jwt/verify/", post(jwt_verify))
        .route("/auth/jwt/blacklist/", post(jwt_blacklist))
}

async fn register(
    State(accounts): State<Accounts>,
    State(limits): State<RateLimits>,
    ClientIp(ip): ClientIp,
    Body(body): Body,
) -> ApiResult<Response> {
    limits.check(Scope::Register, ip)?;
    let mut f = Fields::new(&body);
    let email = f.required_str("email", email::MAX_LEN);
    let password = f.required_raw_str("password", PASSWORD_MAX);
    let first_name = f.optional_str("first_name", NAME_MAX).unwrap_or_default();
    let last_name = f.optional_str("last_name", NAME_MAX).unwrap_or_default();
    let email = email.and_then(|e| {
        let parsed = Email::parse(&e);
        if parsed.is_none() {
            f.error("email", email::INVALID);
        }
        parsed
    });
    if let (Some(email), Some(password)) = (&email, &password) {
        let problems = service::password_problems(password, email.as_str(), &first_name, &last_name);
        for problem in problems {
            f.error("password", problem);
        }
    }
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        unreachable!("finish() reported missing fields")
    };
    let user = accounts
        .create_user(Registration {
            email,
            password,
            first_name,
            last_name,
            is_staff: false,
            is_superuser: false,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view::djoser(&user))).into_response())
}

async fn me(user: CurrentUser) -> Json<Value> {
    Json(view::djoser(&user.0))
}

/// Names are the writable fields of djoser's user serializer (the email is its read-only login).
fn names_change(body: &serde_json::Map<String, Value>) -> ApiResult<ProfileChange> {
    let mut f = Fields::new(body);
    let change = ProfileChange {
        first_name: f.optional_str("first_name", NAME_MAX),
        last_name: f.optional_str("last_name", NAME_MAX),
        ..ProfileChange::default()
    };
    f.finish()?;
    Ok(change)
}

async fn update_me(State(accounts): State<Accounts>, user: CurrentUser, Body(body): Body) -> ApiResult<Json<Value>> {
    let change = names_change(&body)?;
    let updated = accounts
        .update_profile(user.id(), &change)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(view::djoser(&updated)))
}

async fn delete_me(State(accounts): State<Accounts>, user: CurrentUser, Body(body): Body) -> ApiResult<StatusCode> {
    delete_account(&accounts, &user.0, &user.0, &body).await
}

/// Deleting an account always needs the caller's own current password (djoser's rule).
async fn delete_account(
    accounts: &Accounts,
    caller: &UserRow,
    target: &UserRow,
    body: &serde_json::Map<String, Value>,
) -> ApiResult<StatusCode> {
    let mut f = Fields::new(body);
    let current = f.required_raw_str("current_password", PASSWORD_MAX);
    f.finish()?;
    accounts
        .check_current_password(caller, "current_password", current.unwrap_or_default())
        .await?;
    accounts.delete_user(target.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_users(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Query(query): Query<HashMap<String, String>>,
    link: PageLink,
) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&query)?;
    let (total, rows) = if user.0.is_staff {
        let total = accounts.count_users().await?;
        let page = page.resolve(total);
        let listed = accounts.list_users(page.limit(), page.offset()).await?;
        (listed.total, listed.users)
    } else {
        (1, vec![user.0.clone()])
    };
    let page = page.resolve(total);
    let results: Vec<Value> = rows.iter().map(view::djoser).collect();
    Ok(Json(page.render(total, results, &link)?))
}

/// Self, or anyone for staff; everyone else is "not found" so ids cannot be probed.
async fn visible_user(accounts: &Accounts, caller: &UserRow, id: &str) -> ApiResult<UserRow> {
    let id: UserId = id.parse().map_err(|_| ApiError::NotFound)?;
    if id == caller.id {
        return Ok(caller.clone());
    }
    if !caller.is_staff {
        return Err(ApiError::NotFound);
    }
    accounts.user(id).await?.ok_or(ApiError::NotFound)
}

async fn user_detail(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let target = visible_user(&accounts, &user.0, &id).await?;
    Ok(Json(view::djoser(&target)))
}

async fn update_user(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let target = visible_user(&accounts, &user.0, &id).await?;
    let change = names_change(&body)?;
    let updated = accounts
        .update_profile(target.id, &change)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(view::djoser(&updated)))
}

async fn delete_user(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let target = visible_user(&accounts, &user.0, &id).await?;
    delete_account(&accounts, &user.0, &target, &body).await
}

async fn set_password(State(accounts): State<Accounts>, user: CurrentUser, Body(body): Body) -> ApiResult<StatusCode> {
    let mut f = Fields::new(&body);
    let new_password = f.required_raw_str("new_password", PASSWORD_MAX);
    let current = f.required_raw_str("current_password", PASSWORD_MAX);
    f.finish()?;
    let (Some(new_password), Some(current)) = (new_password, current) else {
        unreachable!("checked by finish()")
    };
    accounts
        .check_current_password(&user.0, "current_password", current)
        .await?;
    accounts.set_password(&user.0, new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_password(
    State(accounts): State<Accounts>,
    State(limits): State<RateLimits>,
    ClientIp(ip): ClientIp,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    limits.check(Scope::PasswordReset, ip)?;
    let mut f = Fields::new(&body);
    let email = f.required_str("email", email::MAX_LEN);
    f.finish()?;
    let email = service::parse_email(&email.unwrap_or_default())?;
    accounts.request_reset(&email).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_password_confirm(
    State(accounts): State<Accounts>,
    State(limits): State<RateLimits>,
    ClientIp(ip): ClientIp,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    limits.check(Scope::PasswordReset, ip)?;
    let mut f = Fields::new(&body);
    let uid = f.required_str("uid", 200);
    let token = f.required_str("token", 200);
    let new_password = f.required_raw_str("new_password", PASSWORD_MAX);
    f.finish()?;
    let (Some(uid), Some(token), Some(new_password)) = (uid, token, new_password) else {
        unreachable!("checked by finish()")
    };
    accounts.confirm_reset(&uid, &token, new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn jwt_create(
    State(accounts): State<Accounts>,
    State(limits): State<RateLimits>,
    ClientIp(ip): ClientIp,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let mut f = Fields::new(&body);
    let email = f.required_str("email", email::MAX_LEN);
    let password = f.required_raw_str("password", PASSWORD_MAX);
    f.finish()?;
    limits.check(Scope::Login, ip)?;
    let (Some(email), Some(password)) = (email, password) else {
        unreachable!("checked by finish()")
    };
    let user = accounts.authenticate(&email, password).await?;
    let pair = accounts.issue_pair(user.id);
    Ok(Json(json!({ "refresh": pair.refresh, "access": pair.access })))
}

fn token_field(body: &serde_json::Map<String, Value>, name: &str) -> ApiResult<String> {
    let mut f = Fields::new(body);
    let token = f.required_str(name, 4096);
    f.finish()?;
    Ok(token.unwrap_or_default())
}

async fn jwt_refresh(State(accounts): State<Accounts>, Body(body): Body) -> ApiResult<Json<Value>> {
    let token = token_field(&body, "refresh")?;
    let (access, refresh) = accounts.refresh(&token).await?;
    Ok(Json(match refresh {
        Some(refresh) => json!({ "access": access, "refresh": refresh }),
        None => json!({ "access": access }),
    }))
}

async fn jwt_verify(State(accounts): State<Accounts>, Body(body): Body) -> ApiResult<Json<Value>> {
    let token = token_field(&body, "token")?;
    accounts.verify(&token).await?;
    Ok(Json(json!({})))
}

async fn jwt_blacklist(State(accounts): State<Accounts>, Body(body): Body) -> ApiResult<Json<Value>> {
    let token = token_field(&body, "refresh")?;
    accounts.blacklist(&token).await?;
    Ok(Json(json!({})))
}
