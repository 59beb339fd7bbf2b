//! Causerie's side of `causerie import-django`: the rows an import writes, and what it keeps
//! between runs (`django_import_*`, migration 0010). The Django side is read in `crate::import`.
//!
//! Every `apply_*` function is one transaction: an interrupted import leaves whole batches only.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::messages::MessageRow;
use super::users::UserRow;
use super::{now, Db};
use crate::{with_db, with_db_write};

/// The pair key of a two-person chat; the same text `store::chats` writes and looks up.
pub fn pair_key(a: Uuid, b: Uuid) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("{low}:{high}")
}

/// True when `table` exists in Causerie's database (tables of later migrations may not yet).
pub async fn has_table(db: &Db, table: &str) -> Result<bool, sqlx::Error> {
    let count: i64 = match db {
        Db::Sqlite(sqlite) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1")
                .bind(table)
                .fetch_one(sqlite.reads())
                .await?
        }
        Db::Postgres(pool) => sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(table)
        .fetch_one(pool)
        .await?,
    };
    Ok(count > 0)
}

// ---- watermarks ---------------------------------------------------------------------------

/// Per Django table, the `updatedAt` from which the next run reads.
pub async fn watermarks(db: &Db) -> Result<HashMap<String, DateTime<Utc>>, sqlx::Error> {
    let rows: Vec<(String, DateTime<Utc>)> = with_db!(db, pool => sqlx::query_as(
        "SELECT source_table, updated_after FROM django_import_watermarks")
        .fetch_all(pool).await)?;
    Ok(rows.into_iter().collect())
}

pub async fn save_watermarks(db: &Db, marks: &[(&str, DateTime<Utc>)]) -> Result<(), sqlx::Error> {
    let at = now();
    with_db_write!(db, pool => {
        let mut tx = crate::store::begin_write(pool).await?;
        for (table, after) in marks {
            sqlx::query(
                "INSERT INTO django_import_watermarks (source_table, updated_after, finished_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (source_table) DO UPDATE SET updated_after = excluded.updated_after, finished_at = excluded.finished_at")
                .bind(*table).bind(*after).bind(at)
                .execute(&mut *tx).await?;
        }
        tx.commit().await
    })
}

// ---- users --------------------------------------------------------------------------------

/// Every user's id and email (what the import checks new rows against).
pub async fn user_emails(db: &Db) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as("SELECT id, email FROM users").fetch_all(pool).await)
}

/// A user as Django had it, in Causerie's shapes.
#[derive(Clone, Debug)]
pub struct ImportedUser {
    pub id: Uuid,
    /// Already normalised (`accounts::email::Email`).
    pub email: String,
    /// Django's hash as it is (`pbkdf2_sha256$…`, or `!…` for an unusable password).
    pub password: String,
    /// SHA-256 (hex) of `password`, kept to tell a changed Django password from an upgraded hash.
    pub password_digest: String,
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
}

/// A user already in Causerie, and the digest of the Django hash imported for them (if any).
pub struct ExistingUser {
    pub row: UserRow,
    pub imported_digest: Option<String>,
}

/// The users among `ids` already in Causerie. `with_digests` is false on a database not yet
/// migrated to 0010 (a dry run before the first real import).
pub async fn existing_users(
    db: &Db,
    ids: &[Uuid],
    with_digests: bool,
) -> Result<HashMap<Uuid, ExistingUser>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Found {
        #[sqlx(flatten)]
        row: UserRow,
        password_digest: Option<String>,
    }
    let digest = if with_digests {
        "d.password_digest FROM users u LEFT JOIN django_import_users d ON d.user_id = u.id"
    } else {
        "NULL AS password_digest FROM users u"
    };
    let mut found = HashMap::new();
    for piece in ids.chunks(ID_PIECE) {
        let sql = format!(
            "SELECT u.id, u.email, u.password, u.first_name, u.last_name, u.is_active, u.is_staff, u.is_superuser, \
             u.date_joined, u.last_login, u.last_connexion_date, u.online, u.avatar, u.created_at, u.updated_at, \
             u.token_epoch, {digest} WHERE u.id IN ({})",
            placeholders(1, piece.len())
        );
        let rows: Vec<Found> = with_db!(db, pool => {
            let mut query = sqlx::query_as::<_, Found>(&sql);
            for id in piece {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await
        })?;
        for f in rows {
            found.insert(
                f.row.id.0,
                ExistingUser {
                    row: f.row,
                    imported_digest: f.password_digest,
                },
            );
        }
    }
    Ok(found)
}

/// One user to write; `keep_password` leaves Causerie's hash (Django's did not change).
pub struct UserWrite {
    pub user: ImportedUser,
    pub keep_password: bool,
}

