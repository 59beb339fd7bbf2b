//! Storage: one set of queries, run on SQLite or PostgreSQL.
//!
//! Every query is written once with `$n` placeholders (both drivers accept them) and run through
//! [`with_db!`], which compiles the same body once per backend. Only the migrations differ,
//! because DDL types differ (uuid/timestamptz on PostgreSQL, blob/text on SQLite).

pub(crate) mod admin;
pub(crate) mod attachments;
pub(crate) mod chats;
pub(crate) mod devices;
pub(crate) mod import;
pub(crate) mod message_batch;
pub(crate) mod messages;
pub(crate) mod outbox;
pub(crate) mod presence;
pub(crate) mod push_log;
pub(crate) mod shared_commit;
pub(crate) mod tokens;
pub(crate) mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

/// A SQLite database as two pools: readers, and the one connection that writes.
///
/// SQLite lets one connection write at a time. When several pooled connections try, the losers
/// sleep in SQLite's busy handler (1, 2, 5, 10 … ms) and retry, which put the app's small
/// writes at p99 35–60 ms beside the group commit (docs/benchmarks.md). With one writing
/// connection they wait their turn in the pool's queue instead, first come first served, and
/// wake the moment the writer is free; readers are not held up (WAL).
#[derive(Clone, Debug)]
pub struct SqliteDb {
    reads: SqlitePool,
    writes: SqlitePool,
    shared_commit: shared_commit::SharedCommit,
}

impl SqliteDb {
    /// Both roles on one pool: a read-only source, or an in-memory database (a second pool
    /// would open a second, empty database).
    pub fn single(pool: SqlitePool) -> SqliteDb {
        SqliteDb {
            reads: pool.clone(),
            writes: pool,
            shared_commit: Default::default(),
        }
    }

    pub fn reads(&self) -> &SqlitePool {
        &self.reads
    }

    pub fn writes(&self) -> &SqlitePool {
        &self.writes
    }

    /// The small writes waiting to share the next commit ([`shared_commit`]).
    pub(crate) fn shared_commit(&self) -> &shared_commit::SharedCommit {
        &self.shared_commit
    }
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend `$db` is: on
/// SQLite the readers' pool. A statement that writes goes through [`with_db_write!`] instead.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite(sqlite) => {
                let $pool = sqlite.reads();
                $body
            }
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// [`with_db!`] for statements and transactions that write: on SQLite `$pool` is the single
/// writing connection's pool ([`SqliteDb`]).
#[macro_export]
macro_rules! with_db_write {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite(sqlite) => {
                let $pool = sqlite.writes();
                $body
            }
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Opens a pool without touching the schema.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, sqlx::Error> {
        if url.starts_with("postgres") {
            // Custom plans always: sqlx keeps statements prepared for the connection's life, and
            // after five runs PostgreSQL may cache a generic plan made while a table was small
            // (a fresh deployment). Measured: the clientId lookup stayed a sequential scan of
            // `messages` (39 ms at 32,000 rows) until the next ANALYZE; planning is ~0.1 ms.
            let options = PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit reaches the disk before a message is acknowledged.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // Statement journals of large batches stay in memory instead of a temp file,
                // and each connection caches 16 MiB of pages (profiled: both were hot).
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-16384")
                // Checkpoint the WAL every ~32 MiB rather than 4 MiB: pages rewritten by many
                // commits are copied into the database file once.
                .pragma("wal_autocheckpoint", "8192");
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let reads = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await?;
            if in_memory {
                return Ok(Db::Sqlite(SqliteDb::single(reads)));
            }
            let writes = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(SqliteDb {
                reads,
                writes,
                shared_commit: Default::default(),
            }))
        }
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Sqlite(sqlite) => SQLITE_MIGRATIONS.run(sqlite.writes()).await,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        let probe = with_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()));
        probe.is_ok()
    }

    /// After a bulk load (an import, a benchmark's fixtures): PostgreSQL plans by statistics,
    /// and a database that just filled up has none until autovacuum comes by. Meanwhile the
    /// read-mark statement scanned `messages` whole for every member (33 of 42 s of a
    /// 100,000-message import) and the chat list scanned `chats`. A no-op on SQLite, whose
    /// planner takes the indexes without statistics.
    pub async fn refresh_planner_statistics(&self) -> Result<(), sqlx::Error> {
        if let Db::Postgres(pool) = self {
            sqlx::query("ANALYZE users, chats, chat_members, messages")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(sqlite) => {
                sqlite.writes.close().await;
                sqlite.reads.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// The file a `sqlite:` URL points at, if any (used to keep the generated secret beside it).
pub(crate) fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

/// Errors that mean "the database is not there right now" rather than "the query is wrong":
/// they become 503 / `unavailable` so clients retry, and the pool reconnects by itself. This is
/// the one place that decides it (every domain error takes it from here):
/// - the pool: timed out waiting for a connection, closed (shutting down), the SQLite worker gone;
/// - the connection: I/O and TLS failures (the server went away mid-query);
/// - PostgreSQL's SQLSTATEs: class 08 (connection exception), 57P01 admin shutdown, 57P02 crash
///   shutdown, 57P03 cannot connect now (starting, in recovery), 55000 object not in
///   prerequisite state (a database that does not accept connections), 53300 too many
///   connections, 53100 disk full, 40001 / 40P01 (serialization failure, deadlock: retryable);
/// - SQLite's primary codes SQLITE_BUSY (5) and SQLITE_LOCKED (6), whatever their extended
///   code (e.g. 517 BUSY_SNAPSHOT): another writer held the database past the busy timeout.
pub(crate) fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            }
            code.starts_with("08")
                || code.starts_with("57P")
                || matches!(&*code, "55000" | "53300" | "53100" | "40001" | "40P01")
        }
        _ => false,
    }
}

