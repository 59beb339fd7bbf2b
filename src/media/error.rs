//! Why the media service refused or failed; turned into an HTTP answer once
//! (`chats::attachments`) and into chat refusals once (`chats` links attachments to messages).

use crate::store::is_unavailable;

#[derive(Debug, thiserror::Error)]
pub(crate) enum MediaError {
    /// No such attachment, or the caller may not read it (the two look the same).
    #[error("no such attachment")]
    NotFound,
    #[error("upload larger than {max} bytes")]
    TooLarge { max: u64 },
    #[error("content type {0} is not accepted")]
    TypeRefused(String),
    #[error("daily upload quota used up; frees up in {retry_after} s")]
    QuotaExceeded { retry_after: u64 },
    #[error("the image could not be read")]
    BadImage,
    #[error("image over {max} pixels")]
    TooManyPixels { max: u64 },
    /// An attachment that the message may not carry (someone else's, or posted elsewhere).
    #[error("attachment {0} cannot be used here")]
    NotYours(String),
    #[error("storage is unavailable")]
    Unavailable,
    #[error("object store")]
    Objects(#[source] object_store::Error),
    #[error("storage failed")]
    Store(#[source] sqlx::Error),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl MediaError {
    /// The cause an upload refusal is counted under in `/metrics`.
    pub(crate) fn refusal_cause(&self) -> Option<&'static str> {
        Some(match self {
            MediaError::TooLarge { .. } => "size",
            MediaError::TypeRefused(_) => "type",
            MediaError::QuotaExceeded { .. } => "quota",
            MediaError::BadImage | MediaError::TooManyPixels { .. } => "image",
            _ => return None,
        })
    }
}

impl From<sqlx::Error> for MediaError {
    fn from(err: sqlx::Error) -> MediaError {
        if is_unavailable(&err) {
            MediaError::Unavailable
        } else {
            MediaError::Store(err)
        }
    }
}

impl From<object_store::Error> for MediaError {
    fn from(err: object_store::Error) -> MediaError {
        match err {
            object_store::Error::NotFound { .. } => MediaError::NotFound,
            other => MediaError::Objects(other),
        }
    }
}

pub(crate) type MediaResult<T> = Result<T, MediaError>;