pub async fn apply_users(db: &Db, writes: &[UserWrite]) -> Result<(), sqlx::Error> {
    if writes.is_empty() {
        return Ok(());
    }
    with_db_write!(db, pool => {
        let mut tx = crate::store::begin_write(pool).await?;
        for write in writes {
            let u = &write.user;
            sqlx::query(
                "INSERT INTO users (id, email, password, first_name, last_name, is_active, is_staff, is_superuser, \
                   date_joined, last_login, last_connexion_date, online, avatar, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT (id) DO UPDATE SET email = excluded.email, \
                   password = CASE WHEN $16 THEN users.password ELSE excluded.password END, \
                   first_name = excluded.first_name, last_name = excluded.last_name, \
                   is_active = excluded.is_active, is_staff = excluded.is_staff, is_superuser = excluded.is_superuser, \
                   date_joined = excluded.date_joined, last_login = excluded.last_login, \
                   last_connexion_date = excluded.last_connexion_date, online = excluded.online, \
                   avatar = excluded.avatar, created_at = excluded.created_at, updated_at = excluded.updated_at, \
                   token_epoch = users.token_epoch + CASE WHEN NOT $16 OR (users.is_active AND NOT excluded.is_active) \
                     THEN 1 ELSE 0 END")
                .bind(u.id).bind(&u.email).bind(&u.password).bind(&u.first_name).bind(&u.last_name)
                .bind(u.is_active).bind(u.is_staff).bind(u.is_superuser)
                .bind(u.date_joined).bind(u.last_login).bind(u.last_connexion_date).bind(u.online)
                .bind(u.avatar.as_deref()).bind(u.created_at).bind(u.updated_at)
                .bind(write.keep_password)
                .execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO django_import_users (user_id, password_digest) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET password_digest = excluded.password_digest")
                .bind(u.id).bind(&u.password_digest)
                .execute(&mut *tx).await?;
        }
        tx.commit().await
    })
}

// ---- chats --------------------------------------------------------------------------------

/// A two-person chat already in Causerie.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PairChat {
    pub id: Uuid,
    pub pair_key: String,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn pair_chats(db: &Db) -> Result<Vec<PairChat>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as::<_, PairChat>(
        "SELECT id, pair_key, last_seq, created_at, updated_at FROM chats WHERE pair_key IS NOT NULL")
        .fetch_all(pool).await)
}

#[derive(Clone, Debug)]
pub struct NewPairChat {
    pub id: Uuid,
    pub from_user: Uuid,
    pub to_user: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One batch of chats: new ones (with both members), changed dates, and the Django ids merged
/// into another chat of the same pair.
#[derive(Default)]
pub struct ChatWrites {
    pub new: Vec<NewPairChat>,
    pub dates: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)>,
    pub aliases: Vec<(Uuid, Uuid)>,
}

impl ChatWrites {
    pub fn is_empty(&self) -> bool {
        self.new.is_empty() && self.dates.is_empty() && self.aliases.is_empty()
    }
}

pub async fn apply_chats(db: &Db, writes: &ChatWrites) -> Result<(), sqlx::Error> {
    if writes.is_empty() {
        return Ok(());
    }
    with_db_write!(db, pool => {
        let mut tx = crate::store::begin_write(pool).await?;
        for chat in &writes.new {
            sqlx::query(
                "INSERT INTO chats (id, from_user, to_user, pair_key, is_group, title, last_seq, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, FALSE, NULL, 0, $5, $6)")
                .bind(chat.id).bind(chat.from_user).bind(chat.to_user)
                .bind(pair_key(chat.from_user, chat.to_user))
                .bind(chat.created_at).bind(chat.updated_at)
                .execute(&mut *tx).await?;
            for user in [chat.from_user, chat.to_user] {
                sqlx::query(
                    "INSERT INTO chat_members (chat_id, user_id, is_admin, last_read_seq, joined_at) \
                     VALUES ($1, $2, TRUE, 0, $3) ON CONFLICT DO NOTHING")
                    .bind(chat.id).bind(user).bind(chat.created_at)
                    .execute(&mut *tx).await?;
            }
        }
        for (id, created_at, updated_at) in &writes.dates {
            sqlx::query("UPDATE chats SET created_at = $2, updated_at = $3 WHERE id = $1")
                .bind(id).bind(created_at).bind(updated_at)
                .execute(&mut *tx).await?;
        }
        for (django_id, chat_id) in &writes.aliases {
            sqlx::query(
                "INSERT INTO django_import_chat_aliases (django_chat_id, chat_id) VALUES ($1, $2) \
                 ON CONFLICT (django_chat_id) DO UPDATE SET chat_id = excluded.chat_id")
                .bind(django_id).bind(chat_id)
                .execute(&mut *tx).await?;
        }
        tx.commit().await
    })
}

