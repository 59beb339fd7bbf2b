//! djoser's and SimpleJWT's routes under `/auth/`. Each handler's `#[utoipa::path]` is its
//! entry in the OpenAPI document; `router` registers handler and entry together.

use super::requests::{
    AnyToken, Credentials, CurrentPassword, NamesChange, NewAccount, PasswordChange, RefreshToken, ResetConfirm,
    ResetRequest,
};
use super::service::{Accounts, Registration};
use super::view::{CreatedUser, DjoserUser, Empty, Refreshed, TokenPair};
use super::{AccountError, CurrentUser};
use crate::error::{ApiError, ApiResult, Detail};
use crate::http::answers::{InvalidPage, NotFound};
use crate::http::{Form, Ids, Page, PageLink, PageRequest, Query};
use crate::ids::UserId;
use crate::limits::{ClientIp, PasswordResets, RateLimits, Registrations, Scope, Throttle};
use crate::store::users::UserRow;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
            AccountError::Throttled(wait) => ApiError::Throttled(wait),
            AccountError::Unavailable => ApiError::Unavailable,
            AccountError::Store(err) => ApiError::Internal(anyhow::Error::new(err).context("account storage")),
            AccountError::Hashing(err) => ApiError::Internal(err.context("password hashing")),
        }
    }
}

pub(crate) fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
    RateLimits: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_users, register))
        .routes(routes!(me, update_me, delete_me))
        .routes(routes!(set_password))
        .routes(routes!(reset_password))
        .routes(routes!(reset_password_confirm))
        .routes(routes!(user_detail, update_user, delete_user))
        .routes(routes!(jwt_create))
        .routes(routes!(jwt_refresh))
        .routes(routes!(jwt_verify))
        .routes(routes!(jwt_blacklist))
}

/// A page of users, named for `#[utoipa::path]` (which takes a generic body type for a derived
/// one).
type DjoserUserPage = Page<DjoserUser>;

/// Register.
#[utoipa::path(
    post,
    path = "/auth/users/",
    tag = "accounts",
    responses(
        (status = CREATED, description = "The new user", body = CreatedUser),
        (status = TOO_MANY_REQUESTS, description = "Too many registrations from this address (see `Retry-After`)", body = Detail),
    )
)]
async fn register(
    State(accounts): State<Accounts>,
    _: Throttle<Registrations>,
    Form(new): Form<NewAccount>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    let user = accounts
        .create_user(Registration {
            email: new.email,
            password: new.password,
            first_name: new.first_name,
            last_name: new.last_name,
            is_staff: false,
            is_superuser: false,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedUser::of(&user))))
}

/// The caller.
#[utoipa::path(
    get,
    path = "/auth/users/me/",
    tag = "accounts",
    security(("jwtAuth" = [])),
    responses((status = OK, description = "The caller", body = DjoserUser))
)]
async fn me(user: CurrentUser) -> Json<DjoserUser> {
    Json(DjoserUser::of(&user.0))
}

/// Change the caller's names.
#[utoipa::path(
    method(put, patch),
    path = "/auth/users/me/",
    tag = "accounts",
    security(("jwtAuth" = [])),
    responses((status = OK, description = "The updated user", body = DjoserUser))
)]
async fn update_me(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Form(names): Form<NamesChange>,
) -> ApiResult<Json<DjoserUser>> {
    change_names(&accounts, user.id(), names).await
}

async fn change_names(accounts: &Accounts, id: UserId, names: NamesChange) -> ApiResult<Json<DjoserUser>> {
    let updated = accounts
        .update_profile(id, &names.into())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(DjoserUser::of(&updated)))
}

/// Delete the caller's account.
///
/// Needs the caller's own current password.
#[utoipa::path(
    delete,
    path = "/auth/users/me/",
    tag = "accounts",
    security(("jwtAuth" = [])),
    responses((status = NO_CONTENT, description = "Deleted"))
)]
async fn delete_me(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Form(password): Form<CurrentPassword>,
) -> ApiResult<StatusCode> {
    delete_account(&accounts, &user.0, &user.0, password).await
}

