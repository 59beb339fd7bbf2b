//! The `messages` table.
//!
//! Every chat numbers its messages with a strictly increasing `seq`, assigned in the same
//! transaction that stores the message (from `chats.last_seq`, whose row lock serialises writers
//! of one chat on PostgreSQL and whose single writer does so on SQLite).

use chrono::{DateTime, Utc};

use super::shared_commit::{self, SmallWrite, WriteConn};
use super::{now, Db};
use crate::ids::{ChatId, MessageId, UserId};
use crate::{with_conn, with_db, with_db_write};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub id: MessageId,
    pub chat_id: ChatId,
    pub seq: i64,
    pub author: Option<UserId>,
    pub client_id: Option<String>,
    pub body: String,
    pub kind: i32,
    pub extra_data: Option<String>,
    pub is_read: bool,
    pub deleted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(super) const COLUMNS: &str =
    "id, chat_id, seq, author, client_id, body, kind, extra_data, is_read, deleted, created_at, updated_at";

/// A message to store, already validated by the chat service.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub chat_id: ChatId,
    pub author: UserId,
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

pub(crate) async fn by_id(db: &Db, id: MessageId) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = $1 AND deleted = FALSE");
    with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(id).fetch_optional(pool).await)
}

/// Filters of the history listing (DRF's `filterset_fields`).
#[derive(Default, Debug, Clone)]
pub(crate) struct HistoryFilter {
    pub id: Option<MessageId>,
    pub kind: Option<i32>,
    pub is_read: Option<bool>,
    /// Only messages older than this sequence (cursor `?before=`).
    pub before_seq: Option<i64>,
    /// Only messages newer than this sequence (cursor `?after=`).
    pub after_seq: Option<i64>,
}

impl HistoryFilter {
    /// No filter at all: the app's "one chat, newest first, page N".
    pub(crate) fn is_plain(&self) -> bool {
        self.id.is_none()
            && self.kind.is_none()
            && self.is_read.is_none()
            && self.before_seq.is_none()
            && self.after_seq.is_none()
    }
}

/// A chat's message numbering: its last sequence number and how many messages it has deleted.
/// Sequence numbers are given out one by one from 1 in the storing transaction, so the chat
/// holds `last_seq - deleted_count` live messages.
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub(crate) struct ChatCounts {
    pub last_seq: i64,
    pub deleted_count: i64,
}

impl ChatCounts {
    pub(crate) fn live(&self) -> i64 {
        (self.last_seq - self.deleted_count).max(0)
    }
}

/// One page of a chat's live messages, newest first, and the total it was cut from. `counts`
/// are the chat's, read just before.
///
/// The app's plain page costs no count and no scan: the total is `counts.live()`, and while
/// the chat has never deleted a message the page is a range of sequence numbers (`seq <=
/// last_seq - offset`), however deep. Once it has, the page skips `offset` entries of the
/// index. Either way the page holds nothing newer than `counts`, so page and count agree as of
/// one moment (a message deleted in between can only leave the page short). Filtered pages
/// count their rows.
pub(crate) async fn history(
    db: &Db,
    chat: ChatId,
    counts: ChatCounts,
    filter: &HistoryFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<MessageRow>), sqlx::Error> {
    if filter.is_plain() {
        let total = counts.live();
        if limit == 0 {
            return Ok((total, Vec::new()));
        }
        let rows = if counts.deleted_count == 0 {
            // `deleted = FALSE` still: a delete may have landed since `counts` was read.
            let sql = format!(
                "SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND seq <= $2 AND deleted = FALSE \
                 ORDER BY seq DESC LIMIT $3"
            );
            with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql)
                .bind(chat).bind(counts.last_seq.saturating_sub(offset)).bind(limit)
                .fetch_all(pool).await)?
        } else {
            let sql = format!(
                "SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND seq <= $2 AND deleted = FALSE \
                 ORDER BY seq DESC LIMIT $3 OFFSET $4"
            );
            with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql)
                .bind(chat).bind(counts.last_seq).bind(limit).bind(offset)
                .fetch_all(pool).await)?
        };
        return Ok((total, rows));
    }
    filtered_history(db, chat, filter, limit, offset).await
}

/// A page under filters, with its count.
async fn filtered_history(
    db: &Db,
    chat: ChatId,
    filter: &HistoryFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<MessageRow>), sqlx::Error> {
    listed(db, Listing::Chat(chat), filter, limit, offset).await
}

/// One page of the live messages of every chat `member` is in, newest first (by time: the
/// sequences of different chats do not compare). The cursors of `filter` are not used.
pub(crate) async fn in_chats_of(
    db: &Db,
    member: crate::ids::UserId,
    filter: &HistoryFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<MessageRow>), sqlx::Error> {
    let filter = HistoryFilter {
        before_seq: None,
        after_seq: None,
        ..*filter
    };
    listed(db, Listing::ChatsOf(member), &filter, limit, offset).await
}

/// Which messages a listing reads.
#[derive(Clone, Copy)]
enum Listing {
    Chat(ChatId),
    ChatsOf(crate::ids::UserId),
}

