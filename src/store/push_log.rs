//! The `push_attempts` table: the push log. One row per send to one device (outbox pushes and
//! test pushes alike) with what the provider answered, written after the send; the admin site
//! shows a user's newest rows. Pruned by the outbox workers, by age and by count.

use chrono::{DateTime, Utc};

use super::{now, Db};
use crate::ids::UserId;
use crate::{with_db, with_db_write};

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct AttemptRow {
    pub device_id: i64,
    pub device_kind: String,
    pub source: String,
    pub outcome: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// An attempt to record.
pub(crate) struct NewAttempt<'a> {
    pub user_id: UserId,
    pub device_id: i64,
    pub device_kind: &'a str,
    pub source: &'a str,
    pub outcome: &'a str,
    pub detail: &'a str,
}

pub(crate) async fn insert(db: &Db, row: &NewAttempt<'_>) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query(
        "INSERT INTO push_attempts (user_id, device_id, device_kind, source, outcome, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(row.user_id)
        .bind(row.device_id)
        .bind(row.device_kind)
        .bind(row.source)
        .bind(row.outcome)
        .bind(row.detail)
        .bind(now())
        .execute(pool)
        .await
        .map(|_| ()))
}

/// `user`'s newest attempts, newest first.
pub(crate) async fn newest_for_user(db: &Db, user: UserId, limit: i64) -> Result<Vec<AttemptRow>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, AttemptRow>(
        "SELECT device_id, device_kind, source, outcome, detail, at FROM push_attempts \
         WHERE user_id = $1 ORDER BY id DESC LIMIT $2")
        .bind(user)
        .bind(limit)
        .fetch_all(pool)
        .await)
}

/// Removes attempts older than `before`, and all but the newest `keep`; how many went.
pub(crate) async fn prune(db: &Db, before: DateTime<Utc>, keep: i64) -> Result<u64, sqlx::Error> {
    let old = with_db_write!(db, pool => sqlx::query("DELETE FROM push_attempts WHERE at < $1")
        .bind(before).execute(pool).await.map(|r| r.rows_affected()))?;
    // Ids grow with time: everything below the `keep`-th newest id goes.
    let excess = with_db_write!(db, pool => sqlx::query(
        "DELETE FROM push_attempts WHERE id <= \
           (SELECT id FROM push_attempts ORDER BY id DESC LIMIT 1 OFFSET $1)")
        .bind(keep).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(old + excess)
}
