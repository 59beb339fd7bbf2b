//! djoser's and SimpleJWT's routes under `/auth/`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

use super::email::{self, Email};
use super::service::{self, Registration, NAME_MAX};
use super::view;
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::http::{Body, Fields, PageLink, PageRequest};
use crate::limits::{ClientIp, Scope};
use crate::store::users::{self, ProfileChange, UserRow};

const PASSWORD_MAX: usize = 4096;

pub fn router() -> Router<AppState> {
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

async fn register(State(state): State<AppState>, ClientIp(ip): ClientIp, Body(body): Body) -> ApiResult<Response> {
    state.limits.check(Scope::Register, ip)?;
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
    let user = service::create_user(
        &state,
        Registration {
            email,
            password,
            first_name,
            last_name,
            is_staff: false,
            is_superuser: false,
        },
    )
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

async fn update_me(State(state): State<AppState>, user: CurrentUser, Body(body): Body) -> ApiResult<Json<Value>> {
    let change = names_change(&body)?;
    let updated = users::update_profile(&state.db, user.id(), &change)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(view::djoser(&updated)))
}

async fn delete_me(State(state): State<AppState>, user: CurrentUser, Body(body): Body) -> ApiResult<StatusCode> {
    delete_account(&state, &user.0, &user.0, &body).await
}

/// Deleting an account always needs the caller's own current password (djoser's rule).
async fn delete_account(
    state: &AppState,
    caller: &UserRow,
    target: &UserRow,
    body: &serde_json::Map<String, Value>,
) -> ApiResult<StatusCode> {
    let mut f = Fields::new(body);
    let current = f.required_raw_str("current_password", PASSWORD_MAX);
    f.finish()?;
    service::check_current_password(caller, "current_password", current.unwrap_or_default()).await?;
    users::delete(&state.db, target.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_users(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<HashMap<String, String>>,
    link: PageLink,
) -> ApiResult<Json<Value>> {
    let page = PageRequest::from_query(&query)?;
    let (total, rows) = if user.0.is_staff {
        let total = users::count(&state.db).await?;
        let page = page.resolve(total);
        users::list(&state.db, page.limit(), page.offset()).await?
    } else {
        (1, vec![user.0.clone()])
    };
    let page = page.resolve(total);
    let results: Vec<Value> = rows.iter().map(view::djoser).collect();
    Ok(Json(page.render(total, results, &link)?))
}

/// Self, or anyone for staff; everyone else is "not found" so ids cannot be probed.
async fn visible_user(state: &AppState, caller: &UserRow, id: &str) -> ApiResult<UserRow> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::NotFound)?;
    if id == caller.id {
        return Ok(caller.clone());
    }
    if !caller.is_staff {
        return Err(ApiError::NotFound);
    }
    users::by_id(&state.db, id).await?.ok_or(ApiError::NotFound)
}

async fn user_detail(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let target = visible_user(&state, &user.0, &id).await?;
    Ok(Json(view::djoser(&target)))
}

async fn update_user(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let target = visible_user(&state, &user.0, &id).await?;
    let change = names_change(&body)?;
    let updated = users::update_profile(&state.db, target.id, &change)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(view::djoser(&updated)))
}

async fn delete_user(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    let target = visible_user(&state, &user.0, &id).await?;
    delete_account(&state, &user.0, &target, &body).await
}

async fn set_password(State(state): State<AppState>, user: CurrentUser, Body(body): Body) -> ApiResult<StatusCode> {
    let mut f = Fields::new(&body);
    let new_password = f.required_raw_str("new_password", PASSWORD_MAX);
    let current = f.required_raw_str("current_password", PASSWORD_MAX);
    f.finish()?;
    let (Some(new_password), Some(current)) = (new_password, current) else {
        unreachable!("checked by finish()")
    };
    service::check_current_password(&user.0, "current_password", current).await?;
    service::set_password(&state, &user.0, new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    state.limits.check(Scope::PasswordReset, ip)?;
    let mut f = Fields::new(&body);
    let email = f.required_str("email", email::MAX_LEN);
    f.finish()?;
    let email = service::parse_email(&email.unwrap_or_default())?;
    service::request_reset(&state, &email).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_password_confirm(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(body): Body,
) -> ApiResult<StatusCode> {
    state.limits.check(Scope::PasswordReset, ip)?;
    let mut f = Fields::new(&body);
    let uid = f.required_str("uid", 200);
    let token = f.required_str("token", 200);
    let new_password = f.required_raw_str("new_password", PASSWORD_MAX);
    f.finish()?;
    let (Some(uid), Some(token), Some(new_password)) = (uid, token, new_password) else {
        unreachable!("checked by finish()")
    };
    service::confirm_reset(&state, &uid, &token, new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn jwt_create(State(state): State<AppState>, ClientIp(ip): ClientIp, Body(body): Body) -> ApiResult<Json<Value>> {
    let mut f = Fields::new(&body);
    let email = f.required_str("email", email::MAX_LEN);
    let password = f.required_raw_str("password", PASSWORD_MAX);
    f.finish()?;
    state.limits.check(Scope::Login, ip)?;
    let (Some(email), Some(password)) = (email, password) else {
        unreachable!("checked by finish()")
    };
    let user = service::authenticate(&state, &email, password).await?;
    let pair = service::issue_pair(&state, user.id);
    Ok(Json(json!({ "refresh": pair.refresh, "access": pair.access })))
}

fn token_field(body: &serde_json::Map<String, Value>, name: &str) -> ApiResult<String> {
    let mut f = Fields::new(body);
    let token = f.required_str(name, 4096);
    f.finish()?;
    Ok(token.unwrap_or_default())
}

async fn jwt_refresh(State(state): State<AppState>, Body(body): Body) -> ApiResult<Json<Value>> {
    let token = token_field(&body, "refresh")?;
    let (access, refresh) = service::refresh(&state, &token).await?;
    Ok(Json(match refresh {
        Some(refresh) => json!({ "access": access, "refresh": refresh }),
        None => json!({ "access": access }),
    }))
}

async fn jwt_verify(State(state): State<AppState>, Body(body): Body) -> ApiResult<Json<Value>> {
    let token = token_field(&body, "token")?;
    service::verify(&state, &token).await?;
    Ok(Json(json!({})))
}

async fn jwt_blacklist(State(state): State<AppState>, Body(body): Body) -> ApiResult<Json<Value>> {
    let token = token_field(&body, "refresh")?;
    service::blacklist(&state, &token).await?;
    Ok(Json(json!({})))
}
