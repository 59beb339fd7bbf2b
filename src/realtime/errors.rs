//! How service failures look on a socket: the one mapping from domain errors to error frames.

use crate::accounts::AccountError;
use crate::chats::ChatError;
use crate::media::MediaError;
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
            ChatError::Media(media) => media_error(media),
            ChatError::WriteFailed(_) | ChatError::Store(_) | ChatError::Accounts(_) => {
                tracing::error!(error = %err, source = ?std::error::Error::source(&err), "socket request failed");
                ErrorBody::new("internal", "Internal server error; the message was not stored.")
            }
        }
    }
}

/// A photo or attachment refused: the upload's reasons, with codes of their own.
fn media_error(err: MediaError) -> ErrorBody {
    match err {
        MediaError::NotFound | MediaError::NotYours(_) => ErrorBody::new(
            "invalid_attachments",
            "An attachment is not one of your uploads for this chat.",
        ),
        MediaError::TooLarge { max } => {
            ErrorBody::new("attachment_too_large", format!("The file is larger than {max} bytes."))
        }
        MediaError::TypeRefused(kind) => ErrorBody::new(
            "attachment_type_refused",
            format!("Files of type \"{kind}\" are not accepted."),
        ),
        MediaError::QuotaExceeded { retry_after } => ErrorBody::new(
            "attachment_quota_exceeded",
            format!("Daily upload quota reached; try again in {retry_after} seconds."),
        ),
        MediaError::BadImage => ErrorBody::new("invalid_attachment", "The photo could not be read as an image."),
        MediaError::TooManyPixels { max } => {
            ErrorBody::new("invalid_attachment", format!("The image has more than {max} pixels."))
        }
        MediaError::Unavailable => ErrorBody::new(
            "unavailable",
            "Storage is unavailable; the message was not stored. Retry.",
        ),
        other @ (MediaError::Objects(_) | MediaError::Store(_) | MediaError::Internal(_)) => {
            tracing::error!(error = %other, source = ?std::error::Error::source(&other), "storing an attachment failed");
            ErrorBody::new("internal", "Internal server error; the message was not stored.")
        }
    }
}
