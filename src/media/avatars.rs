//! Avatars: a user's picture is one of their own uploaded images, held by the `attachments`
//! row (`avatar_of`) so that the sweeper leaves it alone, and referred to from the user's
//! `avatar` by a marker that becomes a signed URL whenever the user is shown. Who may see a
//! user may see their avatar; that is decided by who shows the user (`chats`).

use super::error::{MediaError, MediaResult};
use super::{Media, Variant};
use crate::ids::{AttachmentId, UserId};
use crate::store::attachments::{self, AttachmentRow};

const MARKER: &str = "causerie:avatar:";

/// What a user's `avatar` stores for an avatar that is one of their uploads.
pub(crate) fn encode(id: AttachmentId) -> String {
    format!("{MARKER}{id}")
}

/// The upload a stored `avatar` refers to (None: a URL kept from elsewhere, e.g. Django).
pub(crate) fn decode(stored: &str) -> Option<AttachmentId> {
    stored.strip_prefix(MARKER)?.parse().ok()
}

pub(crate) fn is_marked(stored: &str) -> bool {
    stored.starts_with(MARKER)
}

impl Media {
    /// Makes `id`, an image `owner` uploaded and has not posted (nor meant for a chat), their
    /// avatar. The previous one stays until [`Media::drop_avatars`] once the user points at the
    /// new one.
    pub(crate) async fn adopt_avatar(&self, owner: UserId, id: AttachmentId) -> MediaResult<AttachmentRow> {
        let row = match attachments::by_id(&self.0.db, id).await? {
            Some(row)
                if row.owner == Some(owner)
                    && (row.avatar_of == Some(owner) || (row.chat_id.is_none() && row.attached_at.is_none())) =>
            {
                row
            }
            _ => return Err(MediaError::NotYours(id.to_string())),
        };
        if !row.content_type.starts_with("image/") || row.thumb_size.is_none() {
            return Err(MediaError::BadImage);
        }
        if row.avatar_of != Some(owner) {
            attachments::mark_avatar(&self.0.db, id, owner).await?;
        }
        Ok(row)
    }

    /// Removes `owner`'s avatars other than `keep`, files included: the ones replaced or
    /// cleared (also any left behind by a change that failed half way).
    pub(crate) async fn drop_avatars(&self, owner: UserId, keep: Option<AttachmentId>) -> MediaResult<()> {
        for row in attachments::avatars_of(&self.0.db, owner).await? {
            if Some(row.id) != keep {
                self.remove_row(&row).await?;
            }
        }
        Ok(())
    }

    /// A stored `avatar` as clients see it: an upload becomes a signed URL of the file (steady,
    /// so that the pictures of a polled chat list stay in the browser's cache); anything else
    /// is shown as it was stored.
    pub(crate) fn show_avatar(&self, stored: Option<&str>) -> Option<String> {
        let stored = stored?;
        match decode(stored) {
            Some(id) => Some(self.signer().steady_url(id, Variant::Original)),
            None if is_marked(stored) => None,
            None => Some(stored.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let id = AttachmentId::new();
        assert_eq!(decode(&encode(id)), Some(id));
        assert!(is_marked(&encode(id)));
        assert_eq!(decode("avatars/alice.png"), None);
        assert_eq!(decode("causerie:avatar:not-an-id"), None);
    }
}
