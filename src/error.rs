//! The one place where failures become HTTP answers shaped like Django REST Framework's.

//!
//! Each domain module converts its own error into this type, once, beside its routes
//! (`accounts::routes`, `chats::routes`); this module knows no domain.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

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

    fn body(self) -> ErrorBody {
        use ApiError::*;
        let detail = |text: &str| ErrorBody::Detail(Detail::new(text));
        match self {
            Validation(errors) => ErrorBody::Fields(FieldErrorsBody(errors)),
            BadRequest(text) => detail(&text),
            JsonParse(text) => detail(&format!("JSON parse error - {text}")),
            NotAuthenticated => detail("Authentication credentials were not provided."),
            BadAuthorizationHeader => ErrorBody::Detail(
                Detail::new("Authorization header must contain two space-delimited values")
                    .code("bad_authorization_header"),
            ),
            InvalidAccessToken => ErrorBody::Detail(Detail {
                messages: Some(vec![TokenMessage {
                    token_class: "AccessToken",
                    token_type: "access",
                    message: "Token is invalid or expired",
                }]),
                ..Detail::new("Given token not valid for any token type").code("token_not_valid")
            }),
            TokenNotValid => ErrorBody::Detail(Detail::new("Token is invalid or expired").code("token_not_valid")),
            TokenBlacklisted => ErrorBody::Detail(Detail::new("Token is blacklisted").code("token_not_valid")),
            BadCredentials => detail("No active account found with the given credentials"),
            UserInactive => ErrorBody::Detail(Detail::new("User is inactive").code("user_inactive")),
            UserNotFound => ErrorBody::Detail(Detail::new("User not found").code("user_not_found")),
            PermissionDenied => detail("You do not have permission to perform this action."),
            NotFound => detail("Not found."),
            InvalidPage => detail("Invalid page."),
            MethodNotAllowed(method) => detail(&format!("Method \"{method}\" not allowed.")),
            UnsupportedMediaType(ct) => detail(&format!("Unsupported media type \"{ct}\" in request.")),
            PayloadTooLarge => detail("Request body is too large."),
            BodyTimeout => detail("The request body was not received in time."),
            Throttled(wait) => detail(&format!(
                "Request was throttled. Expected available in {wait} second{}.",
                if wait == 1 { "" } else { "s" }
            )),
            Unavailable => detail("Service temporarily unavailable, try again later."),
            Internal(_) => detail("Internal server error."),
        }
    }
}

/// What an error answers with: field errors, or a `detail`.
#[derive(Serialize)]
#[serde(untagged)]
enum ErrorBody {
    Fields(FieldErrorsBody),
    Detail(Detail),
}

/// DRF's `{"detail": …}`; SimpleJWT adds `code`, and `messages` for a refused access token.
/// The keys in SimpleJWT's order (its `DetailDictMixin` writes `detail`, then `code`, then the
/// rest).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Detail {
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub code: Option<&'static str>,
    /// Which token types were tried and why each refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub messages: Option<Vec<TokenMessage>>,
}

impl Detail {
    pub(crate) fn new(detail: &str) -> Detail {
        Detail {
            detail: detail.to_string(),
            code: None,
            messages: None,
        }
    }

    fn code(self, code: &'static str) -> Detail {
        Detail {
            code: Some(code),
            ..self
        }
    }
}

/// One entry of SimpleJWT's `messages`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenMessage {
    pub token_class: &'static str,
    pub token_type: &'static str,
    pub message: &'static str,
}

/// Validation errors, DRF's `{"field": ["message", …]}`.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct FieldErrorsBody(FieldErrors);

impl utoipa::PartialSchema for FieldErrorsBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Validation errors: each field name maps to its messages \
                 (`non_field_errors` for the body as a whole).",
            ))
            .additional_properties(Some(AdditionalProperties::RefOr(
                ArrayBuilder::new().items(String::schema()).into(),
            )))
            .examples([serde_json::json!({ "email": ["This field is required."] })])
            .into()
    }
}

impl ToSchema for FieldErrorsBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "FieldErrors".into()
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
        let retry_after = match self {
            ApiError::Throttled(wait) => Some(wait),
            _ => None,
        };
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"api\""),
            );
        }
        if let Some(wait) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        response
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
