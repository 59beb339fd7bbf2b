//! The `chats` and `chat_members` tables.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::messages::{ChatCounts, MessageRow};
use super::{id_chunks, is_unique_violation, now, Db};
use crate::ids::{ChatId, MessageId, UserId};
use crate::{with_db, with_db_write};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ChatRow {
    pub id: ChatId,
    pub from_user: Option<UserId>,
    pub to_user: Option<UserId>,
    pub is_group: bool,
    pub title: Option<String>,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: UserId,
    pub is_admin: bool,
    pub last_read_seq: i64,
    pub joined_at: DateTime<Utc>,
}

const COLUMNS: &str = "c.id, c.from_user, c.to_user, c.is_group, c.title, c.last_seq, c.created_at, c.updated_at";

/// The key that makes a pair's chat unique whichever of the two created it.
fn pair_key(a: UserId, b: UserId) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("{low}:{high}")
}

pub async fn by_id(db: &Db, id: ChatId) -> Result<Option<ChatRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM chats c WHERE c.id = $1");
    with_db!(db, pool => sqlx::query_as::<_, ChatRow>(&sql).bind(id).fetch_optional(pool).await)
}

pub async fn pair(db: &Db, a: UserId, b: UserId) -> Result<Option<ChatRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM chats c WHERE c.pair_key = $1");
    with_db!(db, pool => sqlx::query_as::<_, ChatRow>(&sql).bind(pair_key(a, b)).fetch_optional(pool).await)
}

/// Finds the pair's chat or creates it; `true` when it was created now. Two concurrent creators
/// race on the unique pair key and the loser reads the winner's chat.
pub async fn find_or_create_pair(db: &Db, from: UserId, to: UserId) -> Result<(ChatRow, bool), sqlx::Error> {
    if let Some(chat) = pair(db, from, to).await? {
        return Ok((chat, false));
    }
    let id = ChatId::new();
    let at = now();
    let key = pair_key(from, to);
    // An async block, so that `?` lands in `created` (a lost race is handled below) instead of
    // returning the unique violation from this function.
    let created: Result<(), sqlx::Error> = with_db_write!(db, pool => async {
        let mut tx = crate::store::begin_write(pool).await?;
        sqlx::query(
            "INSERT INTO chats (id, from_user, to_user, pair_key, is_group, title, last_seq, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, FALSE, NULL, 0, $5, $5)")
            .bind(id).bind(from).bind(to).bind(&key).bind(at)
            .execute(&mut *tx).await?;
        for user in [from, to] {
            sqlx::query("INSERT INTO chat_members (chat_id, user_id, is_admin, last_read_seq, joined_at) VALUES ($1, $2, TRUE, 0, $3)")
                .bind(id).bind(user).bind(at)
                .execute(&mut *tx).await?;
        }
        tx.commit().await
    }
    .await);
    match created {
        Ok(()) => {}
        Err(err) if is_unique_violation(&err) => {}
        Err(err) => return Err(err),
    }
    match by_id(db, id).await? {
        Some(chat) => Ok((chat, true)),
        None => pair(db, from, to)
            .await?
            .map(|c| (c, false))
            .ok_or(sqlx::Error::RowNotFound),
    }
}

