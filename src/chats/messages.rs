//! Messages, in one place for REST and WebSocket alike: validate → store (group commit) →
//! publish; edits, deletes, read marks and history.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::draft::Draft;
use super::error::{ChatError, ChatResult};
use super::events::ChatEvent;
use super::list_cache::{HistoryKey, HistoryRows};
use super::service::Chats;
use super::view::MessageView;
use super::writer::{Committed, WriteError, WriterPermit};
use crate::ids::{ChatId, MessageId, UserId};
use crate::store::chats;
use crate::store::messages::{self, HistoryFilter, MessageRow, NewMessage, Stored};

/// A message queued for storage: resolves to the stored message once committed.
pub(crate) type PendingStore = Pin<Box<dyn Future<Output = ChatResult<Stored>> + Send + Sync>>;

/// What [`Chats::try_submit`] did with a message.
pub(crate) enum Submitted {
    Queued(PendingStore),
    /// The storage queue is full: queue it with [`Chats::submit_with`] once
    /// [`Chats::storage_room`] grants a permit.
    QueueFull(NewMessage),
}

/// Changes to one message: new text (author only) and/or read state (the recipient only).
pub(crate) struct MessageChange {
    pub text: Option<String>,
    pub is_read: Option<bool>,
}

/// One page of a chat's history and the total it was cut from.
pub(crate) struct HistoryPage {
    pub total: i64,
    pub messages: Vec<MessageRow>,
}

impl Chats {
    /// Stores a message from `author` in `chat` (membership checked here) and publishes it. A
    /// photo whose `extraData` is a `data:` URL is stored as an attachment first, as on a v1
    /// socket.
    pub(crate) async fn post(&self, author: UserId, chat: ChatId, mut draft: Draft) -> ChatResult<Stored> {
        self.membership(chat, author).await?;
        let pending = match draft.take_data_url() {
            Some(photo) => self.submit_photo(author, chat, draft, photo).await?,
            None => self.submit(author, chat, draft).await?,
        };
        pending.await
    }

    /// Like [`Chats::submit`], for a photo sent as a `data:` URL (what the finished app sends),
    /// taken out of the draft by [`Draft::take_data_url`] or out of a frame before it was read:
    /// the rest of the draft is checked first, then the photo is stored as an attachment,
    /// checked like an upload, and the message carries it instead.
    pub(crate) async fn submit_photo(
        &self,
        author: UserId,
        chat: ChatId,
        mut draft: Draft,
        photo: String,
    ) -> ChatResult<PendingStore> {
        draft.check(self.max_extra_bytes())?;
        let photo = self.attach_data_url(author, chat, &mut draft, &photo).await?;
        let queued = self.submit(author, chat, draft).await;
        if queued.is_err() {
            // Refused after all (too many messages, storage queue closed): no message will
            // carry the photo, and the sweeper keeps what is posted in a chat.
            self.remove_attachments(&[photo]).await;
        }
        queued
    }

    /// Checks and queues a message without waiting for the commit, for a socket whose
    /// membership was checked when it joined the chat's room (removal from the chat evicts it
    /// from the room). Messages of one sender are stored in the order they are queued.
    pub(crate) async fn submit(&self, author: UserId, chat: ChatId, mut draft: Draft) -> ChatResult<PendingStore> {
        draft.check(self.max_extra_bytes())?;
        self.attach(author, chat, &mut draft).await?;
        let new = self.new_message(author, chat, draft)?;
        self.within_rate(author).await?;
        let committed = self.writer().enqueue(new).await.map_err(write_error)?;
        Ok(pending_store(committed))
    }

    /// Like [`Chats::submit`], without waiting for room in the storage queue; the draft's
    /// attachments must have been checked ([`Chats::attach`]) before.
    pub(crate) async fn try_submit(&self, author: UserId, chat: ChatId, draft: Draft) -> ChatResult<Submitted> {
        let new = self.new_message(author, chat, draft)?;
        self.within_rate(author).await?;
        Ok(match self.writer().try_enqueue(new).map_err(write_error)? {
            Ok(committed) => Submitted::Queued(pending_store(committed)),
            Err(new) => Submitted::QueueFull(new),
        })
    }

