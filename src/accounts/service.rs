//! Account rules: registration, login, tokens, password changes and resets. Handlers parse;
//! these functions decide.

use uuid::Uuid;

use super::email::{self, Email};
use super::policy::{self, Attributes};
use crate::app::AppState;
use crate::auth::jwt::{Claims, TokenType};
use crate::auth::password::{self, Verdict};
use crate::auth::reset;
use crate::error::{ApiError, ApiResult};
use crate::mail;
use crate::store::users::{self, NewUser, UserRow};
use crate::store::{is_unique_violation, tokens};

pub const NAME_MAX: usize = 150;

pub struct Registration {
    pub email: Email,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// Password rule messages for a would-be password of this user (empty when acceptable).
pub fn password_problems(password: &str, email: &str, first_name: &str, last_name: &str) -> Vec<String> {
    policy::check(
        password,
        &Attributes {
            email,
            first_name,
            last_name,
        },
    )
}

pub async fn register(state: &AppState, reg: Registration) -> ApiResult<UserRow> {
    let problems = password_problems(&reg.password, reg.email.as_str(), &reg.first_name, &reg.last_name);
    if !problems.is_empty() {
        return Err(ApiError::Validation([("password".to_string(), problems)].into()));
    }
    create_user(state, reg).await
}

/// Creates a user without the password policy (admin commands may choose to bypass it).
pub async fn create_user(state: &AppState, reg: Registration) -> ApiResult<UserRow> {
    if users::by_email(&state.db, reg.email.as_str()).await?.is_some() {
        return Err(duplicate_email());
    }
    let hash = password::hash(reg.password).await?;
    let new = NewUser {
        email: reg.email.as_str(),
        password_hash: &hash,
        first_name: &reg.first_name,
        last_name: &reg.last_name,
        is_staff: reg.is_staff,
        is_superuser: reg.is_superuser,
    };
    match users::insert(&state.db, &new).await {
        Ok(user) => {
            metrics::counter!("causerie_users_registered_total").increment(1);
            Ok(user)
        }
        // Two registrations raced past the check above.
        Err(err) if is_unique_violation(&err) => Err(duplicate_email()),
        Err(err) => Err(err.into()),
    }
}

fn duplicate_email() -> ApiError {
    ApiError::field("email", "user with this email address already exists.")
}

/// Checks credentials; an unknown email, a wrong password and an inactive account all look the
/// same to the client. A Django hash is upgraded to argon2id on success.
pub async fn authenticate(state: &AppState, email: &str, password: String) -> ApiResult<UserRow> {
    let user = match Email::parse(email) {
        Some(email) => users::by_email(&state.db, email.as_str()).await?,
        None => None,
    };
    let verdict = password::verify(password.clone(), user.as_ref().map(|u| u.password.clone())).await?;
    let user = match (user, verdict) {
        (Some(user), Verdict::Valid { needs_rehash }) if user.is_active => {
            if needs_rehash {
                let hash = password::hash(password).await?;
                users::set_password(&state.db, user.id, &hash).await?;
            }
            user
        }
        _ => return Err(ApiError::BadCredentials),
    };
    users::record_login(&state.db, user.id).await?;
    Ok(user)
}

pub struct TokenPair {
    pub refresh: String,
    pub access: String,
}

pub fn issue_pair(state: &AppState, user: Uuid) -> TokenPair {
    TokenPair {
        refresh: state.tokens.refresh(user),
        access: state.tokens.access(user),
    }
}

/// A refresh token that is valid, unexpired, not blacklisted, and whose user is still active.
async fn live_refresh(state: &AppState, token: &str) -> ApiResult<(Claims, Uuid)> {
    let claims = state
        .tokens
        .decode(token, Some(TokenType::Refresh))
        .ok_or(ApiError::TokenNotValid)?;
    if tokens::is_blacklisted(&state.db, &claims.jti).await? {
        return Err(ApiError::TokenBlacklisted);
    }
    let user_id = claims.user_uuid().ok_or(ApiError::TokenNotValid)?;
    match users::by_id(&state.db, user_id).await? {
        Some(user) if user.is_active => Ok((claims, user_id)),
        _ => Err(ApiError::BadCredentials),
    }
}

/// SimpleJWT's refresh: a new access token, and with rotation a new refresh token too (the old
/// one blacklisted when configured, so it works once).
pub async fn refresh(state: &AppState, token: &str) -> ApiResult<(String, Option<String>)> {
    let (claims, user_id) = live_refresh(state, token).await?;
    let access = state.tokens.access(user_id);
    if !state.config.rotate_refresh_tokens {
        return Ok((access, None));
    }
    if state.config.blacklist_after_rotation
        && !tokens::blacklist(&state.db, &claims.jti, user_id, claims.expires_at()).await?
    {
        // Another request rotated this token first.
        return Err(ApiError::TokenBlacklisted);
    }
    Ok((access, Some(state.tokens.refresh(user_id))))
}

/// `/auth/jwt/verify/`: any valid token of either type; a blacklisted refresh token is not valid.
pub async fn verify(state: &AppState, token: &str) -> ApiResult<()> {
    let claims = state.tokens.decode(token, None).ok_or(ApiError::TokenNotValid)?;
    if claims.token_type == TokenType::Refresh && tokens::is_blacklisted(&state.db, &claims.jti).await? {
        return Err(ApiError::TokenBlacklisted);
    }
    Ok(())
}

/// Logout: the refresh token can no longer be used.
pub async fn blacklist(state: &AppState, token: &str) -> ApiResult<()> {
    let claims = state
        .tokens
        .decode(token, Some(TokenType::Refresh))
        .ok_or(ApiError::TokenNotValid)?;
    let user_id = claims.user_uuid().ok_or(ApiError::TokenNotValid)?;
    tokens::blacklist(&state.db, &claims.jti, user_id, claims.expires_at()).await?;
    Ok(())
}

/// Checks the caller's current password for sensitive changes.
pub async fn check_current_password(user: &UserRow, field: &str, password: String) -> ApiResult<()> {
    match password::verify(password, Some(user.password.clone())).await? {
        Verdict::Valid { .. } => Ok(()),
        Verdict::Invalid => Err(ApiError::field(field, "Invalid password.")),
    }
}

pub async fn set_password(state: &AppState, user: &UserRow, new_password: String) -> ApiResult<()> {
    let problems = password_problems(&new_password, &user.email, &user.first_name, &user.last_name);
    if !problems.is_empty() {
        return Err(ApiError::Validation([("new_password".to_string(), problems)].into()));
    }
    let hash = password::hash(new_password).await?;
    users::set_password(&state.db, user.id, &hash).await?;
    Ok(())
}

/// Sends a reset link to an active account with this email; says nothing about whether it exists.
pub async fn request_reset(state: &AppState, email: &Email) -> ApiResult<()> {
    let Some(user) = users::by_email(&state.db, email.as_str()).await? else {
        return Ok(());
    };
    if !user.is_active {
        return Ok(());
    }
    let path = state
        .config
        .password_reset_confirm_url
        .replace("{uid}", &reset::encode_uid(user.id))
        .replace("{token}", &reset::make_token(&state.secret, &user));
    let link = format!(
        "{}/{}",
        state.config.public_url.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    state.mailer.send(mail::Email {
        to: user.email.clone(),
        subject: "Password reset on Causerie".into(),
        body: format!(
            "You're receiving this email because you requested a password reset for your account.\n\n\
             Please go to the following page and choose a new password:\n\n{link}\n\n\
             The link works once and expires in {} days.\n",
            reset::TIMEOUT_SECS / 86400
        ),
    });
    Ok(())
}

pub async fn confirm_reset(state: &AppState, uid: &str, token: &str, new_password: String) -> ApiResult<()> {
    let user = match reset::decode_uid(uid) {
        Some(id) => users::by_id(&state.db, id).await?,
        None => None,
    };
    let Some(user) = user.filter(|u| u.is_active) else {
        return Err(ApiError::field("uid", "Invalid user id or user doesn't exist."));
    };
    if !reset::check_token(&state.secret, &user, token) {
        return Err(ApiError::field("token", "Invalid token for given user."));
    }
    set_password(state, &user, new_password).await
}

pub fn parse_email(raw: &str) -> ApiResult<Email> {
    Email::parse(raw).ok_or_else(|| ApiError::field("email", email::INVALID))
}
