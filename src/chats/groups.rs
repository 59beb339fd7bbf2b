//! Group chats: a title and any number of members, managed by the chat's admins.

use uuid::Uuid;

use super::service::chat_for_member;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::realtime::event::Event;
use crate::store::chats::{self, ChatRow};
use crate::store::users;

pub const TITLE_MAX: usize = 128;
pub const MEMBERS_MAX: usize = 1000;

fn check_title(title: &str) -> ApiResult<String> {
    let title = title.trim();
    if title.is_empty() {
        return Err(ApiError::field("title", "This field may not be blank."));
    }
    if title.chars().count() > TITLE_MAX {
        return Err(ApiError::field(
            "title",
            format!("Ensure this field has no more than {TITLE_MAX} characters."),
        ));
    }
    Ok(title.to_string())
}

/// Every member must be an active user.
async fn check_users(state: &AppState, ids: &[Uuid]) -> ApiResult<()> {
    for id in ids {
        match users::by_id(&state.db, *id).await? {
            Some(u) if u.is_active => {}
            _ => {
                return Err(ApiError::field(
                    "members",
                    format!("Invalid pk \"{id}\" - object does not exist."),
                ))
            }
        }
    }
    Ok(())
}

pub async fn create(state: &AppState, creator: Uuid, title: &str, members: &[Uuid]) -> ApiResult<ChatRow> {
    let title = check_title(title)?;
    let mut members: Vec<Uuid> = members.iter().copied().filter(|m| *m != creator).collect();
    members.sort();
    members.dedup();
    if members.len() + 1 > MEMBERS_MAX {
        return Err(ApiError::field(
            "members",
            format!("A group has at most {MEMBERS_MAX} members."),
        ));
    }
    check_users(state, &members).await?;
    let chat = chats::create_group(&state.db, &title, creator, &members).await?;
    for member in &members {
        state.fanout.to_users(
            &[*member],
            Event::MemberAdded {
                chat: chat.id,
                user: *member,
            },
        );
    }
    Ok(chat)
}

/// The group, if `user` is one of its admins (members who are not: 403; others: 404).
async fn group_for_admin(state: &AppState, chat: Uuid, user: Uuid) -> ApiResult<ChatRow> {
    let row = chat_for_member(state, chat, user).await?;
    if !row.is_group {
        return Err(ApiError::BadRequest(
            "Members of a two-person chat cannot change.".into(),
        ));
    }
    let member = chats::member(&state.db, chat, user).await?.ok_or(ApiError::NotFound)?;
    if !member.is_admin {
        return Err(ApiError::PermissionDenied);
    }
    Ok(row)
}

pub async fn rename(state: &AppState, admin: Uuid, chat: Uuid, title: &str) -> ApiResult<()> {
    group_for_admin(state, chat, admin).await?;
    let title = check_title(title)?;
    chats::set_title(&state.db, chat, &title).await?;
    state.fanout.to_chat(Event::ChatUpdated { chat });
    Ok(())
}

/// Adds a member; false when they already were one.
pub async fn add_member(state: &AppState, admin: Uuid, chat: Uuid, user: Uuid, as_admin: bool) -> ApiResult<bool> {
    group_for_admin(state, chat, admin).await?;
    check_users(state, &[user]).await?;
    if chats::members(&state.db, chat).await?.len() >= MEMBERS_MAX {
        return Err(ApiError::field(
            "members",
            format!("A group has at most {MEMBERS_MAX} members."),
        ));
    }
    let added = chats::add_member(&state.db, chat, user, as_admin).await?;
    if added {
        state
            .fanout
            .to_chat_and_users(Event::MemberAdded { chat, user }, &[user]);
    }
    Ok(added)
}

/// Removes a member: an admin may remove anyone, any member may leave.
pub async fn remove_member(state: &AppState, caller: Uuid, chat: Uuid, user: Uuid) -> ApiResult<()> {
    if caller != user {
        group_for_admin(state, chat, caller).await?;
    } else if !chat_for_member(state, chat, caller).await?.is_group {
        return Err(ApiError::BadRequest(
            "Members of a two-person chat cannot change.".into(),
        ));
    }
    if !chats::remove_member(&state.db, chat, user).await? {
        return Err(ApiError::NotFound);
    }
    state
        .fanout
        .to_chat_and_users(Event::MemberRemoved { chat, user }, &[user]);
    Ok(())
}
