//! `causerie import-django`: moves a Django chattuto database (contract section 1) into
//! Causerie's, and moves it again, only what changed, as often as needed before cutover.
//!
//! A run reads Django in one snapshot ([`source`]) and writes Causerie in batches, each batch one
//! transaction (`store::import`), in the order the rows depend on each other: users, chats,
//! messages, then the read-flag pass and devices. Rows that cannot be imported are refused one by
//! one, each named with its table, id and reason; the rest go in. The watermarks move only at the
//! end of a complete run, so an interrupted run is simply run again.
//!
//! The rules, in one place (also in docs/migrating.md):
//! - Ids, password hashes, names, flags, `online`, `lastConnexionDate` and dates are kept as they
//!   are. A user's Django hash is written again only when it changed in Django, so a hash that
//!   Causerie upgraded to argon2id at login survives a re-run.
//! - Two chats of one pair become one: the oldest `(createdAt, id)` keeps its id and gets every
//!   message of the others; the other ids are recorded in `django_import_chat_aliases`.
//! - `seq` is given once, when a message first reaches Causerie: within a run in
//!   `(createdAt, id)` order, after everything its chat already holds. It never changes after,
//!   so a message Django stores late with an old `createdAt` comes after the ones imported before.
//! - `isRead` is kept per message, and each member's read mark is set to the highest `seq` up to
//!   which every message from the other person is read, so unread counts are Django's.
//! - A delta run reads users and messages whose `updatedAt` is at or after the watermark (the
//!   latest `updatedAt` seen, minus [`WATERMARK_OVERLAP`]), every chat (few, and the duplicates
//!   must be seen together), every device (fcm-django keeps no `updatedAt`), and asks Django
//!   which messages still unread here it has read since (a queryset update does not touch
//!   `updatedAt`).

mod batches;
mod chats;
mod devices;
mod messages;
pub(crate) mod progress;
pub(crate) mod report;
mod source;
mod users;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use uuid::Uuid;

pub use progress::ProgressMode;
pub use report::Report;
use source::{Source, SourceError};

use crate::config::Config;
use crate::store::{self, Db};

/// How far before the latest `updatedAt` seen the next run starts reading again. Covers rows
/// whose transaction committed after the snapshot with an earlier `updatedAt` (Django takes the
/// time before it commits) and clocks of several Django servers that disagree by a little. Rows
/// read twice are recognised and left as they are.
pub const WATERMARK_OVERLAP: chrono::Duration = chrono::Duration::minutes(5);

/// Rows per write transaction.
const BATCH: usize = 500;

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The Django database: postgres://user@host/db or sqlite://path/to/db.sqlite3.
    #[arg(long = "from", value_name = "URL")]
    pub from: String,
    /// Read and check everything, print the counts and every row that would be refused, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Ignore the watermarks and read every row again (after fixing rows that were refused).
    #[arg(long)]
    pub full: bool,
    /// Afterwards, store the photos that messages keep as `data:` URLs as attachments, and make
    /// the messages carry those instead (docs/media.md).
    #[arg(long)]
    pub convert_photos: bool,
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub from: String,
    pub dry_run: bool,
    pub full: bool,
    pub progress: ProgressMode,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("opening Causerie's database (setting `database_url`): {0}")]
    Open(String),
    #[error("reading Causerie's database: {0}")]
    Target(#[source] sqlx::Error),
    #[error(
        "writing {what} to Causerie's database: {source}. That batch was rolled back; the watermarks \
         did not move, so running the import again continues where this run stopped"
    )]
    Write {
        what: String,
        #[source]
        source: sqlx::Error,
    },
}

