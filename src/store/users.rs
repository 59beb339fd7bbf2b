//! The `users` table.

use chrono::{DateTime, Utc};

use super::{id_chunks, now, Db};
use crate::ids::UserId;
use crate::{with_db, with_db_write};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    pub last_connexion_date: Option<DateTime<Utc>>,
    pub online: bool,
    pub avatar: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Moves on at every revocation; tokens issued under an earlier epoch are refused.
    pub token_epoch: i64,
}

const COLUMNS: &str = "id, email, password, first_name, last_name, is_active, is_staff, is_superuser, \
    date_joined, last_login, last_connexion_date, online, avatar, created_at, updated_at, token_epoch";

pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// Fields a user may change on their own record; `None` leaves a field as it is. `online` is
/// the app's presence declaration, stored through `store::presence::declare`.
#[derive(Default, Debug)]
pub(crate) struct ProfileChange {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub online: Option<bool>,
    pub last_connexion_date: Option<Option<DateTime<Utc>>>,
    pub avatar: Option<Option<String>>,
}

impl ProfileChange {
    pub fn is_empty(&self) -> bool {
        self.first_name.is_none()
            && self.last_name.is_none()
            && self.online.is_none()
            && self.last_connexion_date.is_none()
            && self.avatar.is_none()
    }
}

/// Inserts a user; a duplicate email is a unique violation for the caller to map.
pub async fn insert(db: &Db, new: &NewUser<'_>) -> Result<UserRow, sqlx::Error> {
    let sql = format!(
        "INSERT INTO users (id, email, password, first_name, last_name, is_active, is_staff, is_superuser, \
         date_joined, online, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7, $8, FALSE, $8, $8) RETURNING {COLUMNS}"
    );
    let id = UserId::new();
    let at = now();
    with_db_write!(db, pool => sqlx::query_as::<_, UserRow>(&sql)
        .bind(id)
        .bind(new.email)
        .bind(new.password_hash)
        .bind(new.first_name)
        .bind(new.last_name)
        .bind(new.is_staff)
        .bind(new.is_superuser)
        .bind(at)
        .fetch_one(pool)
        .await)
}

pub async fn by_id(db: &Db, id: UserId) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    with_db!(db, pool => sqlx::query_as::<_, UserRow>(&sql).bind(id).fetch_optional(pool).await)
}

/// `email` must already be normalised (see `accounts::Email`).
pub async fn by_email(db: &Db, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
    with_db!(db, pool => sqlx::query_as::<_, UserRow>(&sql).bind(email).fetch_optional(pool).await)
}

/// These users, in no particular order (unknown ids are left out).
pub(crate) async fn many_by_id(db: &Db, ids: &[UserId]) -> Result<Vec<UserRow>, sqlx::Error> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in id_chunks(ids) {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id IN {}", chunk.placeholders(1));
        rows.extend(with_db!(db, pool => {
            let mut query = sqlx::query_as::<_, UserRow>(&sql);
            for id in chunk.padded() {
                query = query.bind(id);
            }
            query.fetch_all(pool).await
        })?);
    }
    Ok(rows)
}

pub(crate) async fn update_profile(
    db: &Db,
    id: UserId,
    change: &ProfileChange,
) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET \
           first_name = COALESCE($2, first_name), \
           last_name = COALESCE($3, last_name), \
           last_connexion_date = CASE WHEN $4 THEN $5 ELSE last_connexion_date END, \
           avatar = CASE WHEN $6 THEN $7 ELSE avatar END, \
           updated_at = $8 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let connexion = change.last_connexion_date.flatten();
    let avatar = change.avatar.clone().flatten();
    with_db_write!(db, pool => sqlx::query_as::<_, UserRow>(&sql)
        .bind(id)
        .bind(change.first_name.as_deref())
        .bind(change.last_name.as_deref())
        .bind(change.last_connexion_date.is_some())
        .bind(connexion)
        .bind(change.avatar.is_some())
        .bind(avatar)
        .bind(now())
        .fetch_optional(pool)
        .await)
}

