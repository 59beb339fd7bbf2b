//! The `devices` table: push tokens as fcm-django keeps them. A registration id is held by one
//! device row at most (fcm-django's serializer enforces it per user; Causerie moves a token to
//! its newest owner, so the column is unique).

use chrono::{DateTime, Utc};

use super::{is_unique_violation, now, Db};
use crate::ids::UserId;
use crate::{with_db, with_db_write};

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct DeviceRow {
    pub id: i64,
    pub user_id: UserId,
    pub name: Option<String>,
    pub registration_id: String,
    pub device_id: Option<String>,
    pub active: bool,
    pub kind: String,
    pub date_created: DateTime<Utc>,
}

const COLUMNS: &str = "id, user_id, name, registration_id, device_id, active, kind, date_created";

/// A device's writable fields.
#[derive(Clone, Debug)]
pub(crate) struct DeviceFields {
    pub name: Option<String>,
    pub registration_id: String,
    pub device_id: Option<String>,
    pub active: bool,
    pub kind: String,
}

/// What registering a token did.
#[derive(Debug)]
pub(crate) enum Registered {
    Created(DeviceRow),
    /// The caller already holds this token, active.
    Duplicate,
}

pub(crate) async fn by_registration(db: &Db, registration_id: &str) -> Result<Option<DeviceRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE registration_id = $1");
    with_db!(db, pool => sqlx::query_as::<_, DeviceRow>(&sql).bind(registration_id).fetch_optional(pool).await)
}

/// Registers `fields.registration_id` for `owner`: a new row, or the row that held the token
/// (another user's, or the owner's inactive one) rewritten for `owner`.
pub(crate) async fn register(db: &Db, owner: UserId, fields: &DeviceFields) -> Result<Registered, sqlx::Error> {
    let at = now();
    let select = format!("SELECT {COLUMNS} FROM devices WHERE registration_id = $1");
    let update = format!(
        "UPDATE devices SET user_id = $2, name = $3, device_id = $4, active = $5, kind = $6, \
         date_created = $7, updated_at = $7 WHERE id = $1 RETURNING {COLUMNS}"
    );
    let insert = format!(
        "INSERT INTO devices (user_id, name, registration_id, device_id, active, kind, date_created, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
    );
    let result: Result<Registered, sqlx::Error> = with_db_write!(db, pool => async {
        let mut tx = crate::store::begin_write(pool).await?;
        let held = sqlx::query_as::<_, DeviceRow>(&select)
            .bind(&fields.registration_id)
            .fetch_optional(&mut *tx)
            .await?;
        let row = match held {
            Some(held) if held.user_id == owner && held.active => return Ok(Registered::Duplicate),
            Some(held) => {
                sqlx::query_as::<_, DeviceRow>(&update)
                    .bind(held.id).bind(owner).bind(fields.name.as_deref()).bind(fields.device_id.as_deref())
                    .bind(fields.active).bind(&fields.kind).bind(at)
                    .fetch_one(&mut *tx).await?
            }
            None => {
                sqlx::query_as::<_, DeviceRow>(&insert)
                    .bind(owner).bind(fields.name.as_deref()).bind(&fields.registration_id)
                    .bind(fields.device_id.as_deref()).bind(fields.active).bind(&fields.kind).bind(at)
                    .fetch_one(&mut *tx).await?
            }
        };
        tx.commit().await?;
        Ok(Registered::Created(row))
    }.await);
    match result {
        // Two registrations of one new token at once: the loser sees the winner's row.
        Err(err) if is_unique_violation(&err) => Ok(Registered::Duplicate),
        other => other,
    }
}

/// One page of `user`'s devices, oldest first.
pub(crate) async fn page_for_user(
    db: &Db,
    user: UserId,
    limit: i64,
    offset: i64,
) -> Result<Vec<DeviceRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE user_id = $1 ORDER BY id LIMIT $2 OFFSET $3");
    with_db!(db, pool => sqlx::query_as::<_, DeviceRow>(&sql).bind(user).bind(limit).bind(offset).fetch_all(pool).await)
}

pub(crate) async fn count_for_user(db: &Db, user: UserId) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE user_id = $1")
        .bind(user).fetch_one(pool).await)
}

/// `user`'s active devices.
pub(crate) async fn active_for_user(db: &Db, user: UserId) -> Result<Vec<DeviceRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE user_id = $1 AND active = TRUE ORDER BY id");
    with_db!(db, pool => sqlx::query_as::<_, DeviceRow>(&sql).bind(user).fetch_all(pool).await)
}