/// The Causerie chat each merged Django chat id went into.
pub async fn chat_aliases(db: &Db) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as("SELECT django_chat_id, chat_id FROM django_import_chat_aliases")
        .fetch_all(pool).await)
}

// ---- messages -----------------------------------------------------------------------------

/// What a message already imported looks like now (its `seq` is never changed again).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ExistingMessage {
    pub id: Uuid,
    pub chat_id: Uuid,
    pub body: String,
    pub kind: i32,
    pub extra_data: Option<String>,
    pub is_read: bool,
    pub deleted: bool,
    pub updated_at: DateTime<Utc>,
}

pub async fn existing_messages(db: &Db, ids: &[Uuid]) -> Result<HashMap<Uuid, ExistingMessage>, sqlx::Error> {
    let mut found = HashMap::new();
    // Pieces of a fixed size keep a few statement texts prepared, whatever the batch length.
    for piece in ids.chunks(ID_PIECE) {
        let sql = format!(
            "SELECT id, chat_id, body, kind, extra_data, is_read, deleted, updated_at FROM messages WHERE id IN ({})",
            placeholders(1, piece.len())
        );
        let rows: Vec<ExistingMessage> = with_db!(db, pool => {
            let mut query = sqlx::query_as::<_, ExistingMessage>(&sql);
            for id in piece {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await
        })?;
        found.extend(rows.into_iter().map(|m| (m.id, m)));
    }
    Ok(found)
}

const ID_PIECE: usize = 100;

fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// New content of a message already imported.
#[derive(Clone, Debug)]
pub struct MessageUpdate {
    pub id: Uuid,
    pub body: String,
    pub kind: i32,
    pub extra_data: Option<String>,
    pub is_read: bool,
    pub updated_at: DateTime<Utc>,
}

/// A chat's numbering after a batch.
#[derive(Clone, Debug)]
pub struct ChatProgress {
    pub id: Uuid,
    pub last_seq: i64,
    pub updated_at: DateTime<Utc>,
}

/// Runs `recompute_read_marks_sql` for `chats` inside the open transaction `tx` (a macro
/// because the transaction's type differs per backend, as in `with_db!`).
macro_rules! recompute_read_marks {
    ($tx:ident, $chats:expr) => {
        for piece in in_pieces($chats) {
            let sql = recompute_read_marks_sql(piece.len());
            let mut query = sqlx::query(&sql);
            for chat in piece {
                query = query.bind(*chat);
            }
            query.execute(&mut *$tx).await?;
        }
    };
}

/// One batch of messages in one transaction: new rows (numbered by the caller), changed rows,
/// the chats' new `last_seq`, then the read marks of every chat touched.
pub async fn apply_messages(
    db: &Db,
    new: &[MessageRow],
    updates: &[MessageUpdate],
    chats: &[ChatProgress],
    touched: &[Uuid],
) -> Result<(), sqlx::Error> {
    if new.is_empty() && updates.is_empty() && chats.is_empty() {
        return Ok(());
    }
    let insert_sql = |rows: usize| {
        let values = (0..rows)
            .map(|r| {
                let n = r * 10;
                format!(
                    "(${}, ${}, ${}, ${}, NULL, ${}, ${}, ${}, ${}, FALSE, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6,
                    n + 7,
                    n + 8,
                    n + 9,
                    n + 10
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO messages (id, chat_id, seq, author, client_id, body, kind, extra_data, is_read, deleted, \
             created_at, updated_at) VALUES {values}"
        )
    };
    let progress_sql = |rows: usize| {
        let values = (0..rows)
            .map(|r| format!("(${}, ${}, ${})", r * 3 + 1, r * 3 + 2, r * 3 + 3))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "UPDATE chats SET last_seq = v.column2, updated_at = v.column3 FROM (VALUES {values}) AS v \
             WHERE chats.id = v.column1"
        )
    };
    with_db_write!(db, pool => {
        let mut tx = crate::store::begin_write(pool).await?;
        for piece in in_pieces(new) {
            let sql = insert_sql(piece.len());
            let mut query = sqlx::query(&sql);
            for m in piece {
                query = query
                    .bind(m.id).bind(m.chat_id).bind(m.seq).bind(m.author).bind(&m.body).bind(m.kind)
                    .bind(m.extra_data.as_deref()).bind(m.is_read).bind(m.created_at).bind(m.updated_at);
            }
            query.execute(&mut *tx).await?;
        }
        for m in updates {
            sqlx::query(
                "UPDATE messages SET body = $2, kind = $3, extra_data = $4, is_read = $5, updated_at = $6 \
                 WHERE id = $1 AND deleted = FALSE")
                .bind(m.id).bind(&m.body).bind(m.kind).bind(m.extra_data.as_deref()).bind(m.is_read).bind(m.updated_at)
                .execute(&mut *tx).await?;
        }
        for piece in in_pieces(chats) {
            let sql = progress_sql(piece.len());
            let mut query = sqlx::query(&sql);
            for chat in piece {
                query = query.bind(chat.id).bind(chat.last_seq).bind(chat.updated_at);
            }
            query.execute(&mut *tx).await?;
        }
        recompute_read_marks!(tx, touched);
        tx.commit().await
    })
}

/// Statement sizes: a batch is cut into pieces of these sizes only, so a handful of statement
/// texts serve every batch and each is prepared once per connection. Measured on SQLite: one
/// statement per row and per chat made a 100,000-message import spend its time handing single
/// statements to the driver.
const PIECES: [usize; 4] = [64, 16, 4, 1];

/// `items` cut into consecutive slices of the `PIECES` sizes, largest first.
fn in_pieces<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = PIECES.into_iter().find(|size| items.len() >= *size)?;
        let (piece, rest) = items.split_at(size);
        items = rest;
        Some(piece)
    })
}

