//! The one place where failures become HTTP answers shaped like Django REST Framework's.

//!
//! Each domain module converts its own error into this type, once, beside its routes
//! (`accounts::routes`, `chats::routes`); this module knows no domain.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::validation::{field_error, FieldErrors};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("JSON parse error - {0}")]
    JsonParse(String),
    #[error("authentication credentials were not provided")]
    NotAuthenticated,
    /// `Authorization: Bearer` with no token, or with more than one part after it.
    #[error("authorization header must contain two space-delimited values")]
    BadAuthorizationHeader,
    /// A bad, expired or wrong-type token on a protected endpoint.
    #[error("token not valid for any token type")]
    InvalidAccessToken,
    /// A bad token given to the refresh / verify / blacklist endpoints.
    #[error("token is invalid or expired")]
    TokenNotValid,
    #[error("token is blacklisted")]
    TokenBlacklisted,
    #[error("no active account found with the given credentials")]
    BadCredentials,
    #[error("user is inactive")]
    UserInactive,
    #[error("user not found")]
    UserNotFound,
    #[error("permission denied")]
    PermissionDenied,
    #[error("not found")]
    NotFound,
    #[error("invalid page")]
    InvalidPage,
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request body not received in time")]
    BodyTimeout,
    #[error("throttled for {0} s")]
    Throttled(u64),
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub(crate) fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Validation(field_error(field, message))
    }

    pub(crate) fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            Validation(_) | BadRequest(_) | JsonParse(_) => StatusCode::BAD_REQUEST,
            NotAuthenticated
            | BadAuthorizationHeader
            | InvalidAccessToken
            | TokenNotValid
            | TokenBlacklisted
            | BadCredentials
            | UserInactive
            | UserNotFound => StatusCode::UNAUTHORIZED,
            PermissionDenied => StatusCode::FORBIDDEN,
            NotFound | InvalidPage => StatusCode::NOT_FOUND,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        use ApiError::*;
        match self {
            Validation(errors) => json!(errors),
            BadRequest(detail) => json!({ "detail": detail }),
            JsonParse(detail) => json!({ "detail": format!("JSON parse error - {detail}") }),
            NotAuthenticated => {
                json!({ "detail": "Authentication credentials were not provided." })
            }
            BadAuthorizationHeader => json!({
                "detail": "Authorization header must contain two space-delimited values",
                "code": "bad_authorization_header"
            }),
            InvalidAccessToken => json!({
                "detail": "Given token not valid for any token type",
                "code": "token_not_valid",
                "messages": [{
                    "token_class": "AccessToken",
                    "token_type": "access",
                    "message": "Token is invalid or expired"
                }]
            }),
            TokenNotValid => {
                json!({ "detail": "Token is invalid or expired", "code": "token_not_valid" })
            }
            TokenBlacklisted => {
                json!({ "detail": "Token is blacklisted", "code": "token_not_valid" })
            }
            BadCredentials => {
                json!({ "detail": "No active account found with the given credentials" })
            }
            UserInactive => json!({ "detail": "User is inactive", "code": "user_inactive" }),
            UserNotFound => json!({ "detail": "User not found", "code": "user_not_found" }),
            PermissionDenied => {
                json!({ "detail": "You do not have permission to perform this action." })
            }
            NotFound => json!({ "detail": "Not found." }),
            InvalidPage => json!({ "detail": "Invalid page." }),
            MethodNotAllowed(method) => {
                json!({ "detail": format!("Method \"{method}\" not allowed.") })
            }
            UnsupportedMediaType(ct) => {
                json!({ "detail": format!("Unsupported media type \"{ct}\" in request.") })
            }
            PayloadTooLarge => json!({ "detail": "Request body is too large." }),
            BodyTimeout => json!({ "detail": "The request body was not received in time." }),
            Throttled(wait) => json!({
                "detail": format!("Request was throttled. Expected available in {wait} second{}.", if *wait == 1 { "" } else { "s" })
            }),
            Unavailable => json!({ "detail": "Service temporarily unavailable, try again later." }),
            Internal(_) => json!({ "detail": "Internal server error." }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error")
            }
            ApiError::Unavailable => {
                tracing::warn!("request failed: a backing service is unavailable")
            }
            _ => {}
        }
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"api\""),
            );
        }
        if let ApiError::Throttled(wait) = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        response
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
