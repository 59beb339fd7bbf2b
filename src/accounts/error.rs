//! Why the account service refused or failed; rendered for HTTP in `accounts::routes` and for
//! the WebSocket handshake in `realtime::routes`.

use crate::store::is_unavailable;
use crate::validation::{field_error, FieldErrors};

#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountError {
    /// Fields a client must correct (DRF's `{"field": [...]}`).
    #[error("invalid fields: {}", crate::validation::describe(.0))]
    Invalid(FieldErrors),
    /// A bad, expired or wrong-type token used as an access token.
    #[error("access token not valid")]
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
    /// Too many failed logins on this account: try again in this many seconds.
    #[error("login attempts on this account throttled for {0} s")]
    Throttled(u64),
    #[error("storage is unavailable")]
    Unavailable,
    #[error("storage failed")]
    Store(#[source] sqlx::Error),
    #[error("password hashing failed")]
    Hashing(#[source] anyhow::Error),
}

impl AccountError {
    pub(crate) fn field(field: &str, message: impl Into<String>) -> AccountError {
        AccountError::Invalid(field_error(field, message))
    }
}

impl From<sqlx::Error> for AccountError {
    fn from(err: sqlx::Error) -> AccountError {
        if is_unavailable(&err) {
            AccountError::Unavailable
        } else {
            AccountError::Store(err)
        }
    }
}

pub(crate) type AccountResult<T> = Result<T, AccountError>;
