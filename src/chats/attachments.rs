//! Messages that carry attachments: checking what a draft names before it is stored, who may
//! read an attachment, and turning stored references into signed URLs whenever a message is
//! shown (REST answers, the chat list, socket frames), so that no stored row holds a URL that
//! expires.

use std::sync::Arc;

use super::draft::{Draft, PHOTO};
use super::error::{ChatError, ChatResult};
use super::events::{ChatEvent, EventSink};
use super::service::Chats;
use super::view::MessageView;
use crate::ids::{AttachmentId, ChatId, MessageId, UserId};
use crate::media::{refs, Media, MediaError};
use crate::store::attachments::AttachmentRow;
use crate::store::messages::{self, MessageRow};

/// What converting stored photos did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PhotoConversion {
    /// Messages that now carry an attachment.
    pub converted: usize,
    /// Photos left as they were (not an accepted image, or no author any more).
    pub kept: usize,
}

impl Chats {
    /// Checks the attachments a draft names (its `attachments`, or as `extraData` the URL of an
    /// upload) and records that they are posted in `chat`; the draft then stores a reference
    /// to them and becomes a photo. A draft naming none is left as it is.
    pub(crate) async fn attach(&self, author: UserId, chat: ChatId, draft: &mut Draft) -> ChatResult<()> {
        if draft.linked.is_some() {
            return Ok(());
        }
        let mut ids = std::mem::take(&mut draft.attachments);
        if ids.is_empty() && draft.kind == PHOTO {
            if let Some(id) = draft
                .extra_data
                .as_deref()
                .and_then(|extra| self.media().signer().attachment_in(extra))
            {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        let rows = self.media().attach(author, chat, &ids).await?;
        draft.kind = PHOTO;
        draft.linked = Some(refs::encode(&rows));
        Ok(())
    }

    /// Stores the photo of a `data:` URL as `author`'s attachment in `chat` and makes the draft
    /// carry it (the finished app's photo messages); the attachment's id.
    pub(super) async fn attach_data_url(
        &self,
        author: UserId,
        chat: ChatId,
        draft: &mut Draft,
        url: &str,
    ) -> ChatResult<AttachmentId> {
        let row = self.media().store_data_url(author, chat, url).await?;
        draft.extra_data = None;
        let rows = self.media().attach(author, chat, &[row.id]).await?;
        draft.kind = PHOTO;
        draft.linked = Some(refs::encode(&rows));
        Ok(row.id)
    }

    /// Stores the photos kept in stored messages as `data:` URLs (what the finished app sent,
    /// imported from Django) as attachments of their authors, and makes the messages carry
    /// them instead. A photo that would be refused as an upload stays as it is.
    pub(crate) async fn convert_stored_photos(&self) -> ChatResult<PhotoConversion> {
        let mut done = PhotoConversion::default();
        let mut after = MessageId(uuid::Uuid::nil());
        loop {
            let page = messages::data_url_photos(self.db(), after, 50).await?;
            let Some(last) = page.last() else {
                return Ok(done);
            };
            after = last.id;
            for message in page {
                let (Some(author), Some(url)) = (message.author, message.extra_data.as_deref()) else {
                    done.kept += 1;
                    continue;
                };
                let stored = match self.media().store_old_data_url(author, message.chat_id, url).await {
                    Ok(row) => self.media().attach(author, message.chat_id, &[row.id]).await,
                    Err(err) => Err(err),
                };
                match stored {
                    Ok(rows) => {
                        messages::set_extra_data(self.db(), message.id, &refs::encode(&rows)).await?;
                        self.touch_chat(message.chat_id);
                        done.converted += 1;
                    }
                    Err(err @ (MediaError::Unavailable | MediaError::Objects(_) | MediaError::Store(_))) => {
                        return Err(err.into())
                    }
                    Err(err) => {
                        tracing::warn!(message = %message.id, error = %err, "photo kept as a data URL");
                        done.kept += 1;
                    }
                }
            }
        }
    }

    /// An attachment `user` may read: their own upload, one posted in a chat they are in, or
    /// anyone's avatar (any signed-in user may find anyone by name, avatar included).
    pub(crate) async fn attachment_for(&self, user: UserId, id: AttachmentId) -> ChatResult<AttachmentRow> {
        let row = self.media().get(id).await?;
        if row.owner == Some(user) || row.avatar_of.is_some() {
            return Ok(row);
        }
        let member = match row.attached_at.and(row.chat_id) {
            Some(chat) => self.is_member(chat, user).await?,
            None => false,
        };
        if member {
            Ok(row)
        } else {
            Err(MediaError::NotFound.into())
        }
    }

    /// Staff's delete of an attachment: every message carrying it stops referring to it (its
    /// chat's sockets get the message as `message_edited`, without the file), then the file,
    /// its thumbnail and its row go. Returns the row and how many messages were changed.
    pub(crate) async fn delete_attachment(&self, id: AttachmentId) -> ChatResult<(AttachmentRow, usize)> {
        let row = self.media().get(id).await?;
        let mut unlinked = 0;
        if let (Some(chat), Some(_)) = (row.chat_id, row.attached_at) {
            let carrying = messages::carrying_attachment(self.db(), chat, refs::MARKER, &id.to_string()).await?;
            for message in carrying {
                let Some(found) = message.extra_data.as_deref().and_then(refs::decode) else {
                    continue;
                };
                if !found.iter().any(|r| r.id == id) {
                    continue;
                }
                let left: Vec<refs::AttachmentRef> = found.into_iter().filter(|r| r.id != id).collect();
                let extra = (!left.is_empty()).then(|| refs::encode_refs(&left));
                if let Some(changed) = messages::replace_extra_data(self.db(), message.id, extra.as_deref()).await? {
                    self.publish(
                        ChatEvent::MessageEdited {
                            message: MessageView::full(&changed),
                        },
                        &[],
                    );
                    unlinked += 1;
                }
            }
        }
        // The messages no longer name the file when it goes, so none shows a dead link.
        self.media().remove(&[id]).await?;
        Ok((row, unlinked))
    }

    /// The attachments a stored message carries.
    pub(super) fn attachments_of(message: &MessageRow) -> Vec<AttachmentId> {
        message
            .extra_data
            .as_deref()
            .and_then(refs::decode)
            .map(|found| found.into_iter().map(|r| r.id).collect())
            .unwrap_or_default()
    }

    /// Removes what a deleted message carried (failures are logged: the files are then
    /// unreachable, and the sweeper takes them once their chat is gone).
    pub(super) async fn remove_attachments(&self, ids: &[AttachmentId]) {
        if ids.is_empty() {
            return;
        }
        if let Err(err) = self.media().remove(ids).await {
            tracing::warn!(error = %err, "could not remove a deleted message's attachments");
        }
    }

    /// A message as clients see it: a stored attachment reference becomes its signed URLs
    /// (`extraData` the first file's, `attachments` every one).
    pub(crate) fn show(&self, view: MessageView) -> MessageView {
        show(self.media(), view)
    }

    /// [`Chats::show`] of the REST shape of `row`.
    pub(crate) fn show_rest(&self, row: &MessageRow) -> MessageView {
        self.show(MessageView::rest(row))
    }

    /// [`Chats::show`] of the realtime shape of `row`.
    pub(crate) fn show_full(&self, row: &MessageRow) -> MessageView {
        self.show(MessageView::full(row))
    }
}

fn show(media: &Media, mut view: MessageView) -> MessageView {
    if let Some(found) = view.extra_data.as_deref().and_then(refs::decode) {
        let views: Vec<_> = found.iter().map(|r| media.view_of(r)).collect();
        view.extra_data = Some(views.first().map(|v| v.url.clone()).unwrap_or_default());
        view.attachments = views;
    }
    view
}

/// The event sink the chat service and the writer publish into: messages leave with their
/// attachment references turned into signed URLs (signed when published, so the URL a socket
/// receives is fresh), then go on to the real sink.
pub(crate) struct ShownEvents {
    media: Media,
    inner: Arc<dyn EventSink>,
}

impl ShownEvents {
    pub(crate) fn new(media: Media, inner: Arc<dyn EventSink>) -> ShownEvents {
        ShownEvents { media, inner }
    }
}

impl EventSink for ShownEvents {
    fn publish(&self, event: ChatEvent, also_to: &[UserId]) {
        let event = match event {
            ChatEvent::Message { message } => ChatEvent::Message {
                message: show(&self.media, message),
            },
            ChatEvent::MessageEdited { message } => ChatEvent::MessageEdited {
                message: show(&self.media, message),
            },
            other => other,
        };
        self.inner.publish(event, also_to);
    }
}

impl From<MediaError> for ChatError {
    fn from(err: MediaError) -> ChatError {
        ChatError::Media(err)
    }
}
