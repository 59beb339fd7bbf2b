//! Chat rules, in one place for REST and WebSocket alike: who may see a chat, what a valid
//! message is, who may edit, delete or mark read. Validate → store → publish.

use uuid::Uuid;

use super::view::MessageView;
use super::writer::{Committed, WriteError, WriterPermit};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::realtime::event::Event;
use crate::store::chats::{self, ChatRow};
use crate::store::messages::{self, MessageRow, NewMessage, Stored};
use crate::store::users;

pub const TEXT: i32 = 0;
pub const GEOLOC: i32 = 1;
pub const PHOTO: i32 = 2;
/// Longest message text, in characters.
pub const MESSAGE_MAX_CHARS: usize = 10_000;
/// Longest `clientId` a client may choose.
pub const CLIENT_ID_MAX: usize = 64;

/// Why a message was refused, with a stable code for WebSocket error frames and the field a
/// REST client sees it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub field: &'static str,
    pub detail: String,
}

impl Refusal {
    fn new(code: &'static str, field: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal {
            code,
            field,
            detail: detail.into(),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError::field(r.field, r.detail)
    }
}

/// A message as a client submitted it, before the rules ran.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub text: String,
    pub kind: i32,
    pub extra_data: Option<String>,
    pub client_id: Option<String>,
}

/// Applies the message rules: known type, non-blank text (or, for a location or photo, its
/// data), bounded sizes.
pub fn check_draft(draft: &Draft, max_extra: usize) -> Result<(), Refusal> {
    if !(TEXT..=PHOTO).contains(&draft.kind) {
        return Err(Refusal::new(
            "invalid_type",
            "type",
            format!("\"{}\" is not a valid choice.", draft.kind),
        ));
    }
    if draft.text.chars().count() > MESSAGE_MAX_CHARS {
        return Err(Refusal::new(
            "message_too_long",
            "message",
            format!("Ensure this field has no more than {MESSAGE_MAX_CHARS} characters."),
        ));
    }
    let has_extra = draft.extra_data.as_deref().is_some_and(|e| !e.trim().is_empty());
    if draft.kind == TEXT && draft.text.trim().is_empty() {
        return Err(Refusal::new("empty_message", "message", "This field may not be blank."));
    }
    if draft.kind != TEXT && !has_extra && draft.text.trim().is_empty() {
        return Err(Refusal::new(
            "empty_message",
            "extraData",
            "This field may not be blank.",
        ));
    }
    if draft.extra_data.as_deref().is_some_and(|e| e.len() > max_extra) {
        return Err(Refusal::new(
            "extra_data_too_long",
            "extraData",
            "Ensure this field is not too long.",
        ));
    }
    if let Some(id) = &draft.client_id {
        if id.is_empty() || id.chars().count() > CLIENT_ID_MAX {
            return Err(Refusal::new(
                "invalid_client_id",
                "clientId",
                format!("Ensure this field has 1 to {CLIENT_ID_MAX} characters."),
            ));
        }
    }
    Ok(())
}

/// The chat, if `user` is one of its members; everyone else is told it does not exist.
pub async fn chat_for_member(state: &AppState, chat: Uuid, user: Uuid) -> ApiResult<ChatRow> {
    if chats::member(&state.db, chat, user).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    chats::by_id(&state.db, chat).await?.ok_or(ApiError::NotFound)
}

/// Finds or creates the private chat between the caller and another active user.
pub async fn open_pair(state: &AppState, caller: Uuid, other: Uuid) -> ApiResult<(ChatRow, bool)> {
    if other == caller {
        return Err(ApiError::field("chatWithUser", "You cannot open a chat with yourself."));
    }
    match users::by_id(&state.db, other).await? {
        Some(user) if user.is_active => {}
        _ => {
            return Err(ApiError::field(
                "chatWithUser",
                format!("Invalid pk \"{other}\" - object does not exist."),
            ))
        }
    }
    Ok(chats::find_or_create_pair(&state.db, caller, other).await?)
}

/// Stores a message from `author` in `chat` (membership checked here) and publishes it.
pub async fn post(state: &AppState, author: Uuid, chat: Uuid, draft: Draft) -> ApiResult<Stored> {
    chat_for_member(state, chat, author).await?;
    post_as_member(state, author, chat, draft).await
}

/// Like [`post`], for a socket whose membership was checked when it joined the chat's room
/// (removal from the chat evicts it from the room, so the check stays true).
pub async fn post_as_member(state: &AppState, author: Uuid, chat: Uuid, draft: Draft) -> ApiResult<Stored> {
    submit_as_member(state, author, chat, draft).await?.await
}

/// A message queued for storage: resolves to the stored message once committed.
pub type PendingStore = std::pin::Pin<Box<dyn std::future::Future<Output = ApiResult<Stored>> + Send + Sync>>;

/// Checks and queues a message without waiting for the commit, so a socket can go on reading
/// and delivering meanwhile. Messages of one sender are stored in the order they are queued.
pub async fn submit_as_member(state: &AppState, author: Uuid, chat: Uuid, draft: Draft) -> ApiResult<PendingStore> {
    let new = new_message(state, author, chat, draft)?;
    let committed = state.writer.enqueue(new).await.map_err(write_error)?;
    Ok(pending_store(committed))
}

/// What [`try_submit_as_member`] did with a message.
pub enum Submitted {
    Queued(PendingStore),
    /// The storage queue is full: queue it with [`submit_with`] once `state.writer.room()`
    /// grants a permit.
    QueueFull(NewMessage),
}

