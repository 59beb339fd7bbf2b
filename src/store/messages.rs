//! The `messages` table.
//!
//! Every chat numbers its messages with a strictly increasing `seq`, assigned in the same
//! transaction that stores the message (from `chats.last_seq`, whose row lock serialises writers
//! of one chat on PostgreSQL and whose single writer does so on SQLite).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{now, Db};
use crate::with_db;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub chat_id: Uuid,
    pub seq: i64,
    pub author: Option<Uuid>,
    pub client_id: Option<String>,
    pub body: String,
    pub kind: i32,
    pub extra_data: Option<String>,
    pub is_read: bool,
    pub deleted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, chat_id, seq, author, client_id, body, kind, extra_data, is_read, deleted, created_at, updated_at";

/// A message to store, already validated by the chat service.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub chat_id: Uuid,
    pub author: Uuid,
    pub client_id: Option<String>,
    pub body: String,
    pub kind: i32,
    pub extra_data: Option<String>,
}

/// What storing one message produced.
#[derive(Clone, Debug)]
pub struct Stored {
    pub row: MessageRow,
    /// False when `client_id` matched a message stored earlier: nothing new was written.
    pub created: bool,
}

/// Sizes of multi-row INSERTs and of clientId lookups. A batch is cut into pieces of these
/// sizes only, so a handful of statement texts cover every batch and each is prepared once per
/// connection (a text per batch size would be prepared again for almost every batch).
const PIECES: [usize; 4] = [64, 16, 4, 1];

/// Cuts `len` items into pieces of the [`PIECES`] sizes, largest first.
fn pieces(mut len: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for size in PIECES {
        while len >= size {
            out.push(size);
            len -= size;
        }
    }
    out
}

fn insert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let p = i * 9;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, FALSE, FALSE, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                p + 8,
                p + 9,
                p + 9
            )
        })
        .collect();
    format!(
        "INSERT INTO messages (id, chat_id, seq, author, client_id, body, kind, extra_data, is_read, deleted, created_at, updated_at) VALUES {}",
        values.join(", ")
    )
}

/// A lookup of up to [`LOOKUP`] clientIds; unused slots are bound to NULL, which matches nothing.
const LOOKUP: usize = 64;

fn lookup_sql() -> String {
    let placeholders: Vec<String> = (1..=LOOKUP).map(|i| format!("${i}")).collect();
    format!(
        "SELECT {COLUMNS} FROM messages WHERE client_id IN ({})",
        placeholders.join(", ")
    )
}

