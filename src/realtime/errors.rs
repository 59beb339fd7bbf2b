//! How service failures look on a socket: the one mapping from domain errors to error frames.

use crate::accounts::AccountError;
use crate::chats::ChatError;
use crate::wire::ErrorBody;

impl From<ChatError> for ErrorBody {
    fn from(err: ChatError) -> ErrorBody {
        match err {
            ChatError::NotFound => ErrorBody::new("not_found", "No such chat, or you are not one of its members."),
            ChatError::Forbidden => ErrorBody::new("forbidden", "You do not have permission to perform this action."),
            ChatError::Refused(refusal) => ErrorBody::new(refusal.code, refusal.detail),
            ChatError::Invalid { field, detail } => ErrorBody::new("invalid_frame", format!("{field}: {detail}")),
            ChatError::InvalidSeq { seq } => ErrorBody::new("invalid_seq", format!("No message {seq} in this chat.")),
            ChatError::NotAGroup => ErrorBody::new("invalid_frame", "Members of a two-person chat cannot change."),
            ChatError::Throttled => ErrorBody::new(
                "rate_limited",
                "Too many messages per second from your account (all its sockets together); \
                 the message was not stored. Retry in a second.",
            ),
            ChatError::Unavailable | ChatError::Accounts(AccountError::Unavailable) => ErrorBody::new(
                "unavailable",
                "Storage is unavailable; the message was not stored. Retry.",
            ),
            ChatError::WriteFailed(_) | ChatError::Store(_) | ChatError::Accounts(_) => {
                tracing::error!(error = %err, source = ?std::error::Error::source(&err), "socket request failed");
                ErrorBody::new("internal", "Internal server error; the message was not stored.")
            }
        }
    }
}
