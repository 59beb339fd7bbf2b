//! Avatars: a user's picture is one of their uploaded images (`PATCH /api/user/{id}/` with
//! `avatar` = the upload's id or `url`), shown as a signed URL wherever the user is shown: the
//! profile, the chat list's users and search results. Whoever may see a user may see their
//! avatar, so any signed-in user may also fetch it with a Bearer token (`attachment_for`).

use super::error::{ChatError, ChatResult};
use super::service::Chats;
use crate::accounts::view::{Profile, UserBrief};
use crate::ids::AttachmentId;
use crate::media::{avatars, MediaError};
use crate::store::users::{ProfileChange, UserRow};

/// What an `avatar` in a profile change asks for.
enum AvatarChange {
    Unchanged,
    Clear,
    Set(AttachmentId),
}

impl Chats {
    /// Changes the caller's own record. A new avatar must be an image the caller uploaded and
    /// has not posted; the one it replaces (or that is cleared) is removed, file included.
    pub(crate) async fn update_profile(&self, user: &UserRow, mut change: ProfileChange) -> ChatResult<UserRow> {
        let avatar = match change.avatar.take() {
            None => AvatarChange::Unchanged,
            Some(wanted) => self.avatar_change(user, wanted.as_deref()).await?,
        };
        let keep = match avatar {
            AvatarChange::Unchanged => None,
            AvatarChange::Clear => {
                change.avatar = Some(None);
                Some(None)
            }
            AvatarChange::Set(id) => {
                change.avatar = Some(Some(avatars::encode(id)));
                Some(Some(id))
            }
        };
        let updated = if change.is_empty() {
            user.clone()
        } else {
            self.accounts()
                .update_profile(user.id, &change)
                .await?
                .ok_or(ChatError::NotFound)?
        };
        if let Some(keep) = keep {
            // The change is stored; a file left behind is removed by the next change.
            if let Err(err) = self.media().drop_avatars(user.id, keep).await {
                tracing::warn!(user = %user.id, error = %err, "could not remove a replaced avatar");
            }
        }
        Ok(updated)
    }

    async fn avatar_change(&self, user: &UserRow, wanted: Option<&str>) -> ChatResult<AvatarChange> {
        let Some(wanted) = wanted.map(str::trim).filter(|w| !w.is_empty()) else {
            return Ok(AvatarChange::Clear);
        };
        let current = user.avatar.as_deref();
        // A client that sends back the record it read (PUT) changes nothing.
        if current == Some(wanted) {
            return Ok(AvatarChange::Unchanged);
        }
        let id = wanted
            .parse::<AttachmentId>()
            .ok()
            .or_else(|| self.media().signer().attachment_in(wanted))
            .ok_or_else(|| {
                ChatError::invalid(
                    "avatar",
                    "Give the id or the url of an image you uploaded (POST /api/attachments/).",
                )
            })?;
        if current.and_then(avatars::decode) == Some(id) {
            return Ok(AvatarChange::Unchanged);
        }
        match self.media().adopt_avatar(user.id, id).await {
            Ok(_) => Ok(AvatarChange::Set(id)),
            Err(MediaError::NotYours(_) | MediaError::NotFound) => Err(ChatError::invalid(
                "avatar",
                format!("Invalid pk \"{id}\" - object does not exist."),
            )),
            Err(MediaError::BadImage) => Err(ChatError::invalid(
                "avatar",
                "Upload a valid image. The file you uploaded was either not an image or a corrupted image.",
            )),
            Err(err) => Err(err.into()),
        }
    }

    /// The caller's own record as `/api/user/` shows it.
    pub(crate) fn profile(&self, user: &UserRow) -> Profile {
        Profile::of(user, self.avatar_of(user))
    }

    /// A user as chats and search results show them: the contract's four fields, no avatar.
    pub(crate) fn brief(&self, user: &UserRow) -> UserBrief {
        UserBrief::of(user)
    }

    fn avatar_of(&self, user: &UserRow) -> Option<String> {
        self.media().show_avatar(user.avatar.as_deref())
    }
}