/// Stores a batch in one transaction (group commit). Results come back in input order.
///
/// A handful of statements per batch, not per message: one lookup of earlier `clientId`s, one
/// sequence reservation per chat (`last_seq + k`, chats in id order so that concurrent batches
/// on PostgreSQL lock them in the same order), and multi-row inserts.
pub async fn insert_batch(db: &Db, batch: &[NewMessage]) -> Result<Vec<Stored>, sqlx::Error> {
    let at = now();
    // SQLite: take the write lock up front. A deferred transaction starts as a reader (the
    // clientId lookup) and cannot upgrade once another connection has written meanwhile
    // (SQLITE_BUSY at once, the busy timeout does not apply), failing the whole batch.
    let begin = if db.is_postgres() { "BEGIN" } else { "BEGIN IMMEDIATE" };
    let client_ids: Vec<&str> = batch.iter().filter_map(|m| m.client_id.as_deref()).collect();
    with_db!(db, pool => {
        let mut tx = pool.begin_with(begin).await?;

        // Messages already stored under the same (chat, author, clientId): retries.
        let mut earlier: Vec<MessageRow> = Vec::new();
        let lookup = lookup_sql();
        for ids in client_ids.chunks(LOOKUP) {
            let mut query = sqlx::query_as::<_, MessageRow>(&lookup);
            for slot in 0..LOOKUP {
                query = query.bind(ids.get(slot).copied());
            }
            earlier.extend(query.fetch_all(&mut *tx).await?);
        }

        // Decide, in input order, which messages are new; retries point at what they repeat.
        enum Slot { Earlier(usize), New(usize) }
        let key = |chat: Uuid, author: Uuid, client: &str| (chat, author, client.to_string());
        let earlier_at: std::collections::HashMap<_, usize> = earlier.iter().enumerate()
            .filter_map(|(i, r)| Some((key(r.chat_id, r.author?, r.client_id.as_deref()?), i)))
            .collect();
        let mut fresh_at = std::collections::HashMap::new();
        let mut slots = Vec::with_capacity(batch.len());
        let mut fresh: Vec<&NewMessage> = Vec::new();
        for new in batch {
            let Some(client) = new.client_id.as_deref() else {
                slots.push(Slot::New(fresh.len()));
                fresh.push(new);
                continue;
            };
            let k = key(new.chat_id, new.author, client);
            if let Some(&pos) = earlier_at.get(&k) {
                slots.push(Slot::Earlier(pos));
            } else if let Some(&pos) = fresh_at.get(&k) {
                slots.push(Slot::New(pos));
            } else {
                fresh_at.insert(k, fresh.len());
                slots.push(Slot::New(fresh.len()));
                fresh.push(new);
            }
        }

        // Reserve each chat's next sequences in one statement per chat.
        let mut chats: Vec<Uuid> = fresh.iter().map(|m| m.chat_id).collect();
        chats.sort();
        chats.dedup();
        let mut next_seq = std::collections::HashMap::with_capacity(chats.len());
        for chat in chats {
            let count = fresh.iter().filter(|m| m.chat_id == chat).count() as i64;
            let last: i64 = sqlx::query_scalar(
                "UPDATE chats SET last_seq = last_seq + $2, updated_at = $3 WHERE id = $1 RETURNING last_seq")
                .bind(chat).bind(count).bind(at)
                .fetch_one(&mut *tx).await?;
            next_seq.insert(chat, last - count + 1);
        }
        let rows: Vec<MessageRow> = fresh.iter().map(|m| {
            let seq = next_seq.get_mut(&m.chat_id).expect("reserved above");
            let row = MessageRow {
                id: Uuid::now_v7(),
                chat_id: m.chat_id,
                seq: *seq,
                author: Some(m.author),
                client_id: m.client_id.clone(),
                body: m.body.clone(),
                kind: m.kind,
                extra_data: m.extra_data.clone(),
                is_read: false,
                deleted: false,
                created_at: at,
                updated_at: at,
            };
            *seq += 1;
            row
        }).collect();

        let mut rest = &rows[..];
        for size in pieces(rows.len()) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let sql = insert_sql(size);
            let mut query = sqlx::query(&sql);
            for row in chunk {
                query = query.bind(row.id).bind(row.chat_id).bind(row.seq).bind(row.author)
                    .bind(row.client_id.as_deref()).bind(&row.body).bind(row.kind)
                    .bind(row.extra_data.as_deref()).bind(row.created_at);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;

        let out = slots.into_iter().map(|slot| match slot {
            Slot::Earlier(pos) => Stored { row: earlier[pos].clone(), created: false },
            Slot::New(pos) => Stored { row: rows[pos].clone(), created: true },
        }).collect::<Vec<_>>();
        // A message repeated inside the batch is created once: only its first slot says so.
        let mut seen = std::collections::HashSet::new();
        Ok(out.into_iter().map(|s| {
            let first = seen.insert(s.row.id);
            Stored { created: s.created && first, ..s }
        }).collect())
    })
}

pub async fn by_id(db: &Db, id: Uuid) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = $1 AND deleted = FALSE");
    with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(id).fetch_optional(pool).await)
}

/// Filters of the history listing (DRF's `filterset_fields`).
#[derive(Default, Debug, Clone)]
pub struct HistoryFilter {
    pub id: Option<Uuid>,
    pub kind: Option<i32>,
    pub is_read: Option<bool>,
    /// Only messages older than this sequence (cursor `?before=`).
    pub before_seq: Option<i64>,
    /// Only messages newer than this sequence (cursor `?after=`).
    pub after_seq: Option<i64>,
}

/// One page of a chat's live messages, newest first.
pub async fn history(
    db: &Db,
    chat: Uuid,
    filter: &HistoryFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<MessageRow>), sqlx::Error> {
    // Only the filters in use make it into the SQL, so the plain "one chat, newest first" page
    // runs on the partial index of live messages alone.
    enum Param {
        Id(Uuid),
        Int(i32),
        Flag(bool),
        Seq(i64),
    }
    let mut condition = String::from("chat_id = $1 AND deleted = FALSE");
    let mut params = Vec::new();
    let mut add = |clause: &str, param: Param| {
        params.push(param);
        condition.push_str(&format!(" AND {clause} ${}", params.len() + 1));
    };
    if let Some(id) = filter.id {
        add("id =", Param::Id(id));
    }
    if let Some(kind) = filter.kind {
        add("kind =", Param::Int(kind));
    }
    if let Some(read) = filter.is_read {
        add("is_read =", Param::Flag(read));
    }
    if let Some(seq) = filter.before_seq {
        add("seq <", Param::Seq(seq));
    }
    if let Some(seq) = filter.after_seq {
        add("seq >", Param::Seq(seq));
    }
    let n = params.len() + 2;
    let count_sql = format!("SELECT COUNT(*) FROM messages WHERE {condition}");
    // `?after=` pages forward in time, the others back from the newest.
    let ascending = filter.after_seq.is_some() && filter.before_seq.is_none();
    let order = if ascending { "ASC" } else { "DESC" };
    let page_sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE {condition} ORDER BY seq {order} LIMIT ${n} OFFSET ${}",
        n + 1
    );
    with_db!(db, pool => {
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(chat);
        let mut page = sqlx::query_as::<_, MessageRow>(&page_sql).bind(chat);
        for param in &params {
            (count, page) = match param {
                Param::Id(v) => (count.bind(*v), page.bind(*v)),
                Param::Int(v) => (count.bind(*v), page.bind(*v)),
                Param::Flag(v) => (count.bind(*v), page.bind(*v)),
                Param::Seq(v) => (count.bind(*v), page.bind(*v)),
            };
        }
        let total = count.fetch_one(pool).await?;
        let mut rows = page.bind(limit).bind(offset).fetch_all(pool).await?;
        if ascending {
            rows.reverse();
        }
        Ok((total, rows))
    })
}