/// The CLI entry: runs the import and prints its report on stdout (progress goes to stderr).
pub async fn command(config: Config, args: ImportArgs) -> anyhow::Result<()> {
    let convert_photos = args.convert_photos && !args.dry_run;
    let options = ImportOptions {
        from: args.from,
        dry_run: args.dry_run,
        full: args.full,
        progress: ProgressMode::Auto,
    };
    let report = run(&config, &options).await?;
    print!("{report}");
    if convert_photos {
        let done = crate::app::convert_stored_photos(&config).await?;
        println!(
            "photos: {} stored as attachments, {} kept as data URLs",
            done.converted, done.kept
        );
    }
    Ok(())
}

/// Imports (or, dry, checks) the Django database `options.from` into `config.database_url`.
pub async fn run(config: &Config, options: &ImportOptions) -> Result<Report, ImportError> {
    // The source first: a wrong `--from` fails before Causerie's database is touched.
    let mut source = Source::open(&options.from).await?;
    let target = match open_target(config, options.dry_run).await {
        Ok(target) => target,
        Err(err) => {
            source.close().await;
            return Err(err);
        }
    };
    let result = import(&mut source, target.as_ref(), options).await;
    source.close().await;
    if let Some(db) = target {
        db.close().await;
    }
    result
}

async fn import(source: &mut Source, target: Option<&Db>, options: &ImportOptions) -> Result<Report, ImportError> {
    let mut ctx = Context::load(target, options).await?;
    users::run(&mut ctx, source).await?;
    chats::run(&mut ctx, source).await?;
    messages::refresh_statistics(&ctx).await?;
    messages::run(&mut ctx, source).await?;
    messages::recheck_read_flags(&mut ctx, source).await?;
    let devices = devices::read(&mut ctx, source).await?;
    devices::write(&mut ctx, devices).await?;
    ctx.save_watermarks().await?;
    Ok(ctx.report)
}

/// Causerie's database: migrated for a real run; for a dry run opened read-only, and `None`
/// when it does not exist or has no schema yet (everything is then new).
async fn open_target(config: &Config, dry_run: bool) -> Result<Option<Db>, ImportError> {
    if !dry_run {
        let db = crate::app::open_database(config)
            .await
            .map_err(|e| ImportError::Open(format!("{e:#}")))?;
        return Ok(Some(db));
    }
    let url = &config.database_url;
    let db = if config.is_postgres() {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| ImportError::Open(e.to_string()))?
            .options([("default_transaction_read_only", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| ImportError::Open(e.to_string()))?;
        Db::Postgres(pool)
    } else {
        if let Some(path) = store::sqlite_path(url) {
            if !path.exists() {
                return Ok(None);
            }
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| ImportError::Open(e.to_string()))?
            .read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| ImportError::Open(e.to_string()))?;
        Db::Sqlite(store::SqliteDb::single(pool))
    };
    if !store::import::has_table(&db, "users")
        .await
        .map_err(ImportError::Target)?
    {
        db.close().await;
        return Ok(None);
    }
    Ok(Some(db))
}

/// A two-person chat in Causerie as the import keeps track of it.
#[derive(Clone, Debug)]
struct ChatState {
    low: Uuid,
    high: Uuid,
    last_seq: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ChatState {
    fn has_member(&self, user: Uuid) -> bool {
        self.low == user || self.high == user
    }
}

/// What Causerie holds (loaded at the start, kept current as batches are planned), so that
/// every check is made against Causerie plus the rows accepted so far in this run. A dry run
/// plans exactly as a real one does.
#[derive(Default)]
struct Known {
    /// Accepted users: id → normalised email, and back.
    users: HashMap<Uuid, String>,
    emails: HashMap<String, Uuid>,
    /// Users refused in this run (to name the reason of their chats' and messages' refusal).
    refused_users: HashSet<Uuid>,
    /// Two-person chats by pair key.
    pairs: HashMap<String, Uuid>,
    chats: HashMap<Uuid, ChatState>,
    /// Django chat id → the Causerie chat its messages go to.
    chat_of: HashMap<Uuid, Uuid>,
    aliases: HashSet<Uuid>,
    refused_chats: HashSet<Uuid>,
    /// Messages read in this delta run: the read-flag pass has nothing to add for them (and a
    /// dry run, which writes nothing, must not count them twice).
    messages_read: HashSet<Uuid>,
}

struct Context<'a> {
    target: Option<&'a Db>,
    dry_run: bool,
    progress: ProgressMode,
    /// Causerie's database has migration 0010's tables (false only on a dry run before it).
    import_tables: bool,
    watermarks: HashMap<String, DateTime<Utc>>,
    /// The latest `updatedAt` read per Django table in this run.
    latest: HashMap<&'static str, DateTime<Utc>>,
    known: Known,
    report: Report,
}

