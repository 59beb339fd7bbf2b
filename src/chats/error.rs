//! Why the chat service refused or failed. The HTTP answer (`chats::routes`) and the WebSocket
//! error frame (`realtime::errors`) are each derived from this in one place.

use super::draft::Refusal;
use crate::accounts::AccountError;
use crate::store::is_unavailable;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ChatError {
    /// No such chat or message, or the caller is not a member (the two look the same).
    #[error("no such chat or message, or not a member")]
    NotFound,
    #[error("not allowed")]
    Forbidden,
    /// A message that breaks the message rules.
    #[error("message refused: {}", .0.detail)]
    Refused(Refusal),
    /// A field of a request that names something unusable (`chatWithUser`, `members`, `title`).
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error("sequence {seq} is not in this chat")]
    InvalidSeq { seq: i64 },
    #[error("the members of a two-person chat cannot change")]
    NotAGroup,
    /// The author is over `user_messages_per_second`: nothing stored, try again in a second.
    #[error("too many messages per second from this user")]
    Throttled,
    #[error("storage is unavailable")]
    Unavailable,
    #[error("storing messages failed: {0}")]
    WriteFailed(String),
    #[error("storage failed")]
    Store(#[source] sqlx::Error),
    #[error(transparent)]
    Accounts(#[from] AccountError),
    /// An attachment the message names that cannot be used, or a photo refused as an upload.
    #[error(transparent)]
    Media(crate::media::MediaError),
}

impl ChatError {
    pub(crate) fn invalid(field: &'static str, detail: impl Into<String>) -> ChatError {
        ChatError::Invalid {
            field,
            detail: detail.into(),
        }
    }
}

impl From<sqlx::Error> for ChatError {
    fn from(err: sqlx::Error) -> ChatError {
        if is_unavailable(&err) {
            ChatError::Unavailable
        } else {
            ChatError::Store(err)
        }
    }
}

impl From<Refusal> for ChatError {
    fn from(refusal: Refusal) -> ChatError {
        ChatError::Refused(refusal)
    }
}

pub(crate) type ChatResult<T> = Result<T, ChatError>;