async fn listed(
    db: &Db,
    listing: Listing,
    filter: &HistoryFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<MessageRow>), sqlx::Error> {
    // Only the filters in use make it into the SQL, so the plain "one chat, newest first" page
    // runs on the partial index of live messages alone.
    enum Param {
        Id(MessageId),
        Int(i32),
        Flag(bool),
        Seq(i64),
    }
    let (mut condition, scope) = match listing {
        Listing::Chat(chat) => (String::from("chat_id = $1 AND deleted = FALSE"), chat.0),
        Listing::ChatsOf(user) => (
            String::from("chat_id IN (SELECT chat_id FROM chat_members WHERE user_id = $1) AND deleted = FALSE"),
            user.0,
        ),
    };
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
    let sort = match listing {
        Listing::Chat(_) => format!("seq {order}"),
        Listing::ChatsOf(_) => format!("created_at {order}, id {order}"),
    };
    let page_sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE {condition} ORDER BY {sort} LIMIT ${n} OFFSET ${}",
        n + 1
    );
    with_db!(db, pool => {
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(scope);
        let mut page = sqlx::query_as::<_, MessageRow>(&page_sql).bind(scope);
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
pub async fn since(db: &Db, chat: ChatId, seq: i64, limit: i64) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3");
    with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(chat).bind(seq).bind(limit).fetch_all(pool).await)
}

pub(crate) async fn edit_body(db: &Db, id: MessageId, body: &str) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql =
        format!("UPDATE messages SET body = $2, updated_at = $3 WHERE id = $1 AND deleted = FALSE RETURNING {COLUMNS}");
    with_db_write!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(id).bind(body).bind(now()).fetch_optional(pool).await)
}

pub(crate) async fn set_read(db: &Db, id: MessageId, read: bool) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE messages SET is_read = $2, updated_at = $3 WHERE id = $1 AND deleted = FALSE RETURNING {COLUMNS}"
    );
    with_db_write!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(id).bind(read).bind(now()).fetch_optional(pool).await)
}

/// Soft delete: the row stays as a tombstone so catch-up can tell clients it is gone. The
/// chat's `deleted_count` moves in the same transaction (a history page's `count` is
/// `last_seq - deleted_count`).
pub(crate) async fn delete(db: &Db, id: MessageId) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE messages SET deleted = TRUE, body = '', extra_data = NULL, updated_at = $2 WHERE id = $1 AND deleted = FALSE RETURNING {COLUMNS}"
    );
    with_db_write!(db, pool => {
        let mut tx = crate::store::begin_write(pool).await?;
        let gone = sqlx::query_as::<_, MessageRow>(&sql).bind(id).bind(now()).fetch_optional(&mut *tx).await?;
        if let Some(gone) = &gone {
            sqlx::query("UPDATE chats SET deleted_count = deleted_count + 1 WHERE id = $1")
                .bind(gone.chat_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(gone)
    })
}

/// Marks as read the given messages that sit in `reader`'s chats and were written by someone
/// else; returns the rows that changed.
pub(crate) async fn mark_read_by_ids(
    db: &Db,
    reader: UserId,
    ids: &[MessageId],
) -> Result<Vec<MessageRow>, sqlx::Error> {
    shared_commit::store(
        db,
        MarkReadByIds {
            reader,
            ids: ids.to_vec(),
        },
    )
    .await
}

struct MarkReadByIds {
    reader: UserId,
    ids: Vec<MessageId>,
}

impl SmallWrite for MarkReadByIds {
    type Output = Vec<MessageRow>;
    const NEEDS_TRANSACTION: bool = true;

    async fn run(self, conn: WriteConn<'_>) -> Result<Self::Output, sqlx::Error> {
        let MarkReadByIds { reader, ids } = self;
        let sql = format!(
        "UPDATE messages SET is_read = TRUE, updated_at = $3 WHERE id = $1 AND deleted = FALSE AND is_read = FALSE \
         AND author IS NOT NULL AND author <> $2 \
         AND chat_id IN (SELECT chat_id FROM chat_members WHERE user_id = $2) RETURNING {COLUMNS}"
    );
        let at = now();
        with_conn!(conn, c => {
            let mut changed = Vec::new();
            for id in ids {
                if let Some(row) = sqlx::query_as::<_, MessageRow>(&sql).bind(id).bind(reader).bind(at).fetch_optional(&mut *c).await? {
                    changed.push(row);
                }
            }
            Ok(changed)
        })
    }
}

/// A read receipt: `reader` has read everything in `chat` up to `seq`. Moves their read mark
/// (never backwards) and, in two-person chats, sets `isRead` on the other person's messages.
/// Returns the new mark.
pub async fn mark_read_upto(
    db: &Db,
    chat: ChatId,
    reader: UserId,
    seq: i64,
    flag_messages: bool,
) -> Result<i64, sqlx::Error> {
    shared_commit::store(
        db,
        MarkReadUpto {
            chat,
            reader,
            seq,
            flag_messages,
        },
    )
    .await
}

struct MarkReadUpto {
    chat: ChatId,
    reader: UserId,
    seq: i64,
    flag_messages: bool,
}

impl SmallWrite for MarkReadUpto {
    type Output = i64;
    const NEEDS_TRANSACTION: bool = true;

    async fn run(self, conn: WriteConn<'_>) -> Result<i64, sqlx::Error> {
        let MarkReadUpto {
            chat,
            reader,
            seq,
            flag_messages,
        } = self;
        with_conn!(conn, c => {
            let mark: i64 = sqlx::query_scalar(
                "UPDATE chat_members SET last_read_seq = CASE WHEN last_read_seq < $3 THEN $3 ELSE last_read_seq END \
                 WHERE chat_id = $1 AND user_id = $2 RETURNING last_read_seq")
                .bind(chat).bind(reader).bind(seq)
                .fetch_one(&mut *c).await?;
            if flag_messages {
                sqlx::query(
                    "UPDATE messages SET is_read = TRUE, updated_at = $4 WHERE chat_id = $1 AND seq <= $3 \
                     AND is_read = FALSE AND deleted = FALSE AND author IS NOT NULL AND author <> $2")
                    .bind(chat).bind(reader).bind(seq).bind(now())
                    .execute(&mut *c).await?;
            }
            Ok(mark)
        })
    }
}

/// Every stored message, tombstones included.
pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM messages").fetch_one(pool).await)
}