/// Deleting an account always needs the caller's own current password (djoser's rule).
async fn delete_account(
    accounts: &Accounts,
    caller: &UserRow,
    target: &UserRow,
    password: CurrentPassword,
) -> ApiResult<StatusCode> {
    accounts
        .check_current_password(caller, "current_password", password.current_password)
        .await?;
    accounts.delete_user(target.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List users.
///
/// Staff see everyone; anyone else sees only themself.
#[utoipa::path(
    get,
    path = "/auth/users/",
    tag = "accounts",
    params(PageRequest),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "A page of users", body = DjoserUserPage),
        InvalidPage,
    )
)]
async fn list_users(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Query(page): Query<PageRequest>,
    link: PageLink,
) -> ApiResult<Json<Page<DjoserUser>>> {
    let (total, rows) = if user.0.is_staff {
        let total = accounts.count_users().await?;
        let page = page.resolve(total);
        let listed = accounts.list_users(page.limit(), page.offset()).await?;
        (listed.total, listed.users)
    } else {
        (1, vec![UserRow::clone(&user.0)])
    };
    let page = page.resolve(total);
    let results = rows.iter().map(DjoserUser::of).collect();
    Ok(Json(page.render(total, results, &link)?))
}

/// The user a `/auth/users/{id}/` request is about: the caller, or anyone for staff; everyone
/// else is "not found", so ids cannot be probed. An extractor, so that the 404 comes before the
/// body is read, as djoser's `get_object` does.
struct Visible {
    caller: UserRow,
    target: UserRow,
}

impl<S> FromRequestParts<S> for Visible
where
    S: Send + Sync,
    Accounts: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Visible, ApiError> {
        let CurrentUser(caller) = CurrentUser::from_request_parts(parts, state).await?;
        let Ids(id) = Ids::<UserId>::from_request_parts(parts, state).await?;
        let caller = UserRow::clone(&caller);
        let target = if id == caller.id {
            caller.clone()
        } else if caller.is_staff {
            let accounts = Accounts::from_ref(state);
            accounts.user(id).await?.ok_or(ApiError::NotFound)?
        } else {
            return Err(ApiError::NotFound);
        };
        Ok(Visible { caller, target })
    }
}

/// One user.
///
/// The caller, or anyone for staff; others are 404.
#[utoipa::path(
    get,
    path = "/auth/users/{id}/",
    tag = "accounts",
    params(("id" = UserId, Path, description = "The user's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The user", body = DjoserUser),
        NotFound,
    )
)]
async fn user_detail(visible: Visible) -> Json<DjoserUser> {
    Json(DjoserUser::of(&visible.target))
}

/// Change a user's names.
#[utoipa::path(
    method(put, patch),
    path = "/auth/users/{id}/",
    tag = "accounts",
    params(("id" = UserId, Path, description = "The user's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The updated user", body = DjoserUser),
        NotFound,
    )
)]
async fn update_user(
    State(accounts): State<Accounts>,
    visible: Visible,
    Form(names): Form<NamesChange>,
) -> ApiResult<Json<DjoserUser>> {
    change_names(&accounts, visible.target.id, names).await
}

/// Delete a user's account.
///
/// Needs the caller's own current password.
#[utoipa::path(
    delete,
    path = "/auth/users/{id}/",
    tag = "accounts",
    params(("id" = UserId, Path, description = "The user's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = NO_CONTENT, description = "Deleted"),
        NotFound,
    )
)]
async fn delete_user(
    State(accounts): State<Accounts>,
    visible: Visible,
    Form(password): Form<CurrentPassword>,
) -> ApiResult<StatusCode> {
    delete_account(&accounts, &visible.caller, &visible.target, password).await
}