/// Everything after `seq` in chat order, deleted messages included (as tombstones), for catch-up.
pub async fn since(db: &Db, chat: Uuid, seq: i64, limit: i64) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3");
    with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(chat).bind(seq).bind(limit).fetch_all(pool).await)
}

pub async fn last_in_chat(db: &Db, chat: Uuid) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND deleted = FALSE ORDER BY seq DESC LIMIT 1");
    with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(chat).fetch_optional(pool).await)
}

/// Messages from others that `user` has not read: after their read mark and not marked one by one.
pub async fn unread_count(db: &Db, chat: Uuid, user: Uuid) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages WHERE chat_id = $1 AND deleted = FALSE AND is_read = FALSE \
         AND (author IS NULL OR author <> $2) \
         AND seq > COALESCE((SELECT last_read_seq FROM chat_members WHERE chat_id = $1 AND user_id = $2), 0)")
        .bind(chat).bind(user).fetch_one(pool).await)
}

pub async fn edit_body(db: &Db, id: Uuid, body: &str) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql =
        format!("UPDATE messages SET body = $2, updated_at = $3 WHERE id = $1 AND deleted = FALSE RETURNING {COLUMNS}");
    with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(id).bind(body).bind(now()).fetch_optional(pool).await)
}

pub async fn set_read(db: &Db, id: Uuid, read: bool) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE messages SET is_read = $2, updated_at = $3 WHERE id = $1 AND deleted = FALSE RETURNING {COLUMNS}"
    );
    with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(id).bind(read).bind(now()).fetch_optional(pool).await)
}

/// Soft delete: the row stays as a tombstone so catch-up can tell clients it is gone.
pub async fn delete(db: &Db, id: Uuid) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE messages SET deleted = TRUE, body = '', extra_data = NULL, updated_at = $2 WHERE id = $1 AND deleted = FALSE RETURNING {COLUMNS}"
    );
    with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(id).bind(now()).fetch_optional(pool).await)
}

/// Marks as read the given messages that sit in `reader`'s chats and were written by someone
/// else; returns the rows that changed.
pub async fn mark_read_by_ids(db: &Db, reader: Uuid, ids: &[Uuid]) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE messages SET is_read = TRUE, updated_at = $3 WHERE id = $1 AND deleted = FALSE AND is_read = FALSE \
         AND author IS NOT NULL AND author <> $2 \
         AND chat_id IN (SELECT chat_id FROM chat_members WHERE user_id = $2) RETURNING {COLUMNS}"
    );
    let at = now();
    with_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let mut changed = Vec::new();
        for id in ids {
            if let Some(row) = sqlx::query_as::<_, MessageRow>(&sql).bind(id).bind(reader).bind(at).fetch_optional(&mut *tx).await? {
                changed.push(row);
            }
        }
        tx.commit().await?;
        Ok(changed)
    })
}

/// A read receipt: `reader` has read everything in `chat` up to `seq`. Moves their read mark
/// (never backwards) and, in two-person chats, sets `isRead` on the other person's messages.
/// Returns the new mark.
pub async fn mark_read_upto(
    db: &Db,
    chat: Uuid,
    reader: Uuid,
    seq: i64,
    flag_messages: bool,
) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let mark: i64 = sqlx::query_scalar(
            "UPDATE chat_members SET last_read_seq = CASE WHEN last_read_seq < $3 THEN $3 ELSE last_read_seq END \
             WHERE chat_id = $1 AND user_id = $2 RETURNING last_read_seq")
            .bind(chat).bind(reader).bind(seq)
            .fetch_one(&mut *tx).await?;
        if flag_messages {
            sqlx::query(
                "UPDATE messages SET is_read = TRUE, updated_at = $4 WHERE chat_id = $1 AND seq <= $3 \
                 AND is_read = FALSE AND deleted = FALSE AND author IS NOT NULL AND author <> $2")
                .bind(chat).bind(reader).bind(seq).bind(now())
                .execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(mark)
    })
}

pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM messages").fetch_one(pool).await)
}

#[cfg(test)]
mod tests {
    #[test]
    fn pieces_cover_any_batch_with_few_sizes() {
        assert_eq!(super::pieces(0), Vec::<usize>::new());
        assert_eq!(super::pieces(1), vec![1]);
        assert_eq!(super::pieces(87), vec![64, 16, 4, 1, 1, 1]);
        for n in 0..600 {
            assert_eq!(super::pieces(n).iter().sum::<usize>(), n);
        }
    }
}
