//! `CurrentUser`: the user behind `Authorization: Bearer <access token>`, or a 401 shaped as
//! SimpleJWT's `JWTAuthentication` answers.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::jwt::TokenType;
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::users::{self, UserRow};

pub struct CurrentUser(pub UserRow);

impl CurrentUser {
    pub fn id(&self) -> Uuid {
        self.0.id
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut words = header.split_whitespace();
        // Like SimpleJWT: another scheme (or none) is "not provided", not "invalid".
        let (Some(scheme), token) = (words.next(), words.next()) else {
            return Err(ApiError::NotAuthenticated);
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::NotAuthenticated);
        }
        // SimpleJWT: exactly two parts, else 401 `bad_authorization_header`.
        let (Some(token), None) = (token, words.next()) else {
            return Err(ApiError::BadAuthorizationHeader);
        };
        let user = authenticate_access(state, token).await?;
        Ok(CurrentUser(user))
    }
}

/// Checks an access token and loads its active user (shared by HTTP and the WebSocket handshake).
pub async fn authenticate_access(state: &AppState, token: &str) -> Result<UserRow, ApiError> {
    let claims = state
        .tokens
        .decode(token, Some(TokenType::Access))
        .ok_or(ApiError::InvalidAccessToken)?;
    let user_id = claims.user_uuid().ok_or(ApiError::InvalidAccessToken)?;
    let user = users::by_id(&state.db, user_id).await?.ok_or(ApiError::UserNotFound)?;
    if !user.is_active {
        return Err(ApiError::UserInactive);
    }
    Ok(user)
}
