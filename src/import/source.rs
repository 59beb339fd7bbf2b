//! The Django database, read-only: one connection, one snapshot, rows decoded into the shapes
//! the import works with.
//!
//! The two backends Django writes differ in representation, not in names: on SQLite a UUID is
//! 32 hex digits without dashes, a datetime is text (`2021-03-01 09:00:00[.ffffff]`, UTC when
//! `USE_TZ = True`) and a boolean an integer; PostgreSQL has uuid, timestamptz and boolean. The
//! query texts are shared (quoted camelCase identifiers work on both); [`Columns`] hides the
//! decoding, and a value that does not decode becomes a refusal of its row, not a failure.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{ConnectOptions, Connection, PgConnection, Row, SqliteConnection};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("--from must be sqlite://PATH or postgres://…, not {0:?}")]
    Url(String),
    #[error("the Django database {0} does not exist")]
    Missing(String),
    #[error("the Django database has no table {0} (is this a chattuto database, migrated?)")]
    NoTable(&'static str),
    #[error("reading the Django database: {0}")]
    Sql(#[from] sqlx::Error),
}

pub enum Source {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

pub enum SourceRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Source {
    /// Opens the Django database read-only and starts the snapshot every later read sees, so
    /// users, chats and messages agree with each other whatever Django writes meanwhile.
    pub async fn open(url: &str) -> Result<Source, SourceError> {
        let mut source = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // The snapshot's streams last as long as the import; they are not slow statements.
            let options = PgConnectOptions::from_str(url)?
                .options([("default_transaction_read_only", "on")])
                .disable_statement_logging();
            Source::Postgres(options.connect().await?)
        } else if let Some(path) = crate::store::sqlite_path(url) {
            if !path.exists() {
                return Err(SourceError::Missing(path.display().to_string()));
            }
            let options = SqliteConnectOptions::from_str(url)?
                .read_only(true)
                .disable_statement_logging();
            Source::Sqlite(options.connect().await?)
        } else {
            return Err(SourceError::Url(url.to_string()));
        };
        match &mut source {
            // REPEATABLE READ: one snapshot for the whole run.
            Source::Postgres(conn) => {
                sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *conn)
                    .await?;
            }
            // A read transaction: in WAL mode a snapshot that does not block Django's writers;
            // in rollback-journal mode Django's commits wait until the import has read
            // (docs/migrating.md says to switch Django's SQLite to WAL first).
            Source::Sqlite(conn) => {
                sqlx::query("BEGIN").execute(&mut *conn).await?;
            }
        }
        for table in ["chat_user", "chat_chat", "chat_message"] {
            if !source.has_table(table).await? {
                return Err(SourceError::NoTable(table));
            }
        }
        Ok(source)
    }

    pub async fn has_table(&mut self, table: &str) -> Result<bool, sqlx::Error> {
        let count: i64 = match self {
            Source::Sqlite(conn) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1")
                    .bind(table)
                    .fetch_one(&mut *conn)
                    .await?
            }
            Source::Postgres(conn) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = $1",
                )
                .bind(table)
                .fetch_one(&mut *conn)
                .await?
            }
        };
        Ok(count > 0)
    }

    /// `COUNT(*)` of a query's rows (`$1`, when present, is the `updatedAt` watermark).
    pub async fn count(&mut self, sql: &str, since: Option<DateTime<Utc>>) -> Result<i64, sqlx::Error> {
        match self {
            Source::Sqlite(conn) => {
                let mut query = sqlx::query_scalar::<_, i64>(sql);
                if let Some(since) = since {
                    query = query.bind(sqlite_datetime(since));
                }
                query.fetch_one(&mut *conn).await
            }
            Source::Postgres(conn) => {
                let mut query = sqlx::query_scalar::<_, i64>(sql);
                if let Some(since) = since {
                    query = query.bind(since);
                }
                query.fetch_one(&mut *conn).await
            }
        }
    }

    /// The rows of `sql`, streamed (`$1`, when present, is the `updatedAt` watermark).
    pub fn rows<'a>(
        &'a mut self,
        sql: &'a str,
        since: Option<DateTime<Utc>>,
    ) -> BoxStream<'a, Result<SourceRow, sqlx::Error>> {
        match self {
            Source::Sqlite(conn) => {
                let mut query = sqlx::query(sql);
                if let Some(since) = since {
                    query = query.bind(sqlite_datetime(since));
                }
                query.fetch(&mut *conn).map_ok(SourceRow::Sqlite).boxed()
            }
            Source::Postgres(conn) => {
                let mut query = sqlx::query(sql);
                if let Some(since) = since {
                    query = query.bind(since);
                }
                query.fetch(&mut *conn).map_ok(SourceRow::Postgres).boxed()
            }
        }
    }

    /// Which of `ids` are messages Django has marked read.
    pub async fn read_message_ids(&mut self, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = (1..=ids.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT id FROM chat_message WHERE \"isRead\" = TRUE AND id IN ({list})");
        let mut found = Vec::new();
        let mut rows = match self {
            Source::Sqlite(conn) => {
                let mut query = sqlx::query(&sql);
                for id in ids {
                    query = query.bind(id.simple().to_string());
                }
                query
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .map(SourceRow::Sqlite)
                    .collect::<Vec<_>>()
            }
            Source::Postgres(conn) => {
                let mut query = sqlx::query(&sql);
                for id in ids {
                    query = query.bind(*id);
                }
                query
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .map(SourceRow::Postgres)
                    .collect()
            }
        };
        for row in rows.drain(..) {
            if let Ok(id) = row.uuid("id") {
                found.push(id);
            }
        }
        Ok(found)
    }

    /// Ends the snapshot (nothing was written).
    pub async fn close(self) {
        match self {
            Source::Sqlite(mut conn) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                let _ = conn.close().await;
            }
            Source::Postgres(mut conn) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                let _ = conn.close().await;
            }
        }
    }
}