/// What the admin's message search filters on; `None` leaves a criterion out.
#[derive(Default, Debug, Clone)]
pub(crate) struct MessageSearch {
    /// Text the message contains (case-insensitive).
    pub text: Option<String>,
    pub author: Option<UserId>,
    pub chat: Option<ChatId>,
    /// Written at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Written before this time.
    pub before: Option<DateTime<Utc>>,
}

/// One page of the live messages `search` selects, newest first, with their total.
pub(crate) async fn search(
    db: &Db,
    search: &MessageSearch,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<MessageRow>), sqlx::Error> {
    // Every criterion is bound, a NULL one selecting everything: one statement text.
    let condition = "deleted = FALSE \
        AND ($1 IS NULL OR LOWER(body) LIKE $1 ESCAPE '\\') \
        AND ($2 IS NULL OR author = $2) \
        AND ($3 IS NULL OR chat_id = $3) \
        AND ($4 IS NULL OR created_at >= $4) \
        AND ($5 IS NULL OR created_at < $5)";
    let text = search
        .text
        .as_ref()
        .map(|t| format!("%{}%", super::users::escape_like(&t.to_lowercase())));
    let count_sql = format!("SELECT COUNT(*) FROM messages WHERE {condition}");
    let page_sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE {condition} ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7"
    );
    with_db!(db, pool => {
        let total: i64 = sqlx::query_scalar(&count_sql)
            .bind(text.as_deref())
            .bind(search.author)
            .bind(search.chat)
            .bind(search.since)
            .bind(search.before)
            .fetch_one(pool)
            .await?;
        let rows = sqlx::query_as::<_, MessageRow>(&page_sql)
            .bind(text.as_deref())
            .bind(search.author)
            .bind(search.chat)
            .bind(search.since)
            .bind(search.before)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
        Ok((total, rows))
    })
}

/// Live messages written at or after `since`.
pub(crate) async fn count_since(db: &Db, since: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE created_at >= $1 AND deleted = FALSE")
        .bind(since)
        .fetch_one(pool)
        .await)
}

/// Live photo messages whose `extra_data` is still a `data:` URL, in id order after `after`
/// (`causerie import-django --convert-photos`).
pub(crate) async fn data_url_photos(db: &Db, after: MessageId, limit: i64) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE id > $1 AND deleted = FALSE AND kind = 2 \
         AND extra_data LIKE 'data:%' ORDER BY id LIMIT $2"
    );
    with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(after).bind(limit).fetch_all(pool).await)
}

/// Replaces a message's `extra_data` (a converted photo), leaving its other fields alone.
pub(crate) async fn set_extra_data(db: &Db, id: MessageId, extra: &str) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("UPDATE messages SET extra_data = $2 WHERE id = $1")
        .bind(id)
        .bind(extra)
        .execute(pool)
        .await
        .map(|_| ()))
}

/// The live messages of `chat` whose `extra_data` starts with `marker` and names `attachment`
/// (the LIKE only narrows the scan: the caller decodes each reference to be sure).
pub(crate) async fn carrying_attachment(
    db: &Db,
    chat: ChatId,
    marker: &str,
    attachment: &str,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND deleted = FALSE AND extra_data LIKE $2 ESCAPE '\\' \
         ORDER BY seq"
    );
    let pattern = format!(
        "{}%{}%",
        super::users::escape_like(marker),
        super::users::escape_like(attachment)
    );
    with_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(chat).bind(pattern).fetch_all(pool).await)
}

/// Rewrites a live message's attachment reference (`None`: it carries none now); the message
/// as it is afterwards.
pub(crate) async fn replace_extra_data(
    db: &Db,
    id: MessageId,
    extra: Option<&str>,
) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE messages SET extra_data = $2, updated_at = $3 WHERE id = $1 AND deleted = FALSE RETURNING {COLUMNS}"
    );
    with_db_write!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(id).bind(extra).bind(now()).fetch_optional(pool).await)
}
