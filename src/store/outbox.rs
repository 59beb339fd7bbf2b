//! The `push_outbox` table: one row per (message, recipient), written by the group commit in
//! the message's own transaction (`message_batch`), claimed and finished by the push workers.
//!
//! Claiming takes, for a few users with a job due, every pending job of theirs at once (that is
//! the coalescing) and leases them: the claim sets `leased_until`, so a job is never sent by two
//! workers, and a worker that dies leaves its jobs to be claimed again once the lease is over.
//! On PostgreSQL the claim locks the rows with `FOR UPDATE SKIP LOCKED`, so two instances
//! claiming at the same moment take disjoint sets; on SQLite the single writer orders them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{id_chunks, now, Db};
use crate::ids::{ChatId, MessageId, UserId};
use crate::{with_db, with_db_write};

/// A claimed job with what its notification shows.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct JobRow {
    pub id: i64,
    pub user_id: UserId,
    pub chat_id: ChatId,
    pub message_id: MessageId,
    pub attempts: i32,
    pub done_devices: String,
    pub author: Option<UserId>,
    pub body: String,
    pub kind: i32,
    pub deleted: bool,
    pub is_group: bool,
    pub title: Option<String>,
    pub muted: Option<bool>,
}

/// The final states a job can end in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Final {
    Sent,
    Failed,
    /// Not sent, on purpose: the user came back online, muted the chat, has no device left,
    /// or the message was deleted.
    Dropped,
}

impl Final {
    fn word(self) -> &'static str {
        match self {
            Final::Sent => "sent",
            Final::Failed => "failed",
            Final::Dropped => "dropped",
        }
    }
}

const PENDING_FREE: &str = "status = 'pending' AND (leased_until IS NULL OR leased_until <= $1)";

/// Claims the pending jobs of at most `users` users who have one due, leased for `lease`.
pub(crate) async fn claim(db: &Db, users: i64, lease: Duration) -> Result<Vec<JobRow>, sqlx::Error> {
    let at = now();
    let until = at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    let due_users = format!("SELECT DISTINCT user_id FROM push_outbox WHERE {PENDING_FREE} AND due_at <= $1 LIMIT $3");
    let claimed: Vec<i64> = match db {
        Db::Postgres(pool) => {
            let sql = format!(
                "UPDATE push_outbox SET leased_until = $2, attempts = attempts + 1 WHERE id IN ( \
                   SELECT id FROM push_outbox WHERE {PENDING_FREE} AND user_id IN ({due_users}) \
                   FOR UPDATE SKIP LOCKED) RETURNING id"
            );
            sqlx::query_scalar(&sql)
                .bind(at)
                .bind(until)
                .bind(users)
                .fetch_all(pool)
                .await?
        }
        Db::Sqlite(sqlite) => {
            let pool = sqlite.writes();
            let sql = format!(
                "UPDATE push_outbox SET leased_until = $2, attempts = attempts + 1 \
                 WHERE {PENDING_FREE} AND user_id IN ({due_users}) RETURNING id"
            );
            sqlx::query_scalar(&sql)
                .bind(at)
                .bind(until)
                .bind(users)
                .fetch_all(pool)
                .await?
        }
    };
    jobs(db, &claimed).await
}

/// The jobs `ids` with their message, chat and the recipient's mute flag now.
async fn jobs(db: &Db, ids: &[i64]) -> Result<Vec<JobRow>, sqlx::Error> {
    let mut rows = Vec::new();
    for chunk in id_chunks(ids) {
        let sql = format!(
            "SELECT o.id, o.user_id, o.chat_id, o.message_id, o.attempts, o.done_devices, \
               m.author, m.body, m.kind, m.deleted, c.is_group, c.title, mem.muted \
             FROM push_outbox o JOIN messages m ON m.id = o.message_id JOIN chats c ON c.id = o.chat_id \
             LEFT JOIN chat_members mem ON mem.chat_id = o.chat_id AND mem.user_id = o.user_id \
             WHERE o.id IN {} ORDER BY o.user_id, o.created_at, o.id",
            chunk.placeholders(1)
        );
        rows.extend(with_db!(db, pool => {
            let mut query = sqlx::query_as::<_, JobRow>(&sql);
            for id in chunk.padded() {
                query = query.bind(id);
            }
            query.fetch_all(pool).await
        })?);
    }
    Ok(rows)
}

