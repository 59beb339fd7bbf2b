//! Why an admin request was refused or failed. Rendered as an HTML page in one place
//! (`html.rs`); a handler that re-shows its form catches `Invalid` first.

use crate::accounts::AccountError;
use crate::chats::ChatError;
use crate::media::MediaError;
use crate::push::PushError;
use crate::store::is_unavailable;
use crate::validation::{field_error, FieldErrors};

#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    #[error("no such object")]
    NotFound,
    /// An admin rule refused the action (e.g. only superusers change superusers).
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// Fields to correct.
    #[error("invalid fields: {}", crate::validation::describe(.0))]
    Invalid(FieldErrors),
    /// A form body that is not a form, or lacks fields the page always sends.
    #[error("malformed form")]
    BadForm,
    /// A POST without the session's CSRF token, or with another one.
    #[error("CSRF token missing or wrong")]
    BadCsrf,
    #[error("wrong credentials")]
    BadCredentials,
    /// Correct credentials of an account that is not staff.
    #[error("not a staff account")]
    NotStaff,
    /// Too many login attempts from this address: retry after this many seconds.
    #[error("throttled for {0} s")]
    Throttled(u64),
    #[error("storage is unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(anyhow::Error),
}

pub(crate) type AdminResult<T> = Result<T, AdminError>;

impl AdminError {
    pub(crate) fn field(field: &str, message: impl Into<String>) -> AdminError {
        AdminError::Invalid(field_error(field, message))
    }
}

impl From<AccountError> for AdminError {
    fn from(err: AccountError) -> AdminError {
        match err {
            AccountError::Invalid(fields) => AdminError::Invalid(fields),
            AccountError::BadCredentials => AdminError::BadCredentials,
            AccountError::UserNotFound => AdminError::NotFound,
            AccountError::Throttled(wait) => AdminError::Throttled(wait),
            AccountError::Unavailable => AdminError::Unavailable,
            other => AdminError::Internal(anyhow::Error::new(other).context("account service")),
        }
    }
}

impl From<ChatError> for AdminError {
    fn from(err: ChatError) -> AdminError {
        match err {
            ChatError::NotFound => AdminError::NotFound,
            ChatError::Forbidden => AdminError::Forbidden("The chat rules do not allow this.".into()),
            ChatError::Invalid { field, detail } => AdminError::field(field, detail),
            ChatError::NotAGroup => AdminError::field("chat", "This is not a group."),
            ChatError::Refused(refusal) => AdminError::field("message", refusal.detail),
            ChatError::InvalidSeq { seq } => AdminError::field("seq", format!("No sequence {seq} in this chat.")),
            ChatError::Unavailable => AdminError::Unavailable,
            ChatError::Throttled => AdminError::Throttled(1),
            ChatError::Accounts(err) => err.into(),
            ChatError::Media(err) => err.into(),
            other => AdminError::Internal(anyhow::Error::new(other).context("chat service")),
        }
    }
}

impl From<MediaError> for AdminError {
    fn from(err: MediaError) -> AdminError {
        match err {
            MediaError::NotFound => AdminError::NotFound,
            MediaError::Unavailable => AdminError::Unavailable,
            other => AdminError::Internal(anyhow::Error::new(other).context("media service")),
        }
    }
}

impl From<PushError> for AdminError {
    fn from(err: PushError) -> AdminError {
        match err {
            PushError::NotFound => AdminError::NotFound,
            PushError::Unavailable => AdminError::Unavailable,
            other => AdminError::Internal(anyhow::Error::new(other).context("push service")),
        }
    }
}

impl From<sqlx::Error> for AdminError {
    fn from(err: sqlx::Error) -> AdminError {
        if is_unavailable(&err) {
            AdminError::Unavailable
        } else {
            AdminError::Internal(anyhow::Error::new(err).context("admin storage"))
        }
    }
}