/// Like [`submit_as_member`], without waiting for room in the storage queue.
pub fn try_submit_as_member(state: &AppState, author: Uuid, chat: Uuid, draft: Draft) -> ApiResult<Submitted> {
    let new = new_message(state, author, chat, draft)?;
    Ok(match state.writer.try_enqueue(new).map_err(write_error)? {
        Ok(committed) => Submitted::Queued(pending_store(committed)),
        Err(new) => Submitted::QueueFull(new),
    })
}

/// Queues a message that found the storage queue full, into the room a permit holds.
pub fn submit_with(permit: WriterPermit, message: NewMessage) -> PendingStore {
    pending_store(permit.enqueue(message))
}

fn new_message(state: &AppState, author: Uuid, chat: Uuid, draft: Draft) -> ApiResult<NewMessage> {
    check_draft(&draft, state.config.max_body_bytes)?;
    Ok(NewMessage {
        chat_id: chat,
        author,
        client_id: draft.client_id,
        body: draft.text,
        kind: draft.kind,
        extra_data: draft.extra_data,
    })
}

fn pending_store(committed: Committed) -> PendingStore {
    Box::pin(async move { committed.await.map_err(|_| ApiError::Unavailable)?.map_err(write_error) })
}

fn write_error(err: WriteError) -> ApiError {
    match err {
        WriteError::ChatGone => ApiError::NotFound,
        WriteError::Unavailable | WriteError::Stopped => ApiError::Unavailable,
        WriteError::Failed(reason) => ApiError::Internal(anyhow::anyhow!(reason)),
    }
}

/// A live message in one of `user`'s chats.
pub async fn message_for_member(state: &AppState, id: Uuid, user: Uuid) -> ApiResult<MessageRow> {
    let message = messages::by_id(&state.db, id).await?.ok_or(ApiError::NotFound)?;
    chat_for_member(state, message.chat_id, user).await?;
    Ok(message)
}

/// Changes to one message: new text (author only) and/or read state (the recipient only).
pub struct MessageChange {
    pub text: Option<String>,
    pub is_read: Option<bool>,
}

pub async fn change_message(state: &AppState, user: Uuid, id: Uuid, change: MessageChange) -> ApiResult<MessageRow> {
    let mut message = message_for_member(state, id, user).await?;
    let is_author = message.author == Some(user);
    if change.text.is_some() && !is_author {
        return Err(ApiError::PermissionDenied);
    }
    if change.is_read.is_some() && is_author {
        return Err(ApiError::PermissionDenied);
    }
    if let Some(text) = change.text {
        let draft = Draft {
            text: text.clone(),
            kind: message.kind,
            extra_data: message.extra_data.clone(),
            client_id: None,
        };
        check_draft(&draft, state.config.max_body_bytes)?;
        message = messages::edit_body(&state.db, id, &text)
            .await?
            .ok_or(ApiError::NotFound)?;
        state.fanout.to_chat(Event::MessageEdited {
            message: MessageView::full(&message),
        });
    }
    if let Some(read) = change.is_read {
        message = messages::set_read(&state.db, id, read)
            .await?
            .ok_or(ApiError::NotFound)?;
        if read {
            state.fanout.to_chat(Event::Read {
                chat: message.chat_id,
                user,
                upto_seq: None,
                ids: vec![message.id],
            });
        }
    }
    Ok(message)
}

pub async fn delete_message(state: &AppState, user: Uuid, id: Uuid) -> ApiResult<()> {
    let message = message_for_member(state, id, user).await?;
    if message.author != Some(user) {
        return Err(ApiError::PermissionDenied);
    }
    if let Some(gone) = messages::delete(&state.db, id).await? {
        state.fanout.to_chat(Event::MessageDeleted {
            chat: gone.chat_id,
            id: gone.id,
            seq: gone.seq,
        });
    }
    Ok(())
}

/// Marks the given messages read for `reader`: only those in their chats written by others.
pub async fn mark_read(state: &AppState, reader: Uuid, ids: &[Uuid]) -> ApiResult<usize> {
    let changed = messages::mark_read_by_ids(&state.db, reader, ids).await?;
    let mut by_chat: std::collections::BTreeMap<Uuid, Vec<Uuid>> = Default::default();
    for row in &changed {
        by_chat.entry(row.chat_id).or_default().push(row.id);
    }
    for (chat, ids) in by_chat {
        state.fanout.to_chat(Event::Read {
            chat,
            user: reader,
            upto_seq: None,
            ids,
        });
    }
    Ok(changed.len())
}

/// A read receipt for everything up to `seq`; returns the reader's new mark.
pub async fn read_upto(state: &AppState, reader: Uuid, chat: Uuid, seq: i64) -> ApiResult<i64> {
    let row = chat_for_member(state, chat, reader).await?;
    if seq < 0 || seq > row.last_seq {
        return Err(ApiError::field("seq", "No message with this sequence in this chat."));
    }
    let mark = messages::mark_read_upto(&state.db, chat, reader, seq, !row.is_group).await?;
    state.fanout.to_chat(Event::Read {
        chat,
        user: reader,
        upto_seq: Some(mark),
        ids: Vec::new(),
    });
    Ok(mark)
}

/// Deletes a chat: any member of a two-person chat, only an admin of a group.
pub async fn delete_chat(state: &AppState, user: Uuid, chat: Uuid) -> ApiResult<()> {
    let row = chat_for_member(state, chat, user).await?;
    if row.is_group {
        let member = chats::member(&state.db, chat, user).await?.ok_or(ApiError::NotFound)?;
        if !member.is_admin {
            return Err(ApiError::PermissionDenied);
        }
    }
    chats::delete(&state.db, chat).await?;
    state.fanout.to_chat(Event::ChatUpdated { chat });
    Ok(())
}
