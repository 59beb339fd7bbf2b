//! `chat_message` → `messages`, numbered per chat, with the members' read marks.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::batches::Batches;
use super::chats::missing_user;
use super::progress::Progress;
use super::source::{self, DjangoMessage, Source, SourceError, SourceRow};
use super::{Context, ImportError};
use crate::store::import::{self as store, ChatProgress, MessageUpdate};
use crate::store::messages::MessageRow;

const TABLE: &str = "chat_message";

pub(super) async fn run(ctx: &mut Context<'_>, source: &mut Source) -> Result<(), ImportError> {
    let since = ctx.since(TABLE);
    let total = source
        .count(&source::count_changed_since(TABLE, since), since)
        .await
        .map_err(SourceError::Sql)?;
    let progress = Progress::start(ctx.progress, "messages", total.max(0) as u64);
    let sql = source::changed_since(source::MESSAGES, source::MESSAGES_ORDER, since);
    let mut batches = Batches::new(source.rows(&sql, since), progress);
    // Statistics again each time the messages written in this run have doubled.
    let mut next_statistics = 5_000;
    while let Some(batch) = batches.next().await? {
        import_batch(ctx, batch).await?;
        if ctx.report.messages.new >= next_statistics {
            next_statistics *= 2;
            refresh_statistics(ctx).await?;
        }
    }
    Ok(())
}

async fn import_batch(ctx: &mut Context<'_>, rows: Vec<SourceRow>) -> Result<(), ImportError> {
    let mut accepted = Vec::with_capacity(rows.len());
    for row in rows {
        ctx.report.messages.read += 1;
        let message = match DjangoMessage::decode(&row) {
            Ok(message) => message,
            Err(reason) => {
                ctx.report.refuse(TABLE, row.key("id"), reason);
                continue;
            }
        };
        ctx.saw(TABLE, message.updated_at);
        if !ctx.report.full_read {
            ctx.known.messages_read.insert(message.id);
        }
        match check(ctx, &message) {
            Ok(chat) => accepted.push((message, chat)),
            Err(reason) => ctx.report.refuse(TABLE, message.id.to_string(), reason),
        }
    }
    let existing = match ctx.target {
        Some(db) => {
            let ids: Vec<Uuid> = accepted.iter().map(|(m, _)| m.id).collect();
            store::existing_messages(db, &ids).await.map_err(ImportError::Target)?
        }
        None => Default::default(),
    };
    let mut new = Vec::new();
    let mut updates = Vec::new();
    // Sorted, so concurrent writers (there are none, but a re-run may overlap) lock in one order.
    let mut numbered = BTreeSet::new();
    let mut touched = BTreeSet::new();
    for (m, chat) in accepted {
        let kind = m.kind as i32; // checked to be 0..=2
        if let Some(found) = existing.get(&m.id) {
            // Imported before: its content may change, its chat and seq never do.
            let same = found.body == m.body
                && found.kind == kind
                && found.extra_data == m.extra_data
                && found.is_read == m.is_read
                && found.updated_at == m.updated_at;
            if same || found.deleted {
                ctx.report.messages.unchanged += 1;
            } else {
                ctx.report.messages.updated += 1;
                if found.is_read != m.is_read {
                    touched.insert(found.chat_id);
                }
                updates.push(MessageUpdate {
                    id: m.id,
                    body: m.body,
                    kind,
                    extra_data: m.extra_data,
                    is_read: m.is_read,
                    updated_at: m.updated_at,
                });
            }
            continue;
        }
        let Some(state) = ctx.known.chats.get_mut(&chat) else {
            // `check` found the chat; it is always in the map with its state.
            ctx.report
                .refuse(TABLE, m.id.to_string(), format!("chat {chat} is not a two-person chat"));
            continue;
        };
        state.last_seq += 1;
        state.updated_at = state.updated_at.max(m.created_at);
        numbered.insert(chat);
        touched.insert(chat);
        ctx.report.messages.new += 1;
        new.push(MessageRow {
            id: m.id.into(),
            chat_id: chat.into(),
            seq: state.last_seq,
            author: Some(m.author.into()),
            client_id: None,
            body: m.body,
            kind,
            extra_data: m.extra_data,
            is_read: m.is_read,
            deleted: false,
            created_at: m.created_at,
            updated_at: m.updated_at,
        });
    }
    let chats: Vec<ChatProgress> = numbered
        .iter()
        .filter_map(|id| {
            ctx.known.chats.get(id).map(|s| ChatProgress {
                id: *id,
                last_seq: s.last_seq,
                updated_at: s.updated_at,
            })
        })
        .collect();
    if let Some(db) = ctx.writer() {
        let touched: Vec<Uuid> = touched.into_iter().collect();
        store::apply_messages(db, &new, &updates, &chats, &touched)
            .await
            .map_err(|source| ImportError::Write {
                what: format!("a batch of {} new and {} changed messages", new.len(), updates.len()),
                source,
            })?;
    }
    Ok(())
}