/// Stores a new hash of the *same* password (the upgrade to argon2id at login): no session
/// ends. A new password goes through [`change_password`], which revokes every token.
pub async fn set_password(db: &Db, id: UserId, hash: &str) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("UPDATE users SET password = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

pub(crate) async fn record_login(db: &Db, id: UserId) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("UPDATE users SET last_login = $2 WHERE id = $1")
        .bind(id)
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// A new password that ends every session: the token epoch moves on with it.
pub(crate) async fn change_password(db: &Db, id: UserId, hash: &str) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query(
        "UPDATE users SET password = $2, token_epoch = token_epoch + 1, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Moves the token epoch on: every token issued so far is refused.
pub(crate) async fn bump_epoch(db: &Db, id: UserId) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("UPDATE users SET token_epoch = token_epoch + 1 WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Activates or deactivates; a deactivation also moves the token epoch on, so the tokens
/// issued before it stay refused after a reactivation.
pub async fn set_active(db: &Db, id: UserId, active: bool) -> Result<bool, sqlx::Error> {
    let done = with_db_write!(db, pool => sqlx::query(
        "UPDATE users SET is_active = $2, updated_at = $3, \
         token_epoch = token_epoch + CASE WHEN $2 THEN 0 ELSE 1 END WHERE id = $1")
        .bind(id)
        .bind(active)
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

pub async fn set_staff(db: &Db, id: UserId, staff: bool, superuser: bool) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("UPDATE users SET is_staff = $2, is_superuser = $3 WHERE id = $1")
        .bind(id)
        .bind(staff)
        .bind(superuser)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn delete(db: &Db, id: UserId) -> Result<(), sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A page of all users, by email.
pub(crate) async fn list(db: &Db, limit: i64, offset: i64) -> Result<(i64, Vec<UserRow>), sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users ORDER BY email LIMIT $1 OFFSET $2");
    with_db!(db, pool => {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await?;
        let rows = sqlx::query_as::<_, UserRow>(&sql).bind(limit).bind(offset).fetch_all(pool).await?;
        Ok((total, rows))
    })
}

/// Active users other than `caller` whose first or last name contains every term
/// (case-insensitive), one page of them by name.
pub(crate) async fn search(
    db: &Db,
    caller: UserId,
    terms: &[String],
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<UserRow>), sqlx::Error> {
    // Terms are bound as parameters; only their count shapes the SQL.
    let mut filter = String::from("is_active = TRUE AND id <> $1");
    for i in 0..terms.len() {
        let p = i + 2;
        // `search_text` is both names lower-cased, joined by a newline (migration 0020).
        filter.push_str(&format!(" AND search_text LIKE ${p} ESCAPE '\\'"));
    }
    let n = terms.len() + 2;
    // One pass over the matches gives the page and their number (`COUNT(*) OVER ()`); only a
    // page past the end, which holds no row to carry the number, counts on its own.
    let page_sql = format!(
        "SELECT {COLUMNS}, COUNT(*) OVER () AS found FROM users WHERE {filter} \
         ORDER BY last_name, first_name, id LIMIT ${n} OFFSET ${}",
        n + 1
    );
    let count_sql = format!("SELECT COUNT(*) FROM users WHERE {filter}");
    let patterns: Vec<String> = terms
        .iter()
        .map(|t| format!("%{}%", escape_like(&t.to_lowercase())))
        .collect();
    with_db!(db, pool => {
        let mut page = sqlx::query_as::<_, FoundUser>(&page_sql).bind(caller);
        for pattern in &patterns {
            page = page.bind(pattern);
        }
        let rows = page.bind(limit).bind(offset).fetch_all(pool).await?;
        let total = match rows.first() {
            Some(first) => first.found,
            None if offset > 0 => {
                let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(caller);
                for pattern in &patterns {
                    count = count.bind(pattern);
                }
                count.fetch_one(pool).await?
            }
            None => 0,
        };
        Ok((total, rows.into_iter().map(|r| r.user).collect()))
    })
}

/// A user found by [`search`], with how many were found in all.
#[derive(sqlx::FromRow)]
struct FoundUser {
    #[sqlx(flatten)]
    user: UserRow,
    found: i64,
}

pub(crate) fn escape_like(term: &str) -> String {
    let mut out = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await)
}

/// What the admin's user list filters on: every term must match the email or a name
/// (case-insensitive); `None` leaves a flag unfiltered.
#[derive(Default, Debug, Clone)]
pub(crate) struct UserFilter {
    pub terms: Vec<String>,
    pub active: Option<bool>,
    pub staff: Option<bool>,
    pub online: Option<bool>,
}

impl UserFilter {
    /// The `WHERE` condition, its parameters numbered from `$1`: the term patterns, then the
    /// flags in use. Only the filters in use shape the SQL; values are always bound.
    fn condition(&self) -> (String, Vec<String>, Vec<bool>) {
        let mut clauses = vec!["TRUE".to_string()];
        let patterns: Vec<String> = self
            .terms
            .iter()
            .map(|t| format!("%{}%", escape_like(&t.to_lowercase())))
            .collect();
        for p in 1..=patterns.len() {
            clauses.push(format!(
                "(LOWER(email) LIKE ${p} ESCAPE '\\' OR LOWER(first_name) LIKE ${p} ESCAPE '\\' \
                 OR LOWER(last_name) LIKE ${p} ESCAPE '\\')"
            ));
        }
        let mut flags = Vec::new();
        for (column, value) in [
            ("is_active", self.active),
            ("is_staff", self.staff),
            ("online", self.online),
        ] {
            if let Some(value) = value {
                flags.push(value);
                clauses.push(format!("{column} = ${}", patterns.len() + flags.len()));
            }
        }
        (clauses.join(" AND "), patterns, flags)
    }
}

/// One page of the users `filter` selects, by email, with their total.
pub(crate) async fn filtered(
    db: &Db,
    filter: &UserFilter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<UserRow>), sqlx::Error> {
    let (condition, patterns, flags) = filter.condition();
    let n = patterns.len() + flags.len() + 1;
    let count_sql = format!("SELECT COUNT(*) FROM users WHERE {condition}");
    let page_sql = format!(
        "SELECT {COLUMNS} FROM users WHERE {condition} ORDER BY email LIMIT ${n} OFFSET ${}",
        n + 1
    );
    with_db!(db, pool => {
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        let mut page = sqlx::query_as::<_, UserRow>(&page_sql);
        for pattern in &patterns {
            count = count.bind(pattern);
            page = page.bind(pattern);
        }
        for flag in &flags {
            count = count.bind(*flag);
            page = page.bind(*flag);
        }
        let total = count.fetch_one(pool).await?;
        let rows = page.bind(limit).bind(offset).fetch_all(pool).await?;
        Ok((total, rows))
    })
}

/// The ids of at most `limit` users `filter` selects.
pub(crate) async fn filtered_ids(db: &Db, filter: &UserFilter, limit: i64) -> Result<Vec<UserId>, sqlx::Error> {
    let (condition, patterns, flags) = filter.condition();
    let sql = format!(
        "SELECT id FROM users WHERE {condition} ORDER BY id LIMIT ${}",
        patterns.len() + flags.len() + 1
    );
    with_db!(db, pool => {
        let mut query = sqlx::query_scalar::<_, UserId>(&sql);
        for pattern in &patterns {
            query = query.bind(pattern);
        }
        for flag in &flags {
            query = query.bind(*flag);
        }
        query.bind(limit).fetch_all(pool).await
    })
}

/// What staff may change on an account in the admin site.
#[derive(Debug, Clone)]
pub(crate) struct AccountChange {
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
}

pub(crate) async fn change_account(
    db: &Db,
    id: UserId,
    change: &AccountChange,
) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET first_name = $2, last_name = $3, is_active = $4, is_staff = $5, is_superuser = $6, \
         updated_at = $7, token_epoch = token_epoch + CASE WHEN is_active AND NOT $4 THEN 1 ELSE 0 END \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    with_db_write!(db, pool => sqlx::query_as::<_, UserRow>(&sql)
        .bind(id)
        .bind(&change.first_name)
        .bind(&change.last_name)
        .bind(change.is_active)
        .bind(change.is_staff)
        .bind(change.is_superuser)
        .bind(now())
        .fetch_optional(pool)
        .await)
}
