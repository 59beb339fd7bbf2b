//! The `users` table's presence columns: `online` and `last_connexion_date` as the finished app
//! shows them, and the app's own declaration (`presence_declared`, `presence_declared_at`).
//! Every change of `online` is a conditional update, so that of two instances (or two tasks)
//! making the same change only one sees it made, and only that one announces it.

use chrono::{DateTime, Utc};

use super::shared_commit::{self, SmallWrite, WriteConn};
use super::{id_chunks, now, Db};
use crate::ids::UserId;
use crate::{with_conn, with_db, with_db_write};

/// Records the app's declaration and shows it; the time when `online` changed, None when it
/// already was `online`. `last_connexion_date` is the app's to send with it, as in Django (a
/// PATCH changes only the fields it names).
pub async fn declare(db: &Db, id: UserId, online: bool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    shared_commit::store(db, Declare { id, online }).await
}

struct Declare {
    id: UserId,
    online: bool,
}

impl SmallWrite for Declare {
    type Output = Option<DateTime<Utc>>;
    const NEEDS_TRANSACTION: bool = true;

    async fn run(self, conn: WriteConn<'_>) -> Result<Self::Output, sqlx::Error> {
        let Declare { id, online } = self;
        let at = now();
        let changed = with_conn!(conn, c => {
            sqlx::query("UPDATE users SET presence_declared = $2, presence_declared_at = $3 WHERE id = $1")
                .bind(id)
                .bind(online)
                .bind(at)
                .execute(&mut *c)
                .await?;
            sqlx::query("UPDATE users SET online = $2 WHERE id = $1 AND online <> $2")
                .bind(id)
                .bind(online)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok((changed == 1).then_some(at))
    }
}

/// Sockets of these users opened: each online from now on. The users whose `online` changed
/// (the others were online already), and the time of the change: one statement and one commit
/// for all of them, which is what lets a storm of handshakes (each a new user online) go
/// faster than one commit each.
pub async fn sockets_opened(db: &Db, ids: &[UserId]) -> Result<(Vec<UserId>, DateTime<Utc>), sqlx::Error> {
    shared_commit::store(db, SocketsOpened { ids: ids.to_vec() }).await
}

struct SocketsOpened {
    ids: Vec<UserId>,
}

impl SmallWrite for SocketsOpened {
    type Output = (Vec<UserId>, DateTime<Utc>);
    const NEEDS_TRANSACTION: bool = false;

    async fn run(self, mut conn: WriteConn<'_>) -> Result<Self::Output, sqlx::Error> {
        let SocketsOpened { ids } = self;
        let at = now();
        let mut changed = Vec::new();
        for chunk in id_chunks(&ids) {
            let sql = format!(
                "UPDATE users SET online = TRUE, last_connexion_date = $1 \
             WHERE id IN {} AND online = FALSE RETURNING id",
                chunk.placeholders(2)
            );
            changed.extend(with_conn!(&mut conn, c => {
                let mut query = sqlx::query_scalar::<_, UserId>(&sql).bind(at);
                for id in chunk.padded() {
                    query = query.bind(id);
                }
                query.fetch_all(&mut **c).await
            })?);
        }
        Ok((changed, at))
    }
}

/// The user's last socket closed: offline unless they declared themselves online. The time of
/// the change, None when nothing changed.
pub async fn sockets_gone(db: &Db, id: UserId) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    shared_commit::store(db, SocketsGone { id }).await
}

struct SocketsGone {
    id: UserId,
}

impl SmallWrite for SocketsGone {
    type Output = Option<DateTime<Utc>>;
    const NEEDS_TRANSACTION: bool = false;

    async fn run(self, conn: WriteConn<'_>) -> Result<Self::Output, sqlx::Error> {
        let SocketsGone { id } = self;
        let at = now();
        let changed = with_conn!(conn, c => sqlx::query(
        "UPDATE users SET online = FALSE, last_connexion_date = $2 \
         WHERE id = $1 AND online = TRUE AND presence_declared = FALSE")
        .bind(id)
        .bind(at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok((changed == 1).then_some(at))
    }
}

/// Not seen since `cutoff`: offline, and the declaration forgotten, unless it was made after
/// `cutoff` (while the sweep that decided this ran). The time of the change, None when nothing
/// changed.
pub(crate) async fn expire(db: &Db, id: UserId, cutoff: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let at = now();
    let changed = with_db_write!(db, pool => sqlx::query(
        "UPDATE users SET online = FALSE, presence_declared = FALSE, last_connexion_date = $2 \
         WHERE id = $1 AND online = TRUE AND (presence_declared_at IS NULL OR presence_declared_at < $3)")
        .bind(id)
        .bind(at)
        .bind(cutoff)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok((changed == 1).then_some(at))
}

/// What the user's contacts are shown: `online` and `lastConnexionDate` (None: no such user).
pub async fn shown(db: &Db, id: UserId) -> Result<Option<(bool, Option<DateTime<Utc>>)>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, (bool, Option<DateTime<Utc>>)>(
        "SELECT online, last_connexion_date FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await)
}

/// Every user shown online.
pub(crate) async fn online_ids(db: &Db) -> Result<Vec<UserId>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar::<_, UserId>("SELECT id FROM users WHERE online = TRUE")
        .fetch_all(pool)
        .await)
}