/// Creates a two-person chat for each pair in one transaction (pairs that already have one are
/// left out), for fixtures that need thousands of chats: the load generator's.
pub(crate) async fn insert_pairs(db: &Db, pairs: &[(UserId, UserId)]) -> Result<Vec<ChatId>, sqlx::Error> {
    let at = now();
    with_db_write!(db, pool => {
        let mut tx = crate::store::begin_write(pool).await?;
        let mut ids = Vec::with_capacity(pairs.len());
        for &(from, to) in pairs {
            let id = ChatId::new();
            let created = sqlx::query(
                "INSERT INTO chats (id, from_user, to_user, pair_key, is_group, title, last_seq, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, FALSE, NULL, 0, $5, $5) ON CONFLICT DO NOTHING")
                .bind(id).bind(from).bind(to).bind(pair_key(from, to)).bind(at)
                .execute(&mut *tx).await?.rows_affected();
            if created == 0 {
                continue;
            }
            for user in [from, to] {
                sqlx::query("INSERT INTO chat_members (chat_id, user_id, is_admin, last_read_seq, joined_at) VALUES ($1, $2, TRUE, 0, $3)")
                    .bind(id).bind(user).bind(at)
                    .execute(&mut *tx).await?;
            }
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    })
}

/// Creates a group chat with `admin` as its first admin and the given members.
pub(crate) async fn create_group(
    db: &Db,
    title: &str,
    admin: UserId,
    members: &[UserId],
) -> Result<ChatRow, sqlx::Error> {
    let id = ChatId::new();
    let at = now();
    with_db_write!(db, pool => {
        let mut tx = crate::store::begin_write(pool).await?;
        sqlx::query(
            "INSERT INTO chats (id, from_user, to_user, pair_key, is_group, title, last_seq, created_at, updated_at) \
             VALUES ($1, NULL, NULL, NULL, TRUE, $2, 0, $3, $3)")
            .bind(id).bind(title).bind(at)
            .execute(&mut *tx).await?;
        sqlx::query("INSERT INTO chat_members (chat_id, user_id, is_admin, last_read_seq, joined_at) VALUES ($1, $2, TRUE, 0, $3)")
            .bind(id).bind(admin).bind(at)
            .execute(&mut *tx).await?;
        for user in members.iter().filter(|u| **u != admin) {
            sqlx::query("INSERT INTO chat_members (chat_id, user_id, is_admin, last_read_seq, joined_at) VALUES ($1, $2, FALSE, 0, $3) ON CONFLICT DO NOTHING")
                .bind(id).bind(user).bind(at)
                .execute(&mut *tx).await?;
        }
        tx.commit().await
    })?;
    by_id(db, id).await?.ok_or(sqlx::Error::RowNotFound)
}

pub(crate) async fn set_title(db: &Db, chat: ChatId, title: &str) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("UPDATE chats SET title = $2, updated_at = $3 WHERE id = $1")
        .bind(chat).bind(title).bind(now()).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Adds a member; false when they already were one. New members start at the chat's current
/// sequence so joining does not flood them with unread history.
pub(crate) async fn add_member(db: &Db, chat: ChatId, user: UserId, admin: bool) -> Result<bool, sqlx::Error> {
    let done = with_db_write!(db, pool => sqlx::query(
        "INSERT INTO chat_members (chat_id, user_id, is_admin, last_read_seq, joined_at) \
         SELECT $1, $2, $3, last_seq, $4 FROM chats WHERE id = $1 ON CONFLICT DO NOTHING")
        .bind(chat).bind(user).bind(admin).bind(now())
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Removes a member. On PostgreSQL the chat's row is locked first, as the message batch locks
/// it before checking its authors' membership (`store::message_batch`): a removal then either
/// commits before a batch's check reads it or waits for that batch's commit, so no message is
/// stored from someone already removed. SQLite's single writer orders the two by itself.
pub async fn remove_member(db: &Db, chat: ChatId, user: UserId) -> Result<bool, sqlx::Error> {
    const DELETE: &str = "DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2";
    let done = match db {
        Db::Postgres(pool) => {
            let mut tx = crate::store::begin_write(pool).await?;
            sqlx::query("SELECT id FROM chats WHERE id = $1 FOR UPDATE")
                .bind(chat)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query(DELETE).bind(chat).bind(user).execute(&mut *tx).await?;
            tx.commit().await?;
            done.rows_affected()
        }
        Db::Sqlite(sqlite) => sqlx::query(DELETE)
            .bind(chat)
            .bind(user)
            .execute(sqlite.writes())
            .await?
            .rows_affected(),
    };
    Ok(done == 1)
}

/// Which of these (chat, user) pairs are memberships now, in one statement per backend (a few
/// on SQLite for many pairs): the message batch checks its authors with it in the storing
/// transaction, and the fan-out its sockets' users after a relay outage.
pub(crate) async fn members_among(
    db: &Db,
    pairs: &[(ChatId, UserId)],
) -> Result<HashSet<(ChatId, UserId)>, sqlx::Error> {
    match db {
        Db::Postgres(pool) => members_among_pg(&mut *pool.acquire().await?, pairs).await,
        Db::Sqlite(sqlite) => members_among_sqlite(&mut *sqlite.reads().acquire().await?, pairs).await,
    }
}

pub(crate) async fn members_among_pg(
    conn: &mut sqlx::PgConnection,
    pairs: &[(ChatId, UserId)],
) -> Result<HashSet<(ChatId, UserId)>, sqlx::Error> {
    if pairs.is_empty() {
        return Ok(HashSet::new());
    }
    let (chats, users): (Vec<ChatId>, Vec<UserId>) = pairs.iter().copied().unzip();
    let found: Vec<(ChatId, UserId)> = sqlx::query_as(
        "SELECT m.chat_id, m.user_id FROM unnest($1::uuid[], $2::uuid[]) AS k(chat_id, user_id) \
         JOIN chat_members m ON m.chat_id = k.chat_id AND m.user_id = k.user_id",
    )
    .bind(&chats)
    .bind(&users)
    .fetch_all(conn)
    .await?;
    Ok(found.into_iter().collect())
}

/// Pairs per SQLite statement; unused slots are bound to NULL, which matches nothing, so one
/// statement text serves every batch.
const PAIRS: usize = 64;

pub(crate) async fn members_among_sqlite(
    conn: &mut sqlx::SqliteConnection,
    pairs: &[(ChatId, UserId)],
) -> Result<HashSet<(ChatId, UserId)>, sqlx::Error> {
    let mut found = HashSet::new();
    if pairs.is_empty() {
        return Ok(found);
    }
    // Anonymous `?`, as in the batch's other SQLite statements (named lookups are quadratic).
    let sql = format!(
        "SELECT chat_id, user_id FROM chat_members WHERE (chat_id, user_id) IN (VALUES {})",
        vec!["(?, ?)"; PAIRS].join(", ")
    );
    for chunk in pairs.chunks(PAIRS) {
        let mut query = sqlx::query_as::<_, (ChatId, UserId)>(&sql);
        for slot in 0..PAIRS {
            let pair = chunk.get(slot);
            query = query.bind(pair.map(|p| p.0)).bind(pair.map(|p| p.1));
        }
        found.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

pub async fn member(db: &Db, chat: ChatId, user: UserId) -> Result<Option<MemberRow>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, MemberRow>(
        "SELECT user_id, is_admin, last_read_seq, joined_at FROM chat_members WHERE chat_id = $1 AND user_id = $2")
        .bind(chat).bind(user).fetch_optional(pool).await)
}

pub async fn members(db: &Db, chat: ChatId) -> Result<Vec<MemberRow>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, MemberRow>(
        "SELECT user_id, is_admin, last_read_seq, joined_at FROM chat_members WHERE chat_id = $1 ORDER BY joined_at, user_id")
        .bind(chat).fetch_all(pool).await)
}

/// The chat's message numbering (see [`ChatCounts`]), if it exists.
pub(crate) async fn counts(db: &Db, chat: ChatId) -> Result<Option<ChatCounts>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, ChatCounts>(
        "SELECT last_seq, deleted_count FROM chats WHERE id = $1")
        .bind(chat).fetch_optional(pool).await)
}

