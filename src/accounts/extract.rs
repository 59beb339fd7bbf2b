//! `CurrentUser`: the user behind `Authorization: Bearer <access token>`, or a 401 shaped as
//! SimpleJWT's `JWTAuthentication` answers.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::Accounts;
use crate::error::ApiError;
use crate::ids::UserId;
use crate::store::users::UserRow;

/// The row is the auth cache's own (shared, not copied per request).
pub(crate) struct CurrentUser(pub Arc<UserRow>);

impl CurrentUser {
    pub(crate) fn id(&self) -> UserId {
        self.0.id
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    Accounts: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
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
        let accounts = Accounts::from_ref(state);
        Ok(CurrentUser(accounts.authenticate_access(token).await?))
    }
}