/// Sets a chat's members' read marks to the highest `seq` up to which every message from
/// someone else is read: the first unread one from others minus one, or the chat's `last_seq`.
/// Unread counts (`messages::unread_count`) then come out as Django counted them, because a
/// message at or below the mark is read anyway.
fn recompute_read_marks_sql(chats: usize) -> String {
    format!(
        "UPDATE chat_members SET last_read_seq = COALESCE( \
           (SELECT MIN(m.seq) - 1 FROM messages m WHERE m.chat_id = chat_members.chat_id \
              AND m.is_read = FALSE AND m.deleted = FALSE \
              AND (m.author IS NULL OR m.author <> chat_members.user_id)), \
           (SELECT c.last_seq FROM chats c WHERE c.id = chat_members.chat_id)) \
         WHERE chat_id IN ({})",
        placeholders(1, chats)
    )
}

/// Unread messages after `after` (by id), for the pass that looks for read flags Django set
/// without touching `updatedAt` (a queryset `update(isRead=True)` does not).
pub async fn unread_after(db: &Db, after: Option<Uuid>, limit: i64) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    let floor = after.unwrap_or(Uuid::nil());
    with_db!(db, pool => sqlx::query_as(
        "SELECT id, chat_id FROM messages WHERE is_read = FALSE AND deleted = FALSE AND id > $1 ORDER BY id LIMIT $2")
        .bind(floor).bind(limit).fetch_all(pool).await)
}

/// Flags messages read and recomputes the read marks of their chats, in one transaction.
pub async fn mark_read(db: &Db, ids: &[Uuid], chats: &[Uuid]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    with_db_write!(db, pool => {
        let mut tx = crate::store::begin_write(pool).await?;
        for id in ids {
            sqlx::query("UPDATE messages SET is_read = TRUE WHERE id = $1").bind(id).execute(&mut *tx).await?;
        }
        recompute_read_marks!(tx, chats);
        tx.commit().await
    })
}

// ---- devices ------------------------------------------------------------------------------

/// A push device as fcm-django kept it.
#[derive(Clone, Debug)]
pub struct ImportedDevice {
    pub user_id: Uuid,
    pub name: Option<String>,
    pub registration_id: String,
    pub device_id: Option<String>,
    pub active: bool,
    /// `android`, `ios` or `web`.
    pub kind: String,
    pub date_created: DateTime<Utc>,
}

/// Writes devices into the `devices` table (created by the push-devices migration), keyed by
/// `registration_id`: a token already known moves to the imported owner. Django's integer ids
/// are not kept, so Causerie's own id sequence stays valid.
pub async fn apply_devices(db: &Db, devices: &[ImportedDevice]) -> Result<(), sqlx::Error> {
    if devices.is_empty() {
        return Ok(());
    }
    let at = now();
    with_db_write!(db, pool => {
        let mut tx = crate::store::begin_write(pool).await?;
        for d in devices {
            sqlx::query(
                "INSERT INTO devices (user_id, name, registration_id, device_id, active, kind, date_created, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (registration_id) DO UPDATE SET user_id = excluded.user_id, name = excluded.name, \
                   device_id = excluded.device_id, active = excluded.active, kind = excluded.kind, \
                   updated_at = excluded.updated_at")
                .bind(d.user_id).bind(d.name.as_deref()).bind(&d.registration_id).bind(d.device_id.as_deref())
                .bind(d.active).bind(&d.kind).bind(d.date_created).bind(at)
                .execute(&mut *tx).await?;
        }
        tx.commit().await
    })
}