/// The chat's message numbering, if `user` is one of its members: the membership check and
/// what a history page needs, in one statement.
pub(crate) async fn member_counts(db: &Db, chat: ChatId, user: UserId) -> Result<Option<ChatCounts>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, ChatCounts>(
        "SELECT c.last_seq, c.deleted_count FROM chat_members m JOIN chats c ON c.id = m.chat_id \
         WHERE m.chat_id = $1 AND m.user_id = $2")
        .bind(chat).bind(user).fetch_optional(pool).await)
}

/// The chat's live messages counted row by row, beside what `last_seq - deleted_count` says,
/// in one statement (one snapshot): the tests check the two agree under concurrent writes.
pub async fn live_counts(db: &Db, chat: ChatId) -> Result<(i64, i64), sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, (i64, i64)>(
        "SELECT (SELECT COUNT(*) FROM messages WHERE chat_id = $1 AND deleted = FALSE), \
                (SELECT last_seq - deleted_count FROM chats WHERE id = $1)")
        .bind(chat).fetch_one(pool).await)
}

/// Users who share at least one chat with `user` (the audience of their presence).
pub(crate) async fn contacts(db: &Db, user: UserId) -> Result<Vec<UserId>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar::<_, UserId>(
        "SELECT DISTINCT other.user_id FROM chat_members me \
         JOIN chat_members other ON other.chat_id = me.chat_id AND other.user_id <> me.user_id \
         WHERE me.user_id = $1")
        .bind(user).fetch_all(pool).await)
}

