//! The commands that change a chat through the chat service, whose event then reaches the
//! chat's followers: `read`, `typing`, `edit`, `delete`, `add_member`, `remove_member`.

use std::time::{Duration, Instant};

use super::Session;
use crate::chats::{ChatError, Draft, MessageChange};
use crate::ids::{ChatId, MessageId};
use crate::realtime::event::Event;
use crate::wire::v2::{EditMessage, MarkRead, MemberChange, Muted, ReadUpto};
use crate::wire::ErrorBody;

/// Shortest interval between two typing events from one socket for one chat.
const TYPING_INTERVAL: Duration = Duration::from_secs(2);

impl Session {
    /// A read receipt up to a message, named by its sequence or its id.
    pub(super) async fn read(&mut self, read: MarkRead) -> Result<(), ErrorBody> {
        let seq = match read.upto {
            ReadUpto::Seq(seq) => seq,
            ReadUpto::MessageId(id) => {
                let message = self.chats().message_for_member(id, self.user).await?;
                if message.chat_id != read.chat {
                    return Err(ErrorBody::new("wrong_chat", "That message belongs to another chat."));
                }
                message.seq
            }
        };
        self.chats().read_upto(self.user, read.chat, seq).await?;
        Ok(())
    }

    pub(super) async fn typing(&mut self, chat: ChatId) -> Result<(), ErrorBody> {
        if !self.connection.has_joined(chat) {
            self.chats().chat_for_member(chat, self.user).await?;
        }
        let now = Instant::now();
        if self
            .last_typing
            .get(&chat)
            .is_some_and(|at| now.duration_since(*at) < TYPING_INTERVAL)
        {
            return Err(ErrorBody::new(
                "typing_rate_limited",
                "At most one typing event every 2 seconds per chat.",
            ));
        }
        self.last_typing.insert(chat, now);
        self.rt.fanout().to_chat(Event::Typing { chat, user: self.user });
        Ok(())
    }

    pub(super) async fn edit(&mut self, edit: EditMessage) -> Result<(), ErrorBody> {
        // The same rules, and codes, as a new text message.
        let draft = Draft {
            text: edit.message,
            ..Draft::default()
        };
        draft.check(self.chats().max_extra_bytes()).map_err(ChatError::from)?;
        let change = MessageChange {
            text: Some(draft.text),
            is_read: None,
        };
        self.chats().change_message(self.user, edit.id, change).await?;
        Ok(())
    }

    pub(super) async fn delete(&mut self, id: MessageId) -> Result<(), ErrorBody> {
        Ok(self.chats().delete_message(self.user, id).await?)
    }

    pub(super) async fn add_member(&mut self, change: MemberChange) -> Result<(), ErrorBody> {
        self.chats()
            .add_member(self.user, change.chat, change.user, false)
            .await?;
        Ok(())
    }

    /// Mutes or unmutes a chat's push notifications for this socket's user.
    pub(super) async fn mute(&mut self, chat: ChatId, muted: bool) -> Result<Muted, ErrorBody> {
        let view = self.chats().set_muted(self.user, chat, muted).await?;
        Ok(Muted {
            chat,
            muted: view.muted,
            reference: None,
        })
    }

    pub(super) async fn remove_member(&mut self, change: MemberChange) -> Result<(), ErrorBody> {
        Ok(self.chats().remove_member(self.user, change.chat, change.user).await?)
    }
}