/// The statement that opens a write transaction on a backend.
pub(crate) trait WriteTransaction: sqlx::Database {
    const BEGIN: &'static str;
}

impl WriteTransaction for sqlx::Sqlite {
    // A deferred transaction starts as a reader and cannot become a writer once another
    // connection has committed meanwhile: SQLite answers SQLITE_BUSY at once (the busy timeout
    // does not apply), which a caller would see as 503. Taking the write lock up front makes
    // the transaction wait its turn instead.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
}

impl WriteTransaction for sqlx::Postgres {
    const BEGIN: &'static str = "BEGIN";
}

/// Opens a transaction that will write (every read-then-write in this module goes through it).
pub(crate) async fn begin_write<DB: WriteTransaction>(
    pool: &sqlx::Pool<DB>,
) -> Result<sqlx::Transaction<'static, DB>, sqlx::Error> {
    pool.begin_with(DB::BEGIN).await
}

/// True for a unique-constraint violation on either backend.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A slice of ids for `IN (…)`, cut into chunks whose placeholder lists come in a few sizes
/// only (padded with NULLs, which match nothing), so that each statement text is prepared once
/// per connection instead of once per list length.
pub(crate) struct IdChunk<'a, T> {
    ids: &'a [T],
    slots: usize,
}

const ID_CHUNK_SIZES: [usize; 3] = [8, 32, 128];

pub(crate) fn id_chunks<T>(ids: &[T]) -> impl Iterator<Item = IdChunk<'_, T>> {
    let largest = ID_CHUNK_SIZES[ID_CHUNK_SIZES.len() - 1];
    ids.chunks(largest).map(move |ids| IdChunk {
        ids,
        slots: ID_CHUNK_SIZES
            .into_iter()
            .find(|size| *size >= ids.len())
            .unwrap_or(largest),
    })
}

impl<'a, T: Copy> IdChunk<'a, T> {
    /// `($first, $first+1, …)`, one placeholder per slot.
    pub(crate) fn placeholders(&self, first: usize) -> String {
        let list: Vec<String> = (first..first + self.slots).map(|n| format!("${n}")).collect();
        format!("({})", list.join(", "))
    }

    /// The values to bind, one per slot.
    pub(crate) fn padded(&self) -> impl Iterator<Item = Option<T>> + 'a {
        let ids = self.ids;
        (0..self.slots).map(move |i| ids.get(i).copied())
    }
}

/// `(column IN (…) OR …)` over at most [`chats::MEMBER_FILTER_MAX`] of `ids` (more are
/// ignored), numbered after the values already in `bound`, to which it adds its own; `FALSE`
/// for no ids. The admin's filters by user share it.
pub(crate) fn any_of<T: Copy>(column: &str, ids: &[T], bound: &mut Vec<Option<T>>) -> String {
    let mut lists = Vec::new();
    for chunk in id_chunks(&ids[..ids.len().min(chats::MEMBER_FILTER_MAX)]) {
        lists.push(format!("{column} IN {}", chunk.placeholders(bound.len() + 1)));
        bound.extend(chunk.padded());
    }
    if lists.is_empty() {
        "FALSE".into()
    } else {
        format!("({})", lists.join(" OR "))
    }
}

/// The current time at the precision both backends keep (PostgreSQL stores microseconds).
pub(crate) fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

pub(crate) fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}