/// A chat as one member sees it in their list: the chat, that member's unread count, the
/// chat's last live message, and how many chats the whole list holds.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct ListedChat {
    #[sqlx(flatten)]
    pub chat: ChatRow,
    /// Chats in the whole list (every page), counted by the same statement.
    pub total: i64,
    pub unread: i64,
    /// Whether that member muted the chat (no push notifications).
    pub muted: bool,
    #[sqlx(flatten)]
    last: LastMessageColumns,
}

/// The last live message's columns, all NULL when the chat has none.
#[derive(Clone, Debug, sqlx::FromRow)]
struct LastMessageColumns {
    lm_id: Option<MessageId>,
    lm_seq: Option<i64>,
    lm_author: Option<UserId>,
    lm_client_id: Option<String>,
    lm_body: Option<String>,
    lm_kind: Option<i32>,
    lm_extra_data: Option<String>,
    lm_is_read: Option<bool>,
    lm_created_at: Option<DateTime<Utc>>,
    lm_updated_at: Option<DateTime<Utc>>,
}

impl ListedChat {
    /// The chat's last live message, if it has one.
    pub(crate) fn last_message(&self) -> Option<MessageRow> {
        let l = &self.last;
        Some(MessageRow {
            id: l.lm_id?,
            chat_id: self.chat.id,
            seq: l.lm_seq?,
            author: l.lm_author,
            client_id: l.lm_client_id.clone(),
            body: l.lm_body.clone()?,
            kind: l.lm_kind?,
            extra_data: l.lm_extra_data.clone(),
            is_read: l.lm_is_read?,
            deleted: false,
            created_at: l.lm_created_at?,
            updated_at: l.lm_updated_at?,
        })
    }
}

/// One page of the chats `user` belongs to, most recently active first, each with `user`'s
/// unread count (messages from others after their read mark and not marked read one by one),
/// its last live message and the list's total: one statement however many chats the page
/// holds. The page is cut first (`p`), so the per-chat work is done for the page's chats only:
/// the unread count reads the partial index of unread live messages (`messages_unread`, from
/// the member's read mark on), the last message is one step back along `messages_chat_seq`.
pub(crate) async fn page_for_user(
    db: &Db,
    user: UserId,
    only: Option<ChatId>,
    limit: i64,
    offset: i64,
) -> Result<Vec<ListedChat>, sqlx::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        listed_sql("WHERE m.user_id = $1 AND ($2 IS NULL OR c.id = $2) ORDER BY c.updated_at DESC, c.id DESC LIMIT $3 OFFSET $4")
    });
    with_db!(db, pool => sqlx::query_as::<_, ListedChat>(SQL.as_str())
        .bind(user).bind(only).bind(limit).bind(offset)
        .fetch_all(pool).await)
}

