//! Ids in the path, parsed into their types. A segment that is not a uuid is simply not found,
//! as Django's `<uuid:…>` routes answer (never a 400 naming the parser).

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::ids::{AttachmentId, ChatId, MessageId, UserId};

/// The path's ids: one id type for `{id}`, a pair for `{id}` and `{user}`.
pub(crate) struct Ids<T>(pub T);

/// What a route's path parameters parse into, in the order the path names them.
pub(crate) trait FromSegments: Sized {
    fn from_segments(segments: &[&str]) -> Option<Self>;
}

macro_rules! single_id {
    ($($id:ty),*) => {$(
        impl FromSegments for $id {
            fn from_segments(segments: &[&str]) -> Option<$id> {
                match segments {
                    [one] => one.parse().ok(),
                    _ => None,
                }
            }
        }
    )*};
}

single_id!(UserId, ChatId, MessageId, AttachmentId);

/// A group and one of its members (`/api/groups/{id}/members/{user}/`).
impl FromSegments for (ChatId, UserId) {
    fn from_segments(segments: &[&str]) -> Option<(ChatId, UserId)> {
        match segments {
            [chat, user] => Some((chat.parse().ok()?, user.parse().ok()?)),
            _ => None,
        }
    }
}

impl<S: Send + Sync, T: FromSegments> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let segments: Vec<&str> = params.iter().map(|(_, value)| value).collect();
        T::from_segments(&segments).map(Ids).ok_or(ApiError::NotFound)
    }
}
