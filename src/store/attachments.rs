//! The `attachments` table: what each stored file is, whose it is, and where it was posted.

use chrono::{DateTime, Utc};

use super::{now, Db};
use crate::ids::{AttachmentId, ChatId, UserId};
use crate::{with_db, with_db_write};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttachmentRow {
    pub id: AttachmentId,
    pub owner: Option<UserId>,
    pub chat_id: Option<ChatId>,
    pub content_type: String,
    pub name: String,
    pub size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumb_type: Option<String>,
    pub thumb_size: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub attached_at: Option<DateTime<Utc>>,
    /// The user whose avatar it is.
    pub avatar_of: Option<UserId>,
}

const COLUMNS: &str = "id, owner, chat_id, content_type, name, size, width, height, thumb_type, thumb_size, \
                       created_at, attached_at, avatar_of";

pub(crate) async fn insert(db: &Db, row: &AttachmentRow) -> Result<(), sqlx::Error> {
    let sql =
        format!("INSERT INTO attachments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)");
    with_db_write!(db, pool => sqlx::query(&sql)
        .bind(row.id)
        .bind(row.owner)
        .bind(row.chat_id)
        .bind(&row.content_type)
        .bind(&row.name)
        .bind(row.size)
        .bind(row.width)
        .bind(row.height)
        .bind(&row.thumb_type)
        .bind(row.thumb_size)
        .bind(row.created_at)
        .bind(row.attached_at)
        .bind(row.avatar_of)
        .execute(pool)
        .await
        .map(|_| ()))
}

pub(crate) async fn by_id(db: &Db, id: AttachmentId) -> Result<Option<AttachmentRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM attachments WHERE id = $1");
    with_db!(db, pool => sqlx::query_as::<_, AttachmentRow>(&sql).bind(id).fetch_optional(pool).await)
}

/// Bytes `owner` stored since `since` (the daily quota).
pub(crate) async fn bytes_since(db: &Db, owner: UserId, since: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    let sql = "SELECT CAST(COALESCE(SUM(size + COALESCE(thumb_size, 0)), 0) AS BIGINT) FROM attachments \
               WHERE owner = $1 AND created_at >= $2";
    with_db!(db, pool => sqlx::query_scalar::<_, i64>(sql).bind(owner).bind(since).fetch_one(pool).await)
}

/// The oldest upload `owner` made since `since` (when the quota frees up again).
pub(crate) async fn oldest_since(
    db: &Db,
    owner: UserId,
    since: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM attachments WHERE owner = $1 AND created_at >= $2 ORDER BY created_at LIMIT 1");
    let row = with_db!(db, pool => sqlx::query_as::<_, AttachmentRow>(&sql)
        .bind(owner)
        .bind(since)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(|r| r.created_at))
}

/// Records that a message in `chat` carries the attachment (its members may now read it).
pub(crate) async fn mark_attached(db: &Db, id: AttachmentId, chat: ChatId) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query(
        "UPDATE attachments SET chat_id = $1, attached_at = COALESCE(attached_at, $2) WHERE id = $3")
        .bind(chat)
        .bind(now())
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ()))
}

/// Makes the attachment `owner`'s avatar.
pub(crate) async fn mark_avatar(db: &Db, id: AttachmentId, owner: UserId) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("UPDATE attachments SET avatar_of = $1 WHERE id = $2")
        .bind(owner)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ()))
}

/// The attachments held as `owner`'s avatar.
pub(crate) async fn avatars_of(db: &Db, owner: UserId) -> Result<Vec<AttachmentRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM attachments WHERE avatar_of = $1");
    with_db!(db, pool => sqlx::query_as::<_, AttachmentRow>(&sql).bind(owner).fetch_all(pool).await)
}

pub(crate) async fn delete(db: &Db, id: AttachmentId) -> Result<bool, sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("DELETE FROM attachments WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// Attachments nobody can reach any more: never attached nor an avatar and older than `cutoff`,
/// or posted in a chat that was deleted since.
pub(crate) async fn abandoned(db: &Db, cutoff: DateTime<Utc>, limit: i64) -> Result<Vec<AttachmentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM attachments \
         WHERE (attached_at IS NULL AND avatar_of IS NULL AND created_at < $1) \
            OR (attached_at IS NOT NULL AND chat_id IS NULL) \
         LIMIT $2"
    );
    with_db!(db, pool => sqlx::query_as::<_, AttachmentRow>(&sql).bind(cutoff).bind(limit).fetch_all(pool).await)
}

/// Bytes stored in all (originals and thumbnails).
pub(crate) async fn total_bytes(db: &Db) -> Result<i64, sqlx::Error> {
    let sql = "SELECT CAST(COALESCE(SUM(size + COALESCE(thumb_size, 0)), 0) AS BIGINT) FROM attachments";
    with_db!(db, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await)
}

/// How many attachments there are (tests check that a refused upload stored nothing).
pub(crate) async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM attachments").fetch_one(pool).await)
}

/// What the admin's attachment list filters on; `None` filters nothing. `owners` holds at most
/// [`super::chats::MEMBER_FILTER_MAX`] ids (more are ignored).
#[derive(Clone, Debug, Default)]
pub(crate) struct AttachmentFilter {
    pub owners: Option<Vec<UserId>>,
    pub chat: Option<ChatId>,
    /// Carried by a message (true) or still waiting for one (false).
    pub attached: Option<bool>,
    /// The start of the type (`image/`, `application/pdf`).
    pub type_prefix: Option<String>,
}

/// One page of the attachments `filter` selects, newest first, with their total.
pub(crate) async fn filtered(
    db: &Db,
    filter: &AttachmentFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<AttachmentRow>), sqlx::Error> {
    let mut clauses = vec!["TRUE".to_string()];
    let mut owners: Vec<Option<UserId>> = Vec::new();
    if let Some(ids) = &filter.owners {
        clauses.push(super::any_of("owner", ids, &mut owners));
    }
    let mut n = owners.len();
    if filter.chat.is_some() {
        n += 1;
        clauses.push(format!("chat_id = ${n}"));
    }
    match filter.attached {
        Some(true) => clauses.push("attached_at IS NOT NULL".into()),
        Some(false) => clauses.push("attached_at IS NULL".into()),
        None => {}
    }
    let pattern = filter
        .type_prefix
        .as_deref()
        .map(|p| format!("{}%", super::users::escape_like(&p.to_lowercase())));
    if pattern.is_some() {
        n += 1;
        clauses.push(format!("LOWER(content_type) LIKE ${n} ESCAPE '\\'"));
    }
    let condition = clauses.join(" AND ");
    let count_sql = format!("SELECT COUNT(*) FROM attachments WHERE {condition}");
    let page_sql = format!(
        "SELECT {COLUMNS} FROM attachments WHERE {condition} ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    with_db!(db, pool => {
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        let mut page = sqlx::query_as::<_, AttachmentRow>(&page_sql);
        for id in &owners {
            count = count.bind(*id);
            page = page.bind(*id);
        }
        if let Some(chat) = filter.chat {
            count = count.bind(chat);
            page = page.bind(chat);
        }
        if let Some(pattern) = &pattern {
            count = count.bind(pattern);
            page = page.bind(pattern);
        }
        let total = count.fetch_one(pool).await?;
        let rows = page.bind(limit).bind(offset).fetch_all(pool).await?;
        Ok((total, rows))
    })
}