/// These chats of `user`'s list as [`page_for_user`] shows them (those `user` belongs to; the
/// rows' `total` counts these only): what a kept page reads again when some of its chats
/// changed.
pub(crate) async fn rows_for_user(db: &Db, user: UserId, chats: &[ChatId]) -> Result<Vec<ListedChat>, sqlx::Error> {
    let mut rows = Vec::with_capacity(chats.len());
    for chunk in id_chunks(chats) {
        let sql = listed_sql(&format!("WHERE m.user_id = $1 AND c.id IN {}", chunk.placeholders(2)));
        rows.extend(with_db!(db, pool => {
            let mut query = sqlx::query_as::<_, ListedChat>(&sql).bind(user);
            for id in chunk.padded() {
                query = query.bind(id);
            }
            query.fetch_all(pool).await
        })?);
    }
    Ok(rows)
}

/// The chat list's statement over the member rows `selection` picks (its WHERE, ORDER BY
/// and LIMIT, with `$1` the member).
fn listed_sql(selection: &str) -> String {
    format!(
        "SELECT p.id, p.from_user, p.to_user, p.is_group, p.title, p.last_seq, p.created_at, p.updated_at, \
           p.total, p.muted, \
           (SELECT COUNT(*) FROM messages u WHERE u.chat_id = p.id AND u.seq > p.last_read_seq \
              AND u.is_read = FALSE AND u.deleted = FALSE AND (u.author IS NULL OR u.author <> $1)) AS unread, \
           l.id AS lm_id, l.seq AS lm_seq, l.author AS lm_author, l.client_id AS lm_client_id, l.body AS lm_body, \
           l.kind AS lm_kind, l.extra_data AS lm_extra_data, l.is_read AS lm_is_read, \
           l.created_at AS lm_created_at, l.updated_at AS lm_updated_at \
         FROM ( \
           SELECT c.id, c.from_user, c.to_user, c.is_group, c.title, c.last_seq, c.created_at, c.updated_at, \
             m.last_read_seq, m.muted, COUNT(*) OVER () AS total \
           FROM chat_members m JOIN chats c ON c.id = m.chat_id \
           {selection} \
         ) p \
         LEFT JOIN messages l ON l.id = (SELECT x.id FROM messages x WHERE x.chat_id = p.id AND x.deleted = FALSE \
           ORDER BY x.seq DESC LIMIT 1) \
         ORDER BY p.updated_at DESC, p.id DESC"
    )
}

/// The ids of the chats `user` belongs to.
pub(crate) async fn ids_for_user(db: &Db, user: UserId) -> Result<Vec<ChatId>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar::<_, ChatId>("SELECT chat_id FROM chat_members WHERE user_id = $1")
        .bind(user).fetch_all(pool).await)
}

/// How many chats `user` belongs to (the page's `count`).
pub(crate) async fn count_for_user(db: &Db, user: UserId, only: Option<ChatId>) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM chat_members m WHERE m.user_id = $1 AND ($2 IS NULL OR m.chat_id = $2)")
        .bind(user).bind(only).fetch_one(pool).await)
}

/// A member of one of several chats.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct ChatMemberRow {
    pub chat_id: ChatId,
    pub user_id: UserId,
    pub is_admin: bool,
}

/// The members of these chats, in joining order per chat.
pub(crate) async fn members_of(db: &Db, chats: &[ChatId]) -> Result<Vec<ChatMemberRow>, sqlx::Error> {
    let mut rows = Vec::new();
    for chunk in id_chunks(chats) {
        let sql = format!(
            "SELECT chat_id, user_id, is_admin FROM chat_members WHERE chat_id IN {} \
             ORDER BY chat_id, joined_at, user_id",
            chunk.placeholders(1)
        );
        rows.extend(with_db!(db, pool => {
            let mut query = sqlx::query_as::<_, ChatMemberRow>(&sql);
            for id in chunk.padded() {
                query = query.bind(id);
            }
            query.fetch_all(pool).await
        })?);
    }
    Ok(rows)
}

