//! Group chats: a title and any number of members, managed by the chat's admins.

use super::error::{ChatError, ChatResult};
use super::events::ChatEvent;
use super::service::Chats;
use crate::ids::{ChatId, UserId};
use crate::store::chats::{self, ChatRow};
use crate::validation::BLANK;

pub(crate) const TITLE_MAX: usize = 128;
pub(crate) const MEMBERS_MAX: usize = 1000;

fn check_title(title: &str) -> ChatResult<String> {
    let title = title.trim();
    if title.is_empty() {
        return Err(ChatError::invalid("title", BLANK));
    }
    if title.chars().count() > TITLE_MAX {
        return Err(ChatError::invalid(
            "title",
            format!("Ensure this field has no more than {TITLE_MAX} characters."),
        ));
    }
    Ok(title.to_string())
}

fn too_many_members() -> ChatError {
    ChatError::invalid("members", format!("A group has at most {MEMBERS_MAX} members."))
}

impl Chats {
    /// Every member must be an active user.
    pub(super) async fn check_users(&self, ids: &[UserId]) -> ChatResult<()> {
        let found = self.accounts().users(ids).await?;
        for id in ids {
            if !found.iter().any(|u| u.id == *id && u.is_active) {
                return Err(ChatError::invalid(
                    "members",
                    format!("Invalid pk \"{id}\" - object does not exist."),
                ));
            }
        }
        Ok(())
    }

    pub(crate) async fn create_group(&self, creator: UserId, title: &str, members: &[UserId]) -> ChatResult<ChatRow> {
        let title = check_title(title)?;
        let mut members: Vec<UserId> = members.iter().copied().filter(|m| *m != creator).collect();
        members.sort();
        members.dedup();
        if members.len() + 1 > MEMBERS_MAX {
            return Err(too_many_members());
        }
        self.check_users(&members).await?;
        let chat = chats::create_group(self.db(), &title, creator, &members).await?;
        for user in members.iter().chain([&creator]) {
            self.touch_user(*user);
        }
        for member in &members {
            self.publish(
                ChatEvent::MemberAdded {
                    chat: chat.id,
                    user: *member,
                },
                &[*member],
            );
        }
        Ok(chat)
    }

    /// The group, if `user` is one of its admins (members who are not: forbidden; others: not
    /// found).
    async fn group_for_admin(&self, chat: ChatId, user: UserId) -> ChatResult<ChatRow> {
        let member = self.membership(chat, user).await?;
        let row = chats::by_id(self.db(), chat).await?.ok_or(ChatError::NotFound)?;
        if !row.is_group {
            return Err(ChatError::NotAGroup);
        }
        if !member.is_admin {
            return Err(ChatError::Forbidden);
        }
        Ok(row)
    }

    pub(crate) async fn rename_group(&self, admin: UserId, chat: ChatId, title: &str) -> ChatResult<()> {
        self.group_for_admin(chat, admin).await?;
        let title = check_title(title)?;
        chats::set_title(self.db(), chat, &title).await?;
        self.touch_chat(chat);
        self.publish(ChatEvent::ChatUpdated { chat }, &[]);
        Ok(())
    }

    /// Adds a member; false when they already were one.
    pub(crate) async fn add_member(
        &self,
        admin: UserId,
        chat: ChatId,
        user: UserId,
        as_admin: bool,
    ) -> ChatResult<bool> {
        self.group_for_admin(chat, admin).await?;
        self.check_users(&[user]).await?;
        if chats::members(self.db(), chat).await?.len() >= MEMBERS_MAX {
            return Err(too_many_members());
        }
        let added = chats::add_member(self.db(), chat, user, as_admin).await?;
        self.touch_chat(chat);
        self.touch_user(user);
        if added {
            self.publish(ChatEvent::MemberAdded { chat, user }, &[user]);
        }
        Ok(added)
    }

    /// Removes a member: an admin may remove anyone, any member may leave.
    pub(crate) async fn remove_member(&self, caller: UserId, chat: ChatId, user: UserId) -> ChatResult<()> {
        if caller != user {
            self.group_for_admin(chat, caller).await?;
        } else if !self.chat_for_member(chat, caller).await?.is_group {
            return Err(ChatError::NotAGroup);
        }
        let removed = chats::remove_member(self.db(), chat, user).await?;
        self.touch_chat(chat);
        self.touch_user(user);
        if !removed {
            return Err(ChatError::NotFound);
        }
        self.publish(ChatEvent::MemberRemoved { chat, user }, &[user]);
        Ok(())
    }
}