/// A datetime as Django's SQLite backend writes it: UTC, space-separated, microseconds only
/// when there are any (so text comparison agrees with time order).
pub fn sqlite_datetime(at: DateTime<Utc>) -> String {
    if at.timestamp_subsec_micros() == 0 {
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

/// Django's SQLite datetime text; also accepts an explicit offset and RFC 3339.
pub fn parse_sqlite_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(naive.and_utc());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z"] {
        if let Ok(at) = DateTime::parse_from_str(text, format) {
            return Some(at.with_timezone(&Utc));
        }
    }
    DateTime::parse_from_rfc3339(text).ok().map(|at| at.with_timezone(&Utc))
}

/// Typed access to a Django row's columns; an error is the reason its row is refused.
pub trait Columns {
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, String>;
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, String>;
    fn opt_flag(&self, col: &str) -> Result<Option<bool>, String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, String>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, String>;

    fn uuid(&self, col: &str) -> Result<Uuid, String> {
        self.opt_uuid(col)?.ok_or_else(|| format!("{col} is empty"))
    }
    fn time(&self, col: &str) -> Result<DateTime<Utc>, String> {
        self.opt_time(col)?.ok_or_else(|| format!("{col} is empty"))
    }
    fn flag(&self, col: &str) -> Result<bool, String> {
        self.opt_flag(col)?.ok_or_else(|| format!("{col} is empty"))
    }
    /// A text column; NULL reads as "" (Django's CharField and TextField are NOT NULL unless asked).
    fn text(&self, col: &str) -> Result<String, String> {
        Ok(self.opt_text(col)?.unwrap_or_default())
    }
    fn int(&self, col: &str) -> Result<i64, String> {
        self.opt_int(col)?.ok_or_else(|| format!("{col} is empty"))
    }
}

fn unreadable(col: &str, err: sqlx::Error) -> String {
    format!("{col} cannot be read ({err})")
}

impl Columns for SqliteRow {
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, String> {
        // Django writes 32 hex digits; a 16-byte blob or a dashed form are read as well.
        let raw = self.try_get_raw(col).map_err(|e| unreadable(col, e))?;
        if sqlx::ValueRef::is_null(&raw) {
            return Ok(None);
        }
        if let Ok(Some(text)) = self.try_get_unchecked::<Option<String>, _>(col) {
            return Uuid::parse_str(text.trim())
                .map(Some)
                .map_err(|_| format!("{col} {text:?} is not a UUID"));
        }
        let bytes: Vec<u8> = self.try_get_unchecked(col).map_err(|e| unreadable(col, e))?;
        Uuid::from_slice(&bytes)
            .map(Some)
            .map_err(|_| format!("{col} is not a UUID"))
    }

    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, String> {
        let text: Option<String> = self.try_get_unchecked(col).map_err(|e| unreadable(col, e))?;
        match text {
            None => Ok(None),
            Some(text) => parse_sqlite_datetime(&text)
                .map(|at| Some(crate::store::truncate(at)))
                .ok_or_else(|| format!("{col} {text:?} is not a date and time")),
        }
    }