/// What changing a device did.
#[derive(Debug)]
pub(crate) enum Changed {
    Updated(DeviceRow),
    /// The new registration id is another device of the same user.
    Duplicate,
}

/// Rewrites device `id`'s fields. A new registration id held by another user's device moves
/// here (that row is removed); held by another of the owner's devices, it is a duplicate.
pub(crate) async fn update(db: &Db, id: i64, owner: UserId, fields: &DeviceFields) -> Result<Changed, sqlx::Error> {
    let at = now();
    let select = format!("SELECT {COLUMNS} FROM devices WHERE registration_id = $1");
    let update = format!(
        "UPDATE devices SET name = $2, registration_id = $3, device_id = $4, active = $5, kind = $6, updated_at = $7 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let result: Result<Changed, sqlx::Error> = with_db_write!(db, pool => async {
        let mut tx = crate::store::begin_write(pool).await?;
        let held = sqlx::query_as::<_, DeviceRow>(&select)
            .bind(&fields.registration_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(held) = held.filter(|held| held.id != id) {
            if held.user_id == owner {
                return Ok(Changed::Duplicate);
            }
            sqlx::query("DELETE FROM devices WHERE id = $1").bind(held.id).execute(&mut *tx).await?;
        }
        let row = sqlx::query_as::<_, DeviceRow>(&update)
            .bind(id).bind(fields.name.as_deref()).bind(&fields.registration_id)
            .bind(fields.device_id.as_deref()).bind(fields.active).bind(&fields.kind).bind(at)
            .fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(Changed::Updated(row))
    }.await);
    match result {
        Err(err) if is_unique_violation(&err) => Ok(Changed::Duplicate),
        other => other,
    }
}

pub(crate) async fn delete(db: &Db, id: i64) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("DELETE FROM devices WHERE id = $1").bind(id).execute(pool).await.map(|_| ()))
}

/// Stops pushing to a device the provider no longer knows (the row stays, as fcm-django's does).
pub(crate) async fn deactivate(db: &Db, id: i64) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("UPDATE devices SET active = FALSE, updated_at = $2 WHERE id = $1")
        .bind(id).bind(now()).execute(pool).await.map(|_| ()))
}

/// Turns pushing to a device on or off (the admin site); the changed row, if it exists.
pub(crate) async fn set_active(db: &Db, id: i64, active: bool) -> Result<Option<DeviceRow>, sqlx::Error> {
    let sql = format!("UPDATE devices SET active = $2, updated_at = $3 WHERE id = $1 RETURNING {COLUMNS}");
    with_db_write!(db, pool => sqlx::query_as::<_, DeviceRow>(&sql)
        .bind(id).bind(active).bind(now()).fetch_optional(pool).await)
}

/// What the admin's device list filters on; `None` filters nothing. `owners` holds at most
/// [`super::chats::MEMBER_FILTER_MAX`] ids (more are ignored).
#[derive(Clone, Debug, Default)]
pub(crate) struct DeviceFilter {
    pub owners: Option<Vec<UserId>>,
    pub active: Option<bool>,
    pub kind: Option<String>,
}

/// One page of the devices `filter` selects, newest first, with their total.
pub(crate) async fn filtered(
    db: &Db,
    filter: &DeviceFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<DeviceRow>), sqlx::Error> {
    let mut clauses = vec!["TRUE".to_string()];
    let mut owners: Vec<Option<UserId>> = Vec::new();
    if let Some(ids) = &filter.owners {
        clauses.push(super::any_of("user_id", ids, &mut owners));
    }
    let mut n = owners.len();
    if filter.active.is_some() {
        n += 1;
        clauses.push(format!("active = ${n}"));
    }
    if filter.kind.is_some() {
        n += 1;
        clauses.push(format!("kind = ${n}"));
    }
    let condition = clauses.join(" AND ");
    let count_sql = format!("SELECT COUNT(*) FROM devices WHERE {condition}");
    let page_sql = format!(
        "SELECT {COLUMNS} FROM devices WHERE {condition} ORDER BY id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    with_db!(db, pool => {
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        let mut page = sqlx::query_as::<_, DeviceRow>(&page_sql);
        for id in &owners {
            count = count.bind(*id);
            page = page.bind(*id);
        }
        if let Some(active) = filter.active {
            count = count.bind(active);
            page = page.bind(active);
        }
        if let Some(kind) = &filter.kind {
            count = count.bind(kind);
            page = page.bind(kind);
        }
        let total = count.fetch_one(pool).await?;
        let rows = page.bind(limit).bind(offset).fetch_all(pool).await?;
        Ok((total, rows))
    })
}
