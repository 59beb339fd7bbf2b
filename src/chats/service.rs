//! The chat service: who may see a chat and what a chat is. Messages (`messages.rs`), groups
//! (`groups.rs`) and the chat list (`listing.rs`) are further `impl Chats` blocks; together they
//! are the only code that touches the `chats`, `chat_members` and `messages` tables.

use std::sync::Arc;
use std::time::Duration;

use super::error::{ChatError, ChatResult};
use super::events::{ChatEvent, EventSink};
use super::list_cache::{HistoryCache, ListCache};
use super::rate::MessageRate;
use super::writer::MessageWriter;
use crate::accounts::Accounts;
use crate::ids::{ChatId, UserId};
use crate::media::Media;
use crate::store::chats::{self, ChatRow, MemberRow};
use crate::store::Db;

struct Inner {
    db: Db,
    accounts: Accounts,
    events: Arc<dyn EventSink>,
    writer: MessageWriter,
    media: Media,
    /// Largest `extraData` accepted (the request body limit: nothing larger can arrive).
    max_extra_bytes: usize,
    /// Messages per user per second, whichever way they come in (`rate.rs`).
    rate: MessageRate,
    /// Chat list pages kept per user, and history pages (`list_cache.rs`).
    list_cache: ListCache,
    history_cache: HistoryCache,
}

/// The chat service: one per server, cheap to clone.
#[derive(Clone)]
pub(crate) struct Chats(Arc<Inner>);

impl Chats {
    pub(crate) fn new(
        db: Db,
        accounts: Accounts,
        events: Arc<dyn EventSink>,
        writer: MessageWriter,
        media: Media,
        max_extra_bytes: usize,
        rate: MessageRate,
        // How long a cached chat list or history page may live; zero: nothing is cached.
        read_cache_ttl: Duration,
    ) -> Chats {
        Chats(Arc::new(Inner {
            db,
            accounts,
            events,
            writer,
            media,
            max_extra_bytes,
            rate,
            list_cache: ListCache::new(read_cache_ttl),
            history_cache: HistoryCache::new(read_cache_ttl),
        }))
    }

    pub(super) fn rate(&self) -> &MessageRate {
        &self.0.rate
    }

    /// Housekeeping run now and then (the message rate's per-user counts).
    pub(crate) fn sweep(&self) {
        self.0.rate.sweep();
        self.0.list_cache.sweep();
        self.0.history_cache.sweep();
    }

    pub(super) fn history_cache(&self) -> &HistoryCache {
        &self.0.history_cache
    }

    pub(super) fn list_cache(&self) -> &ListCache {
        &self.0.list_cache
    }

    /// The chat changed (its messages, members, read marks or settings): call after the change
    /// is stored, before it is answered or published, so no cached view outlives it.
    pub(super) fn touch_chat(&self, chat: ChatId) {
        self.accounts().freshness().touch(chat.as_uuid());
    }

    /// The user's own list changed (a chat joined, left or created).
    pub(super) fn touch_user(&self, user: UserId) {
        self.accounts().freshness().touch(user.as_uuid());
    }

    pub(super) fn db(&self) -> &Db {
        &self.0.db
    }

    pub(super) fn accounts(&self) -> &Accounts {
        &self.0.accounts
    }

    pub(super) fn writer(&self) -> &MessageWriter {
        &self.0.writer
    }

    pub(crate) fn media(&self) -> &Media {
        &self.0.media
    }

    pub(crate) fn max_extra_bytes(&self) -> usize {
        self.0.max_extra_bytes
    }

    pub(super) fn publish(&self, event: ChatEvent, also_to: &[UserId]) {
        self.0.events.publish(event, also_to);
    }

    /// The chat, if `user` is one of its members; everyone else is told it does not exist.
    pub(crate) async fn chat_for_member(&self, chat: ChatId, user: UserId) -> ChatResult<ChatRow> {
        self.membership(chat, user).await?;
        chats::by_id(self.db(), chat).await?.ok_or(ChatError::NotFound)
    }

    /// `user`'s membership of `chat` (no such chat or not a member: not found).
    pub(super) async fn membership(&self, chat: ChatId, user: UserId) -> ChatResult<MemberRow> {
        chats::member(self.db(), chat, user).await?.ok_or(ChatError::NotFound)
    }

    /// Whether the chat exists at all (a WebSocket handshake tells "no such chat" from "not a
    /// member", as the seed's consumer did).
    pub(crate) async fn exists(&self, chat: ChatId) -> ChatResult<bool> {
        Ok(chats::by_id(self.db(), chat).await?.is_some())
    }

    /// Which of these (chat, user) pairs are memberships now (one statement, or a few on
    /// SQLite): the fan-out re-reads its sockets' memberships with it after a relay outage.
    pub(crate) async fn memberships_among(
        &self,
        pairs: &[(ChatId, UserId)],
    ) -> ChatResult<std::collections::HashSet<(ChatId, UserId)>> {
        Ok(chats::members_among(self.db(), pairs).await?)
    }

    pub(crate) async fn is_member(&self, chat: ChatId, user: UserId) -> ChatResult<bool> {
        Ok(chats::member(self.db(), chat, user).await?.is_some())
    }

    /// The chat's last sequence number now.
    pub(crate) async fn last_seq(&self, chat: ChatId) -> ChatResult<i64> {
        Ok(chats::by_id(self.db(), chat)
            .await?
            .ok_or(ChatError::NotFound)?
            .last_seq)
    }

    /// Finds or creates the private chat between the caller and another active user; true when
    /// it was created now.
    pub(crate) async fn open_pair(&self, caller: UserId, other: UserId) -> ChatResult<(ChatRow, bool)> {
        if other == caller {
            return Err(ChatError::invalid(
                "chatWithUser",
                "You cannot open a chat with yourself.",
            ));
        }
        if self.accounts().active_user(other).await?.is_none() {
            return Err(ChatError::invalid(
                "chatWithUser",
                format!("Invalid pk \"{other}\" - object does not exist."),
            ));
        }
        let (chat, created) = chats::find_or_create_pair(self.db(), caller, other).await?;
        // Also when found: the creator of a concurrent race may not have moved the stamps yet.
        self.touch_user(caller);
        self.touch_user(other);
        Ok((chat, created))
    }

    /// Deletes a chat: any member of a two-person chat, only an admin of a group.
    pub(crate) async fn delete_chat(&self, user: UserId, chat: ChatId) -> ChatResult<()> {
        let member = self.membership(chat, user).await?;
        let row = chats::by_id(self.db(), chat).await?.ok_or(ChatError::NotFound)?;
        if row.is_group && !member.is_admin {
            return Err(ChatError::Forbidden);
        }
        chats::delete(self.db(), chat).await?;
        // Lists that held the chat depend on its stamp; the members' own lists need not move.
        self.touch_chat(chat);
        self.publish(ChatEvent::ChatUpdated { chat }, &[]);
        Ok(())
    }

    /// Users who share at least one chat with `user` (the audience of their presence).
    pub(crate) async fn contacts(&self, user: UserId) -> ChatResult<Vec<UserId>> {
        Ok(chats::contacts(self.db(), user).await?)
    }

    /// The most recently active chats of the whole server (the `chats list` command).
    pub(crate) async fn recent(&self, limit: i64) -> ChatResult<Vec<ChatRow>> {
        Ok(chats::all(self.db(), limit).await?)
    }
}