/// Change the caller's password.
#[utoipa::path(
    post,
    path = "/auth/users/set_password/",
    tag = "accounts",
    security(("jwtAuth" = [])),
    responses((status = NO_CONTENT, description = "Changed"))
)]
async fn set_password(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    Form(change): Form<PasswordChange>,
) -> ApiResult<StatusCode> {
    accounts
        .check_current_password(&user.0, "current_password", change.current_password)
        .await?;
    accounts.set_password(&user.0, change.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Email a password reset link.
///
/// Answers 204 for unknown addresses too, so accounts cannot be probed.
#[utoipa::path(
    post,
    path = "/auth/users/reset_password/",
    tag = "accounts",
    responses(
        (status = NO_CONTENT, description = "Sent, if the account exists"),
        (status = TOO_MANY_REQUESTS, description = "Too many resets from this address (see `Retry-After`)", body = Detail),
    )
)]
async fn reset_password(
    State(accounts): State<Accounts>,
    _: Throttle<PasswordResets>,
    Form(request): Form<ResetRequest>,
) -> ApiResult<StatusCode> {
    accounts.request_reset(&request.email).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a new password with a reset link's uid and token.
#[utoipa::path(
    post,
    path = "/auth/users/reset_password_confirm/",
    tag = "accounts",
    responses(
        (status = NO_CONTENT, description = "Changed"),
        (status = TOO_MANY_REQUESTS, description = "Too many resets from this address (see `Retry-After`)", body = Detail),
    )
)]
async fn reset_password_confirm(
    State(accounts): State<Accounts>,
    _: Throttle<PasswordResets>,
    Form(confirm): Form<ResetConfirm>,
) -> ApiResult<StatusCode> {
    accounts
        .confirm_reset(&confirm.uid, &confirm.token, confirm.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log in: a refresh and an access token.
#[utoipa::path(
    post,
    path = "/auth/jwt/create/",
    tag = "tokens",
    responses(
        (status = OK, description = "The token pair", body = TokenPair),
        (status = UNAUTHORIZED, description = "No active account found with the given credentials", body = Detail),
        (status = TOO_MANY_REQUESTS, description = "Too many attempts from this address, or too many failed logins on this account: the account's next attempt must wait (see `Retry-After`)", body = Detail),
    )
)]
async fn jwt_create(
    State(accounts): State<Accounts>,
    State(limits): State<RateLimits>,
    ClientIp(ip): ClientIp,
    Form(credentials): Form<Credentials>,
) -> ApiResult<Json<TokenPair>> {
    // After the body: a malformed request does not spend a login attempt.
    limits.check(Scope::Login, ip)?;
    let user = accounts.authenticate(&credentials.email, credentials.password).await?;
    Ok(Json(accounts.issue_pair(&user)))
}

/// A new access token from a refresh token.
#[utoipa::path(
    post,
    path = "/auth/jwt/refresh/",
    tag = "tokens",
    responses(
        (status = OK, description = "The new access token (and, with rotation, a new refresh token)", body = Refreshed),
        (status = UNAUTHORIZED, description = "Token is invalid, expired or blacklisted", body = Detail),
    )
)]
async fn jwt_refresh(State(accounts): State<Accounts>, Form(token): Form<RefreshToken>) -> ApiResult<Json<Refreshed>> {
    let (access, refresh) = accounts.refresh(&token.refresh).await?;
    Ok(Json(Refreshed { access, refresh }))
}

/// Check a token.
#[utoipa::path(
    post,
    path = "/auth/jwt/verify/",
    tag = "tokens",
    responses(
        (status = OK, description = "Valid", body = Empty),
        (status = UNAUTHORIZED, description = "Token is invalid, expired or blacklisted", body = Detail),
    )
)]
async fn jwt_verify(State(accounts): State<Accounts>, Form(token): Form<AnyToken>) -> ApiResult<Json<Empty>> {
    accounts.verify(&token.token).await?;
    Ok(Json(Empty {}))
}

/// Revoke a refresh token (log out).
#[utoipa::path(
    post,
    path = "/auth/jwt/blacklist/",
    tag = "tokens",
    responses(
        (status = OK, description = "Revoked", body = Empty),
        (status = UNAUTHORIZED, description = "Token is invalid, expired or blacklisted", body = Detail),
    )
)]
async fn jwt_blacklist(State(accounts): State<Accounts>, Form(token): Form<RefreshToken>) -> ApiResult<Json<Empty>> {
    accounts.blacklist(&token.refresh).await?;
    Ok(Json(Empty {}))
}