pub async fn all(db: &Db, limit: i64) -> Result<Vec<ChatRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM chats c ORDER BY c.updated_at DESC LIMIT $1");
    with_db!(db, pool => sqlx::query_as::<_, ChatRow>(&sql).bind(limit).fetch_all(pool).await)
}

pub async fn delete(db: &Db, id: ChatId) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("DELETE FROM chats WHERE id = $1").bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A chat as staff see it in the admin site: the chat, its live message count and when its last
/// live message was written.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct OverviewRow {
    #[sqlx(flatten)]
    pub chat: ChatRow,
    pub message_count: i64,
    pub last_message_at: Option<DateTime<Utc>>,
}

/// Most users a member filter may name (four id chunks in one statement).
pub(crate) const MEMBER_FILTER_MAX: usize = 512;

/// One page of every chat (only those with a member among `members`, when given), most recently
/// active first, with their total. `members` holds at most [`MEMBER_FILTER_MAX`] ids.
pub(crate) async fn overview_page(
    db: &Db,
    members: Option<&[UserId]>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<OverviewRow>), sqlx::Error> {
    let mut condition = String::from("TRUE");
    let mut bound: Vec<Option<UserId>> = Vec::new();
    if let Some(members) = members {
        // Each chunk is its own `IN (…)` list of a fixed size, so the statement text depends
        // only on how many chunks there are.
        let any = super::any_of("m.user_id", members, &mut bound);
        condition = format!("EXISTS (SELECT 1 FROM chat_members m WHERE m.chat_id = c.id AND {any})");
    }
    let n = bound.len() + 1;
    let count_sql = format!("SELECT COUNT(*) FROM chats c WHERE {condition}");
    let page_sql = format!(
        "SELECT {COLUMNS}, \
           (SELECT COUNT(*) FROM messages x WHERE x.chat_id = c.id AND x.deleted = FALSE) AS message_count, \
           (SELECT l.created_at FROM messages l WHERE l.chat_id = c.id AND l.deleted = FALSE \
              ORDER BY l.seq DESC LIMIT 1) AS last_message_at \
         FROM chats c WHERE {condition} ORDER BY c.updated_at DESC, c.id DESC LIMIT ${n} OFFSET ${}",
        n + 1
    );
    with_db!(db, pool => {
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        let mut page = sqlx::query_as::<_, OverviewRow>(&page_sql);
        for id in &bound {
            count = count.bind(*id);
            page = page.bind(*id);
        }
        let total = count.fetch_one(pool).await?;
        let rows = page.bind(limit).bind(offset).fetch_all(pool).await?;
        Ok((total, rows))
    })
}

pub(crate) async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM chats").fetch_one(pool).await)
}

// ---- push (issue 12) ----------------------------------------------------------------------

/// Sets `user`'s mute flag on `chat`; false when `user` is not a member.
pub(crate) async fn set_muted(db: &Db, chat: ChatId, user: UserId, muted: bool) -> Result<bool, sqlx::Error> {
    let changed = with_db_write!(db, pool => sqlx::query(
        "UPDATE chat_members SET muted = $3 WHERE chat_id = $1 AND user_id = $2")
        .bind(chat).bind(user).bind(muted).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(changed > 0)
}

/// `user`'s unread messages over all their chats, counted as each chat's `unreadCount` is.
pub(crate) async fn unread_total(db: &Db, user: UserId) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM chat_members m JOIN messages u ON u.chat_id = m.chat_id AND u.seq > m.last_read_seq \
         WHERE m.user_id = $1 AND u.deleted = FALSE AND u.is_read = FALSE AND (u.author IS NULL OR u.author <> $1)")
        .bind(user).fetch_one(pool).await)
}