    fn opt_flag(&self, col: &str) -> Result<Option<bool>, String> {
        let value: Option<i64> = self.try_get_unchecked(col).map_err(|e| unreadable(col, e))?;
        Ok(value.map(|v| v != 0))
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, String> {
        self.try_get_unchecked(col).map_err(|e| unreadable(col, e))
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, String> {
        self.try_get_unchecked(col).map_err(|e| unreadable(col, e))
    }
}

impl Columns for PgRow {
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, String> {
        self.try_get(col).map_err(|e| unreadable(col, e))
    }

    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, String> {
        let at: Option<DateTime<Utc>> = self.try_get(col).map_err(|e| unreadable(col, e))?;
        Ok(at.map(crate::store::truncate))
    }

    fn opt_flag(&self, col: &str) -> Result<Option<bool>, String> {
        self.try_get(col).map_err(|e| unreadable(col, e))
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, String> {
        self.try_get(col).map_err(|e| unreadable(col, e))
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, String> {
        // IntegerField and AutoField are int4, BigAutoField int8, SmallIntegerField int2.
        if let Ok(v) = self.try_get::<Option<i32>, _>(col) {
            return Ok(v.map(i64::from));
        }
        if let Ok(v) = self.try_get::<Option<i16>, _>(col) {
            return Ok(v.map(i64::from));
        }
        self.try_get(col).map_err(|e| unreadable(col, e))
    }
}

impl Columns for SourceRow {
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, String> {
        match self {
            SourceRow::Sqlite(r) => r.opt_uuid(col),
            SourceRow::Postgres(r) => r.opt_uuid(col),
        }
    }
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, String> {
        match self {
            SourceRow::Sqlite(r) => r.opt_time(col),
            SourceRow::Postgres(r) => r.opt_time(col),
        }
    }
    fn opt_flag(&self, col: &str) -> Result<Option<bool>, String> {
        match self {
            SourceRow::Sqlite(r) => r.opt_flag(col),
            SourceRow::Postgres(r) => r.opt_flag(col),
        }
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, String> {
        match self {
            SourceRow::Sqlite(r) => r.opt_text(col),
            SourceRow::Postgres(r) => r.opt_text(col),
        }
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, String> {
        match self {
            SourceRow::Sqlite(r) => r.opt_int(col),
            SourceRow::Postgres(r) => r.opt_int(col),
        }
    }
}

impl SourceRow {
    /// The row's id as text, to name it in a refusal even when it does not decode.
    pub fn key(&self, col: &str) -> String {
        if let Ok(Some(id)) = self.opt_uuid(col) {
            return id.to_string();
        }
        if let Ok(Some(n)) = self.opt_int(col) {
            return n.to_string();
        }
        match self.opt_text(col) {
            Ok(Some(text)) => text,
            _ => "?".into(),
        }
    }
}

// ---- the four tables ----------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct DjangoUser {
    pub id: Uuid,
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
}

/// Older accounts first, so when two Django emails differ only in case the older one is kept.
pub const USERS: &str = "SELECT id, email, password, first_name, last_name, is_active, is_staff, is_superuser, \
     date_joined, last_login, \"lastConnexionDate\", online, avatar, \"createdAt\", \"updatedAt\" FROM chat_user";
pub const USERS_ORDER: &str = " ORDER BY date_joined, id";

impl DjangoUser {
    pub fn decode(row: &impl Columns) -> Result<DjangoUser, String> {
        Ok(DjangoUser {
            id: row.uuid("id")?,
            email: row.text("email")?,
            password: row.text("password")?,
            first_name: row.text("first_name")?,
            last_name: row.text("last_name")?,
            is_active: row.flag("is_active")?,
            is_staff: row.flag("is_staff")?,
            is_superuser: row.flag("is_superuser")?,
            date_joined: row.time("date_joined")?,
            last_login: row.opt_time("last_login")?,
            last_connexion_date: row.opt_time("lastConnexionDate")?,
            online: row.flag("online")?,
            // An ImageField without a file is stored as "".
            // A Django avatar that looks like Causerie's reference to an upload would name a file
            // its user never uploaded: such a value is dropped.
            avatar: row
                .opt_text("avatar")?
                .filter(|a| !a.is_empty() && !crate::media::avatars::is_marked(a)),
            created_at: row.time("createdAt")?,
            updated_at: row.time("updatedAt")?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct DjangoChat {
    pub id: Uuid,
    pub from_user: Uuid,
    pub to_user: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Every chat, oldest first: the first chat of a pair is the one its duplicates merge into.
pub const CHATS: &str =
    "SELECT id, \"fromUser_id\", \"toUser_id\", \"createdAt\", \"updatedAt\" FROM chat_chat ORDER BY \"createdAt\", id";
pub const CHATS_COUNT: &str = "SELECT COUNT(*) FROM chat_chat";

impl DjangoChat {
    pub fn decode(row: &impl Columns) -> Result<DjangoChat, String> {
        Ok(DjangoChat {
            id: row.uuid("id")?,
            from_user: row.uuid("fromUser_id")?,
            to_user: row.uuid("toUser_id")?,
            created_at: row.time("createdAt")?,
            updated_at: row.time("updatedAt")?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct DjangoMessage {
    pub id: Uuid,
    pub chat: Uuid,
    pub author: Uuid,
    pub body: String,
    pub kind: i64,
    pub extra_data: Option<String>,
    pub is_read: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Messages in the order their `seq` is given: `(createdAt, id)`.
pub const MESSAGES: &str = "SELECT id, \"refChat_id\", author_id, message, type, \"extraData\", \"isRead\", \
     \"createdAt\", \"updatedAt\" FROM chat_message";
pub const MESSAGES_ORDER: &str = " ORDER BY \"createdAt\", id";

impl DjangoMessage {
    pub fn decode(row: &impl Columns) -> Result<DjangoMessage, String> {
        Ok(DjangoMessage {
            id: row.uuid("id")?,
            chat: row.uuid("refChat_id")?,
            author: row.uuid("author_id")?,
            body: row.text("message")?,
            kind: row.int("type")?,
            extra_data: row.opt_text("extraData")?,
            is_read: row.flag("isRead")?,
            created_at: row.time("createdAt")?,
            updated_at: row.time("updatedAt")?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct DjangoDevice {
    pub id: i64,
    pub user: Option<Uuid>,
    pub name: Option<String>,
    pub registration_id: String,
    pub device_id: Option<String>,
    pub active: bool,
    pub kind: String,
    pub date_created: Option<DateTime<Utc>>,
}

/// fcm-django's table; newest first, so of two rows holding one token the newer is kept.
pub const DEVICES_TABLE: &str = "fcm_django_fcmdevice";
pub const DEVICES: &str = "SELECT id, name, active, user_id, date_created, device_id, registration_id, type \
     FROM fcm_django_fcmdevice ORDER BY id DESC";

impl DjangoDevice {
    pub fn decode(row: &impl Columns) -> Result<DjangoDevice, String> {
        Ok(DjangoDevice {
            id: row.int("id")?,
            user: row.opt_uuid("user_id")?,
            name: row.opt_text("name")?,
            registration_id: row.text("registration_id")?,
            device_id: row.opt_text("device_id")?,
            active: row.flag("active")?,
            kind: row.text("type")?,
            date_created: row.opt_time("date_created")?,
        })
    }
}

/// `sql` restricted to rows changed at or after the watermark (`$1`), or all rows.
pub fn changed_since(sql: &str, order: &str, since: Option<DateTime<Utc>>) -> String {
    match since {
        Some(_) => format!("{sql} WHERE \"updatedAt\" >= $1{order}"),
        None => format!("{sql}{order}"),
    }
}

/// The count query of [`changed_since`].
pub fn count_changed_since(table: &str, since: Option<DateTime<Utc>>) -> String {
    match since {
        Some(_) => format!("SELECT COUNT(*) FROM {table} WHERE \"updatedAt\" >= $1"),
        None => format!("SELECT COUNT(*) FROM {table}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn django_sqlite_datetimes_round_trip() {
        let whole = Utc.with_ymd_and_hms(2021, 3, 1, 9, 0, 0).unwrap();
        assert_eq!(sqlite_datetime(whole), "2021-03-01 09:00:00");
        assert_eq!(parse_sqlite_datetime("2021-03-01 09:00:00"), Some(whole));
        let fine = whole + chrono::Duration::microseconds(5);
        assert_eq!(sqlite_datetime(fine), "2021-03-01 09:00:00.000005");
        assert_eq!(parse_sqlite_datetime("2021-03-01 09:00:00.000005"), Some(fine));
        assert_eq!(parse_sqlite_datetime("2021-03-01 10:00:00+01:00"), Some(whole));
        assert_eq!(parse_sqlite_datetime("2021-03-01T09:00:00Z"), Some(whole));
        assert_eq!(parse_sqlite_datetime("yesterday"), None);
    }

    #[test]
    fn watermark_text_sorts_like_django_text() {
        // Text order must agree with time order for `"updatedAt" >= $1` on SQLite.
        let base = Utc.with_ymd_and_hms(2021, 3, 1, 9, 0, 0).unwrap();
        let times = [
            base,
            base + chrono::Duration::microseconds(1),
            base + chrono::Duration::milliseconds(500),
            base + chrono::Duration::seconds(1),
        ];
        let texts: Vec<String> = times.iter().map(|t| sqlite_datetime(*t)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
    }
}
