//! `chat_chat` → `chats` and `chat_members`, one chat per pair of users.
//!
//! Every run reads every chat, oldest first: the first chat of a pair is the one kept (or the
//! pair's chat is already in Causerie), and each later one of the same pair is merged into it.

use uuid::Uuid;

use super::batches::Batches;
use super::progress::Progress;
use super::source::{self, DjangoChat, Source, SourceError, SourceRow};
use super::{ChatState, Context, ImportError};
use crate::store::import::{self as store, ChatWrites, NewPairChat};

const TABLE: &str = "chat_chat";

pub(super) async fn run(ctx: &mut Context<'_>, source: &mut Source) -> Result<(), ImportError> {
    let total = source
        .count(source::CHATS_COUNT, None)
        .await
        .map_err(SourceError::Sql)?;
    let progress = Progress::start(ctx.progress, "chats", total.max(0) as u64);
    let mut batches = Batches::new(source.rows(source::CHATS, None), progress);
    while let Some(batch) = batches.next().await? {
        import_batch(ctx, batch).await?;
    }
    Ok(())
}

async fn import_batch(ctx: &mut Context<'_>, rows: Vec<SourceRow>) -> Result<(), ImportError> {
    let mut writes = ChatWrites::default();
    for row in rows {
        ctx.report.chats.read += 1;
        let chat = match DjangoChat::decode(&row) {
            Ok(chat) => chat,
            Err(reason) => {
                // Its id may not decode either; messages naming it are refused as missing.
                ctx.report.refuse(TABLE, row.key("id"), reason);
                continue;
            }
        };
        if let Err(reason) = check(ctx, &chat) {
            ctx.known.refused_chats.insert(chat.id);
            ctx.report.refuse(TABLE, chat.id.to_string(), reason);
            continue;
        }
        plan(ctx, &chat, &mut writes);
    }
    if let Some(db) = ctx.writer() {
        store::apply_chats(db, &writes)
            .await
            .map_err(|source| ImportError::Write {
                what: format!("a batch of {} new chats", writes.new.len()),
                source,
            })?;
    }
    Ok(())
}

fn check(ctx: &Context<'_>, chat: &DjangoChat) -> Result<(), String> {
    if chat.from_user == chat.to_user {
        return Err(format!("fromUser and toUser are the same user ({})", chat.from_user));
    }
    for (field, user) in [("fromUser", chat.from_user), ("toUser", chat.to_user)] {
        if !ctx.known.users.contains_key(&user) {
            return Err(missing_user(ctx, field, user));
        }
    }
    Ok(())
}

/// Why a reference to `user` cannot be followed.
pub(super) fn missing_user(ctx: &Context<'_>, field: &str, user: Uuid) -> String {
    if ctx.known.refused_users.contains(&user) {
        format!("{field} {user} was refused (see chat_user {user})")
    } else {
        format!("{field} {user} is not in chat_user (or was refused by an earlier import)")
    }
}

fn plan(ctx: &mut Context<'_>, chat: &DjangoChat, writes: &mut ChatWrites) {
    let key = store::pair_key(chat.from_user, chat.to_user);
    let known = &mut ctx.known;
    let Some(&target) = known.pairs.get(&key) else {
        known.pairs.insert(key, chat.id);
        known.chat_of.insert(chat.id, chat.id);
        known.chats.insert(
            chat.id,
            ChatState {
                low: chat.from_user.min(chat.to_user),
                high: chat.from_user.max(chat.to_user),
                last_seq: 0,
                created_at: chat.created_at,
                updated_at: chat.updated_at,
            },
        );
        writes.new.push(NewPairChat {
            id: chat.id,
            from_user: chat.from_user,
            to_user: chat.to_user,
            created_at: chat.created_at,
            updated_at: chat.updated_at,
        });
        ctx.report.chats.new += 1;
        return;
    };
    known.chat_of.insert(chat.id, target);
    let merged = target != chat.id;
    if merged {
        ctx.report.chats.merged += 1;
        if known.aliases.insert(chat.id) {
            writes.aliases.push((chat.id, target));
        }
    }
    // The pair's chat spans all of its Django chats: the earliest creation, the latest update.
    let Some(state) = known.chats.get_mut(&target) else {
        return;
    };
    let created_at = state.created_at.min(chat.created_at);
    let updated_at = state.updated_at.max(chat.updated_at);
    let changed = (created_at, updated_at) != (state.created_at, state.updated_at);
    if changed {
        state.created_at = created_at;
        state.updated_at = updated_at;
        writes.dates.push((target, created_at, updated_at));
    }
    if !merged {
        if changed {
            ctx.report.chats.updated += 1;
        } else {
            ctx.report.chats.unchanged += 1;
        }
    }
}