    /// Resolves once the storage queue has room for one message, which the permit then holds.
    pub(crate) fn storage_room(&self) -> impl Future<Output = Result<WriterPermit, ChatError>> + Send + Sync + 'static {
        let room = self.writer().room();
        async move { room.await.map_err(write_error) }
    }

    /// Queues a message that found the storage queue full, into the room a permit holds.
    pub(crate) fn submit_with(permit: WriterPermit, message: NewMessage) -> PendingStore {
        pending_store(permit.enqueue(message))
    }

    /// Counts a message of `author` against `user_messages_per_second` (every socket and REST
    /// together, every instance with Redis); over it, the message is refused.
    async fn within_rate(&self, author: UserId) -> ChatResult<()> {
        if self.rate().admit(author).await {
            Ok(())
        } else {
            metrics::counter!("causerie_messages_throttled_total").increment(1);
            Err(ChatError::Throttled)
        }
    }

    fn new_message(&self, author: UserId, chat: ChatId, draft: Draft) -> ChatResult<NewMessage> {
        draft.check(self.max_extra_bytes())?;
        if !draft.attachments.is_empty() {
            // `attach` takes them; a caller that skipped it would lose them silently.
            return Err(ChatError::WriteFailed(
                "attachments were not checked before queueing".into(),
            ));
        }
        Ok(NewMessage {
            chat_id: chat,
            author,
            client_id: draft.client_id,
            body: draft.text,
            kind: draft.kind,
            extra_data: draft.linked.or(draft.extra_data),
        })
    }

    /// A live message in one of `user`'s chats.
    pub(crate) async fn message_for_member(&self, id: MessageId, user: UserId) -> ChatResult<MessageRow> {
        let message = messages::by_id(self.db(), id).await?.ok_or(ChatError::NotFound)?;
        self.membership(message.chat_id, user).await?;
        Ok(message)
    }

    pub(crate) async fn change_message(
        &self,
        user: UserId,
        id: MessageId,
        change: MessageChange,
    ) -> ChatResult<MessageRow> {
        let mut message = self.message_for_member(id, user).await?;
        let is_author = message.author == Some(user);
        if change.text.is_some() && !is_author {
            return Err(ChatError::Forbidden);
        }
        if change.is_read.is_some() && is_author {
            return Err(ChatError::Forbidden);
        }
        if let Some(text) = change.text {
            let draft = Draft {
                text: text.clone(),
                kind: message.kind,
                // What is stored may be the server's own attachment reference, which no
                // client may submit: it is checked as already linked.
                extra_data: None,
                linked: message.extra_data.clone(),
                ..Draft::default()
            };
            draft.check(self.max_extra_bytes())?;
            message = messages::edit_body(self.db(), id, &text)
                .await?
                .ok_or(ChatError::NotFound)?;
            self.touch_chat(message.chat_id);
            self.publish(
                ChatEvent::MessageEdited {
                    message: MessageView::full(&message),
                },
                &[],
            );
        }
        if let Some(read) = change.is_read {
            message = messages::set_read(self.db(), id, read)
                .await?
                .ok_or(ChatError::NotFound)?;
            self.touch_chat(message.chat_id);
            if read {
                self.publish(
                    ChatEvent::Read {
                        chat: message.chat_id,
                        user,
                        upto_seq: None,
                        ids: vec![message.id],
                    },
                    &[],
                );
            }
        }
        Ok(message)
    }

    pub(crate) async fn delete_message(&self, user: UserId, id: MessageId) -> ChatResult<()> {
        let message = self.message_for_member(id, user).await?;
        if message.author != Some(user) {
            return Err(ChatError::Forbidden);
        }
        self.erase(id).await?;
        Ok(())
    }

    /// Deletes a live message (leaving its tombstone) and tells the chat's sockets; the
    /// tombstone, or None when there was no live message with this id.
    pub(super) async fn erase(&self, id: MessageId) -> ChatResult<Option<MessageRow>> {
        let carried = messages::by_id(self.db(), id)
            .await?
            .map(|m| Chats::attachments_of(&m))
            .unwrap_or_default();
        let gone = messages::delete(self.db(), id).await?;
        if let Some(gone) = &gone {
            self.touch_chat(gone.chat_id);
            self.remove_attachments(&carried).await;
            self.publish(
                ChatEvent::MessageDeleted {
                    chat: gone.chat_id,
                    id: gone.id,
                    seq: gone.seq,
                },
                &[],
            );
        }
        Ok(gone)
    }

    /// Marks the given messages read for `reader`: only those in their chats written by others.
    pub(crate) async fn mark_read(&self, reader: UserId, ids: &[MessageId]) -> ChatResult<usize> {
        let changed = messages::mark_read_by_ids(self.db(), reader, ids).await?;
        let mut by_chat: BTreeMap<ChatId, Vec<MessageId>> = BTreeMap::new();
        for row in &changed {
            by_chat.entry(row.chat_id).or_default().push(row.id);
        }
        for (chat, ids) in by_chat {
            self.touch_chat(chat);
            self.publish(
                ChatEvent::Read {
                    chat,
                    user: reader,
                    upto_seq: None,
                    ids,
                },
                &[],
            );
        }
        Ok(changed.len())
    }

    /// A read receipt for everything up to `seq`; returns the reader's new mark.
    pub(crate) async fn read_upto(&self, reader: UserId, chat: ChatId, seq: i64) -> ChatResult<i64> {
        let row = self.chat_for_member(chat, reader).await?;
        if seq < 0 || seq > row.last_seq {
            return Err(ChatError::InvalidSeq { seq });
        }
        let mark = messages::mark_read_upto(self.db(), chat, reader, seq, !row.is_group).await?;
        self.touch_chat(chat);
        self.publish(
            ChatEvent::Read {
                chat,
                user: reader,
                upto_seq: Some(mark),
                ids: Vec::new(),
            },
            &[],
        );
        Ok(mark)
    }

    /// The sequence of a cursor message, which must belong to `chat`.
    pub(crate) async fn cursor_seq(&self, chat: ChatId, id: MessageId) -> ChatResult<Option<i64>> {
        Ok(messages::by_id(self.db(), id)
            .await?
            .filter(|m| m.chat_id == chat)
            .map(|m| m.seq))
    }

    /// One page of a chat's live messages for one of its members, newest first (or oldest
    /// first after an `after` cursor), and the total: one statement checks membership and
    /// reads the chat's numbering, one reads the page (filtered pages also count).
    pub(crate) async fn history(
        &self,
        chat: ChatId,
        viewer: UserId,
        filter: &HistoryFilter,
        limit: i64,
        offset: i64,
    ) -> ChatResult<Arc<HistoryRows>> {
        let key = HistoryKey {
            viewer,
            chat,
            limit,
            offset,
        };
        let freshness = self.accounts().freshness();
        let cache = self.history_cache();
        let deps = if filter.is_plain() {
            if let Some(kept) = cache.page(key, freshness) {
                return Ok(kept);
            }
            cache.begin(key, freshness)
        } else {
            None
        };
        let counts = chats::member_counts(self.db(), chat, viewer)
            .await?
            .ok_or(ChatError::NotFound)?;
        let (total, messages) = messages::history(self.db(), chat, counts, filter, limit, offset).await?;
        let rows = Arc::new(HistoryRows { total, messages });
        if let Some(deps) = deps {
            cache.keep(key, deps, rows.clone());
        }
        Ok(rows)
    }

    /// A page of the live messages of every chat `viewer` is in, newest first.
    pub(crate) async fn messages_of(
        &self,
        viewer: UserId,
        filter: &HistoryFilter,
        limit: i64,
        offset: i64,
    ) -> ChatResult<HistoryPage> {
        let (total, messages) = messages::in_chats_of(self.db(), viewer, filter, limit, offset).await?;
        Ok(HistoryPage { total, messages })
    }

    /// Everything stored in `chat` after `seq`, in order, tombstones included (catch-up).
    pub(crate) async fn since(&self, chat: ChatId, seq: i64, limit: i64) -> ChatResult<Vec<MessageRow>> {
        Ok(messages::since(self.db(), chat, seq, limit).await?)
    }
}

fn pending_store(committed: Committed) -> PendingStore {
    Box::pin(async move {
        committed
            .await
            .map_err(|_| ChatError::Unavailable)?
            .map_err(write_error)
    })
}

fn write_error(err: WriteError) -> ChatError {
    match err {
        // Both look like "no such chat, or not a member" (as a handshake's check would say).
        WriteError::ChatGone | WriteError::NotAMember => ChatError::NotFound,
        WriteError::Unavailable | WriteError::Stopped => ChatError::Unavailable,
        WriteError::Failed(reason) => ChatError::WriteFailed(reason),
    }
}