pub(super) async fn refresh_statistics(ctx: &Context<'_>) -> Result<(), ImportError> {
    match ctx.writer() {
        Some(db) => db
            .refresh_planner_statistics()
            .await
            .map_err(|source| ImportError::Write {
                what: "planner statistics".into(),
                source,
            }),
        None => Ok(()),
    }
}

/// The Causerie chat the message goes to, or why it is refused.
fn check(ctx: &Context<'_>, m: &DjangoMessage) -> Result<Uuid, String> {
    let known = &ctx.known;
    let Some(&chat) = known.chat_of.get(&m.chat) else {
        return Err(if known.refused_chats.contains(&m.chat) {
            format!("refChat {} was refused (see chat_chat {})", m.chat, m.chat)
        } else {
            format!("refChat {} is not in chat_chat", m.chat)
        });
    };
    if !known.users.contains_key(&m.author) {
        return Err(missing_user(ctx, "author", m.author));
    }
    match known.chats.get(&chat) {
        Some(state) if state.has_member(m.author) => {}
        _ => {
            return Err(format!(
                "author {} is not one of the two users of chat {}",
                m.author, m.chat
            ))
        }
    }
    if !(0..=2).contains(&m.kind) {
        return Err(format!("type {} is not 0 (text), 1 (geolocation) or 2 (photo)", m.kind));
    }
    Ok(chat)
}

/// Django marks messages read with a queryset update in places, which leaves `updatedAt` as
/// it was, so the watermark cannot see it. After a delta, every message still unread here is
/// looked up in Django (in pages), and those Django has read are marked read here.
pub(super) async fn recheck_read_flags(ctx: &mut Context<'_>, source: &mut Source) -> Result<(), ImportError> {
    let Some(db) = ctx.target else {
        return Ok(());
    };
    if ctx.report.full_read {
        // Every message was just read with its current flag.
        return Ok(());
    }
    const PAGE: i64 = 500;
    let mut after = None;
    loop {
        let page = store::unread_after(db, after, PAGE)
            .await
            .map_err(ImportError::Target)?;
        let Some(&(last, _)) = page.last() else {
            break;
        };
        after = Some(last);
        let ids: Vec<Uuid> = page
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !ctx.known.messages_read.contains(id))
            .collect();
        let read = source.read_message_ids(&ids).await.map_err(SourceError::Sql)?;
        ctx.report.marked_read += read.len() as u64;
        if let Some(writer) = ctx.writer() {
            let chats: BTreeSet<Uuid> = page
                .iter()
                .filter(|(id, _)| read.contains(id))
                .map(|(_, chat)| *chat)
                .collect();
            let chats: Vec<Uuid> = chats.into_iter().collect();
            store::mark_read(writer, &read, &chats)
                .await
                .map_err(|source| ImportError::Write {
                    what: format!("read flags of {} messages", read.len()),
                    source,
                })?;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(())
}
