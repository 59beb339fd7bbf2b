//! How service failures look on a socket: the one mapping from domain errors to error frames.

use super::protocol::ErrorFrame;
use crate::accounts::AccountError;
use crate::chats::ChatError;

impl From<ChatError> for ErrorFrame {
    fn from(err: ChatError) -> ErrorFrame {
        match err {
            ChatError::NotFound => ErrorFrame::new("not_found", "No such chat, or you are not one of its members."),
            ChatError::Forbidden => ErrorFrame::new("forbidden", "You do not have permission to perform this action."),
            ChatError::Refused(refusal) => ErrorFrame::new(refusal.code, refusal.detail),
            ChatError::Invalid { field, detail } => ErrorFrame::new("invalid_frame", format!("{field}: {detail}")),
            ChatError::InvalidSeq { seq } => ErrorFrame::new("invalid_seq", format!("No message {seq} in this chat.")),
            ChatError::NotAGroup => ErrorFrame::new("invalid_frame", "Members of a two-person chat cannot change."),
            ChatError::Unavailable | ChatError::Accounts(AccountError::Unavailable) => ErrorFrame::new(
                "unavailable",
                "Storage is unavailable; the message was not stored. Retry.",
            ),
            ChatError::WriteFailed(_) | ChatError::Store(_) | ChatError::Accounts(_) => {
                tracing::error!(error = %err, source = ?std::error::Error::source(&err), "socket request failed");
                ErrorFrame::new("internal", "Internal server error; the message was not stored.")
            }
        }
    }
}