impl<'a> Context<'a> {
    async fn load(target: Option<&'a Db>, options: &ImportOptions) -> Result<Context<'a>, ImportError> {
        let mut known = Known::default();
        let mut watermarks = HashMap::new();
        let mut import_tables = false;
        if let Some(db) = target {
            let read = |e| ImportError::Target(e);
            for (id, email) in store::import::user_emails(db).await.map_err(read)? {
                known.emails.insert(email.clone(), id);
                known.users.insert(id, email);
            }
            for chat in store::import::pair_chats(db).await.map_err(read)? {
                let Some((low, high)) = parse_pair_key(&chat.pair_key) else {
                    continue;
                };
                known.pairs.insert(chat.pair_key.clone(), chat.id);
                known.chats.insert(
                    chat.id,
                    ChatState {
                        low,
                        high,
                        last_seq: chat.last_seq,
                        created_at: chat.created_at,
                        updated_at: chat.updated_at,
                    },
                );
            }
            import_tables = store::import::has_table(db, "django_import_watermarks")
                .await
                .map_err(read)?;
            if import_tables {
                if !options.full {
                    watermarks = store::import::watermarks(db).await.map_err(read)?;
                }
                for (django_id, _) in store::import::chat_aliases(db).await.map_err(read)? {
                    known.aliases.insert(django_id);
                }
            }
        }
        let full_read = watermarks.is_empty();
        Ok(Context {
            target,
            dry_run: options.dry_run,
            progress: options.progress,
            import_tables,
            watermarks,
            latest: HashMap::new(),
            known,
            report: Report::new(options.dry_run, full_read),
        })
    }

    /// Where this run starts reading `table` (`None`: from the beginning).
    fn since(&self, table: &str) -> Option<DateTime<Utc>> {
        self.watermarks.get(table).copied()
    }

    fn saw(&mut self, table: &'static str, updated_at: DateTime<Utc>) {
        let latest = self.latest.entry(table).or_insert(updated_at);
        if updated_at > *latest {
            *latest = updated_at;
        }
    }

    /// The database to write to, or `None` on a dry run.
    fn writer(&self) -> Option<&'a Db> {
        if self.dry_run {
            None
        } else {
            self.target
        }
    }

    async fn save_watermarks(&mut self) -> Result<(), ImportError> {
        let Some(db) = self.writer() else {
            return Ok(());
        };
        let mut marks = Vec::new();
        for (table, latest) in &self.latest {
            let next = *latest - WATERMARK_OVERLAP;
            let keep = self.watermarks.get(*table).map_or(next, |old| next.max(*old));
            marks.push((*table, keep));
        }
        store::import::save_watermarks(db, &marks)
            .await
            .map_err(|source| ImportError::Write {
                what: "the watermarks".into(),
                source,
            })
    }
}

fn parse_pair_key(key: &str) -> Option<(Uuid, Uuid)> {
    let (low, high) = key.split_once(':')?;
    Some((Uuid::parse_str(low).ok()?, Uuid::parse_str(high).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_keys_parse_back() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let key = store::import::pair_key(a, b);
        let (low, high) = parse_pair_key(&key).unwrap();
        assert_eq!((low.min(high), low.max(high)), (a.min(b), a.max(b)));
        assert_eq!(key, store::import::pair_key(b, a));
        assert_eq!(parse_pair_key("nonsense"), None);
    }
}
