//! What staff see and do in the admin site: every chat with its members and activity, any
//! chat's history, message search across chats, and moderation (a staff delete is published
//! exactly as an author's delete). The rules that protect members from each other (membership,
//! authorship) do not apply to staff; the ones that keep the data sound (active users, titles,
//! member limits) do.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::error::{ChatError, ChatResult};
use super::service::Chats;
use crate::ids::{ChatId, MessageId, UserId};
use crate::store::chats::{self, ChatRow, MEMBER_FILTER_MAX};
use crate::store::messages::{self, ChatCounts, HistoryFilter, MessageRow, MessageSearch};
use crate::store::users::UserRow;

/// A member of a chat, with their account.
pub(crate) struct StaffMember {
    pub user: UserRow,
    pub is_admin: bool,
}

/// A chat in the staff's list.
pub(crate) struct ChatSummary {
    pub chat: ChatRow,
    pub members: Vec<StaffMember>,
    pub message_count: i64,
    pub last_message_at: Option<DateTime<Utc>>,
}

/// A page of chats and the total it was cut from.
pub(crate) struct ChatOverview {
    pub total: i64,
    pub chats: Vec<ChatSummary>,
}

/// A page of messages and the total it was cut from.
pub(crate) struct MessagePage {
    pub total: i64,
    pub messages: Vec<MessageRow>,
}

impl Chats {
    /// One page of every chat, most recently active first; with `terms`, only chats one of
    /// whose members has every term in their email or names.
    pub(crate) async fn overview(&self, terms: &[String], limit: i64, offset: i64) -> ChatResult<ChatOverview> {
        let members = if terms.is_empty() {
            None
        } else {
            let ids = self
                .accounts()
                .matching_user_ids(terms, MEMBER_FILTER_MAX as i64 + 1)
                .await?;
            if ids.len() > MEMBER_FILTER_MAX {
                return Err(ChatError::invalid(
                    "q",
                    format!("More than {MEMBER_FILTER_MAX} users match this search; narrow it down."),
                ));
            }
            Some(ids)
        };
        let (total, rows) = chats::overview_page(self.db(), members.as_deref(), limit, offset).await?;
        let ids: Vec<ChatId> = rows.iter().map(|r| r.chat.id).collect();
        let mut by_chat: HashMap<ChatId, Vec<StaffMember>> = HashMap::new();
        let member_rows = if ids.is_empty() {
            Vec::new()
        } else {
            chats::members_of(self.db(), &ids).await?
        };
        let user_ids: Vec<UserId> = member_rows.iter().map(|m| m.user_id).collect();
        let users = self.accounts().users_by_id(&user_ids).await?;
        for member in member_rows {
            if let Some(user) = users.get(&member.user_id) {
                by_chat.entry(member.chat_id).or_default().push(StaffMember {
                    user: user.clone(),
                    is_admin: member.is_admin,
                });
            }
        }
        let chats = rows
            .into_iter()
            .map(|row| ChatSummary {
                members: by_chat.remove(&row.chat.id).unwrap_or_default(),
                chat: row.chat,
                message_count: row.message_count,
                last_message_at: row.last_message_at,
            })
            .collect();
        Ok(ChatOverview { total, chats })
    }

    /// Any chat with its members, in joining order.
    pub(crate) async fn chat_with_members(&self, chat: ChatId) -> ChatResult<(ChatRow, Vec<StaffMember>)> {
        let row = chats::by_id(self.db(), chat).await?.ok_or(ChatError::NotFound)?;
        let members = chats::members(self.db(), chat).await?;
        let ids: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
        let users = self.accounts().users_by_id(&ids).await?;
        let members = members
            .into_iter()
            .filter_map(|m| {
                users.get(&m.user_id).map(|user| StaffMember {
                    user: user.clone(),
                    is_admin: m.is_admin,
                })
            })
            .collect();
        Ok((row, members))
    }

    /// One page of any chat's live messages, newest first.
    pub(crate) async fn chat_messages(&self, chat: ChatId, limit: i64, offset: i64) -> ChatResult<MessagePage> {
        let counts = chats::counts(self.db(), chat).await?.unwrap_or(ChatCounts {
            last_seq: 0,
            deleted_count: 0,
        });
        let (total, messages) =
            messages::history(self.db(), chat, counts, &HistoryFilter::default(), limit, offset).await?;
        Ok(MessagePage { total, messages })
    }

    /// One page of the live messages of every chat that `search` selects, newest first.
    pub(crate) async fn search_messages(
        &self,
        search: &MessageSearch,
        limit: i64,
        offset: i64,
    ) -> ChatResult<MessagePage> {
        let (total, messages) = messages::search(self.db(), search, limit, offset).await?;
        Ok(MessagePage { total, messages })
    }

    /// Staff's delete: any live message, announced to the chat's sockets as the author's
    /// delete is. Returns the tombstone.
    pub(crate) async fn remove_message(&self, id: MessageId) -> ChatResult<MessageRow> {
        self.erase(id).await?.ok_or(ChatError::NotFound)
    }

    /// Finds or creates the two-person chat of two active users; true when created now.
    pub(crate) async fn open_pair_between(&self, first: UserId, second: UserId) -> ChatResult<(ChatRow, bool)> {
        self.check_users(&[first]).await?;
        self.open_pair(first, second).await
    }

    /// Creates a group owned (administered) by `owner`, an active user like every member.
    pub(crate) async fn create_group_for(&self, owner: UserId, title: &str, members: &[UserId]) -> ChatResult<ChatRow> {
        self.check_users(&[owner]).await?;
        self.create_group(owner, title, members).await
    }

    pub(crate) async fn count_all_chats(&self) -> ChatResult<i64> {
        Ok(chats::count(self.db()).await?)
    }

    /// Live messages written at or after `since`.
    pub(crate) async fn count_messages_since(&self, since: DateTime<Utc>) -> ChatResult<i64> {
        Ok(messages::count_since(self.db(), since).await?)
    }
}