/// Ends jobs in a final state.
pub(crate) async fn finish(db: &Db, ids: &[i64], state: Final, error: Option<&str>) -> Result<(), sqlx::Error> {
    let at = now();
    for chunk in id_chunks(ids) {
        let sql = format!(
            "UPDATE push_outbox SET status = $1, last_error = $2, finished_at = $3, leased_until = NULL \
             WHERE id IN {}",
            chunk.placeholders(4)
        );
        with_db_write!(db, pool => {
            let mut query = sqlx::query(&sql).bind(state.word()).bind(error).bind(at);
            for id in chunk.padded() {
                query = query.bind(id);
            }
            query.execute(pool).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Puts jobs back for another try at `due`, remembering the devices already reached.
pub(crate) async fn retry(
    db: &Db,
    ids: &[i64],
    due: DateTime<Utc>,
    done_devices: &str,
    error: &str,
) -> Result<(), sqlx::Error> {
    for chunk in id_chunks(ids) {
        let sql = format!(
            "UPDATE push_outbox SET due_at = $1, done_devices = $2, last_error = $3, leased_until = NULL \
             WHERE id IN {}",
            chunk.placeholders(4)
        );
        with_db_write!(db, pool => {
            let mut query = sqlx::query(&sql).bind(super::truncate(due)).bind(done_devices).bind(error);
            for id in chunk.padded() {
                query = query.bind(id);
            }
            query.execute(pool).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Pending jobs and the creation time of the oldest (metrics).
pub(crate) async fn depth(db: &Db) -> Result<(i64, Option<DateTime<Utc>>), sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, (i64, Option<DateTime<Utc>>)>(
        "SELECT COUNT(*), MIN(created_at) FROM push_outbox WHERE status = 'pending'")
        .fetch_one(pool).await)
}

/// When the next pending job is due, if any (the workers sleep until then).
pub(crate) async fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
        "SELECT MIN(CASE WHEN leased_until IS NOT NULL AND leased_until > due_at THEN leased_until ELSE due_at END) \
         FROM push_outbox WHERE status = 'pending'")
        .fetch_one(pool).await)
}

/// Removes finished jobs older than `before` (the outbox keeps final states for a while).
pub(crate) async fn purge_finished(db: &Db, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("DELETE FROM push_outbox WHERE status <> 'pending' AND finished_at < $1")
        .bind(before).execute(pool).await.map(|r| r.rows_affected()))
}

/// A user's job states, oldest first (tests and `causerie push` reports).
pub(crate) async fn states_for_user(db: &Db, user: UserId) -> Result<Vec<(String, i32)>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, (String, i32)>(
        "SELECT status, attempts FROM push_outbox WHERE user_id = $1 ORDER BY id")
        .bind(user).fetch_all(pool).await)
}

/// A job as the push log shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct JobState {
    pub id: i64,
    pub chat_id: ChatId,
    pub message_id: MessageId,
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// `user`'s newest jobs in every state (finished ones are kept a week), newest first.
pub(crate) async fn newest_for_user(db: &Db, user: UserId, limit: i64) -> Result<Vec<JobState>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, JobState>(
        "SELECT id, chat_id, message_id, status, attempts, created_at, due_at, last_error, finished_at \
         FROM push_outbox WHERE user_id = $1 ORDER BY id DESC LIMIT $2")
        .bind(user).bind(limit).fetch_all(pool).await)
}
