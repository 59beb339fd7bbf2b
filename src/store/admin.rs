//! The admin site's own tables: `admin_sessions` and `admin_audit`.

use chrono::{DateTime, Utc};

use super::{now, Db};
use crate::ids::UserId;
use crate::{with_db, with_db_write};

/// A signed-in staff session. `id_hash` is the SHA-256 of the cookie's value: the cookie itself
/// is never stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct SessionRow {
    pub id_hash: String,
    pub user_id: UserId,
    pub csrf_token: String,
    pub address: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const SESSION_COLUMNS: &str = "id_hash, user_id, csrf_token, address, created_at, last_seen_at, expires_at";

pub(crate) async fn insert_session(db: &Db, session: &SessionRow) -> Result<(), sqlx::Error> {
    let sql = format!("INSERT INTO admin_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
    with_db_write!(db, pool => sqlx::query(&sql)
        .bind(&session.id_hash)
        .bind(session.user_id)
        .bind(&session.csrf_token)
        .bind(&session.address)
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .bind(session.expires_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The session with this hash, if it has not expired.
pub(crate) async fn live_session(db: &Db, id_hash: &str) -> Result<Option<SessionRow>, sqlx::Error> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM admin_sessions WHERE id_hash = $1 AND expires_at > $2");
    with_db!(db, pool => sqlx::query_as::<_, SessionRow>(&sql)
        .bind(id_hash)
        .bind(now())
        .fetch_optional(pool)
        .await)
}

/// Records activity: the session lives on until `expires_at`.
pub(crate) async fn touch_session(
    db: &Db,
    id_hash: &str,
    seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("UPDATE admin_sessions SET last_seen_at = $2, expires_at = $3 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(seen_at)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

pub(crate) async fn delete_session(db: &Db, id_hash: &str) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("DELETE FROM admin_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Ends every session of `user`; returns how many there were.
pub(crate) async fn delete_user_sessions(db: &Db, user: UserId) -> Result<u64, sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("DELETE FROM admin_sessions WHERE user_id = $1")
        .bind(user)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
}

pub(crate) async fn delete_expired_sessions(db: &Db) -> Result<u64, sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
}

/// One admin action, as recorded.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub at: DateTime<Utc>,
    pub actor_id: Option<UserId>,
    pub actor_email: String,
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    pub summary: String,
    pub address: String,
}

/// An entry to record.
pub(crate) struct NewAudit<'a> {
    pub actor_id: Option<UserId>,
    pub actor_email: &'a str,
    pub action: &'a str,
    pub object_kind: &'a str,
    pub object_id: &'a str,
    pub summary: &'a str,
    pub address: &'a str,
}

pub(crate) async fn insert_audit(db: &Db, entry: &NewAudit<'_>) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query(
        "INSERT INTO admin_audit (at, actor_id, actor_email, action, object_kind, object_id, summary, address) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(now())
        .bind(entry.actor_id)
        .bind(entry.actor_email)
        .bind(entry.action)
        .bind(entry.object_kind)
        .bind(entry.object_id)
        .bind(entry.summary)
        .bind(entry.address)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// What the audit list filters on: the actor (an email, matched case-insensitively as a
/// substring) and the object (its exact id).
#[derive(Default, Debug, Clone)]
pub(crate) struct AuditFilter {
    pub actor: Option<String>,
    pub object_id: Option<String>,
}

/// One page of entries, newest first, with their total.
pub(crate) async fn audit_page(
    db: &Db,
    filter: &AuditFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<AuditRow>), sqlx::Error> {
    // Both filters are always bound; a NULL one selects everything.
    let condition = "($1 IS NULL OR LOWER(actor_email) LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR object_id = $2)";
    let actor = filter
        .actor
        .as_ref()
        .map(|a| format!("%{}%", super::users::escape_like(&a.to_lowercase())));
    let count_sql = format!("SELECT COUNT(*) FROM admin_audit WHERE {condition}");
    let page_sql = format!(
        "SELECT at, actor_id, actor_email, action, object_kind, object_id, summary, address \
         FROM admin_audit WHERE {condition} ORDER BY id DESC LIMIT $3 OFFSET $4"
    );
    with_db!(db, pool => {
        let total: i64 = sqlx::query_scalar(&count_sql)
            .bind(actor.as_deref())
            .bind(filter.object_id.as_deref())
            .fetch_one(pool)
            .await?;
        let rows = sqlx::query_as::<_, AuditRow>(&page_sql)
            .bind(actor.as_deref())
            .bind(filter.object_id.as_deref())
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
        Ok((total, rows))
    })
}
