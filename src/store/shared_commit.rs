//! The app's small writes, committed together on SQLite.
//!
//! Each refresh token rotated, socket closed, `updateMessagesStatus` or read receipt is one or
//! two tiny statements, but on its own it is a commit, and a commit on SQLite is a turn of the
//! single writing connection plus a sync of the WAL to disk (2–10 ms on the machines we
//! measured). A few hundred of them a second saturated the writer and made the app's write
//! tails what limited the users a box serves (docs/benchmarks.md). Here they queue instead:
//! whoever finds no batch being stored starts one, every write that arrives meanwhile joins
//! the next, and one transaction (one sync) carries them all. Each write runs in a savepoint
//! of its own, so one that fails is undone alone and told its own error; the others are
//! answered only once the commit is on disk, so an answer still means "stored".
//!
//! PostgreSQL commits from many connections at once and groups their WAL flushes itself, so
//! there each write runs as before: on its own, as soon as it is asked for.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use sqlx::{PgConnection, PgPool, SqliteConnection, SqlitePool};
use tokio::sync::oneshot;

use super::messages::{self, MessageRow};
use super::{begin_write, presence, tokens};
use crate::ids::{ChatId, MessageId, UserId};

/// Most writes carried by one commit: a batch holds the writer for well under a millisecond.
const MAX_BATCH: usize = 256;

/// The connection a write runs on, for a body written once for both backends.
pub(crate) enum WriteConn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

/// Runs `$body` with `$conn` bound to the concrete connection of a [`WriteConn`].
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::shared_commit::WriteConn::Sqlite($c) => $body,
            $crate::store::shared_commit::WriteConn::Postgres($c) => $body,
        }
    };
}

type Reply<T> = oneshot::Sender<Result<T, sqlx::Error>>;

/// One small write and where its answer goes.
pub(crate) enum SmallWrite {
    Blacklist {
        jti: String,
        user: UserId,
        expires_at: DateTime<Utc>,
        rotated: bool,
        reply: Reply<bool>,
    },
    SocketsOpened {
        ids: Vec<UserId>,
        reply: Reply<(Vec<UserId>, DateTime<Utc>)>,
    },
    SocketsGone {
        id: UserId,
        reply: Reply<Option<DateTime<Utc>>>,
    },
    Declare {
        id: UserId,
        online: bool,
        reply: Reply<Option<DateTime<Utc>>>,
    },
    MarkReadByIds {
        reader: UserId,
        ids: Vec<MessageId>,
        reply: Reply<Vec<MessageRow>>,
    },
    MarkReadUpto {
        chat: ChatId,
        reader: UserId,
        seq: i64,
        flag_messages: bool,
        reply: Reply<i64>,
    },
}

/// What is left to do for a write that ran: answer it once the commit's fate is known.
struct Ran {
    succeeded: bool,
    answer: Box<dyn FnOnce(Option<&sqlx::Error>) + Send>,
}

/// A write that ran: its value is sent if the commit succeeds, the commit's failure if not.
/// A write that failed keeps its own error whatever the commit does, since nothing of it is
/// in the transaction any more.
fn ran<T: Send + 'static>(reply: Reply<T>, result: Result<T, sqlx::Error>) -> Ran {
    let succeeded = result.is_ok();
    Ran {
        succeeded,
        answer: Box::new(move |commit: Option<&sqlx::Error>| {
            let _ = reply.send(match (result, commit) {
                (Ok(_), Some(err)) => Err(commit_failed(err)),
                (result, _) => result,
            });
        }),
    }
}

/// The error each writer of a batch is told when the commit carrying it failed: nothing of it
/// was stored, and the error type says "retry" (503) rather than "your request was wrong".
fn commit_failed(err: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!("the shared commit failed: {err}")))
}

impl SmallWrite {
    /// Whether the write is more than one statement, so needs a transaction of its own when it
    /// runs alone.
    fn needs_transaction(&self) -> bool {
        matches!(
            self,
            SmallWrite::Declare { .. } | SmallWrite::MarkReadByIds { .. } | SmallWrite::MarkReadUpto { .. }
        )
    }

    async fn run(self, conn: WriteConn<'_>) -> Ran {
        match self {
            SmallWrite::Blacklist {
                jti,
                user,
                expires_at,
                rotated,
                reply,
            } => ran(reply, tokens::blacklist_on(conn, &jti, user, expires_at, rotated).await),
            SmallWrite::SocketsOpened { ids, reply } => ran(reply, presence::sockets_opened_on(conn, &ids).await),
            SmallWrite::SocketsGone { id, reply } => ran(reply, presence::sockets_gone_on(conn, id).await),
            SmallWrite::Declare { id, online, reply } => ran(reply, presence::declare_on(conn, id, online).await),
            SmallWrite::MarkReadByIds { reader, ids, reply } => {
                ran(reply, messages::mark_read_by_ids_on(conn, reader, &ids).await)
            }
            SmallWrite::MarkReadUpto {
                chat,
                reader,
                seq,
                flag_messages,
                reply,
            } => ran(
                reply,
                messages::mark_read_upto_on(conn, chat, reader, seq, flag_messages).await,
            ),
        }
    }

    /// Answers the write with `err` without running it.
    fn fail(self, err: sqlx::Error) {
        fn refuse<T>(reply: Reply<T>, err: sqlx::Error) {
            let _ = reply.send(Err(err));
        }
        match self {
            SmallWrite::Blacklist { reply, .. } => refuse(reply, err),
            SmallWrite::SocketsOpened { reply, .. } => refuse(reply, err),
            SmallWrite::SocketsGone { reply, .. } | SmallWrite::Declare { reply, .. } => refuse(reply, err),
            SmallWrite::MarkReadByIds { reply, .. } => refuse(reply, err),
            SmallWrite::MarkReadUpto { reply, .. } => refuse(reply, err),
        }
    }

    /// Runs the write on its own, committed before it is answered (PostgreSQL).
    async fn run_alone(self, pool: &PgPool) {
        if self.needs_transaction() {
            let mut tx = match begin_write(pool).await {
                Ok(tx) => tx,
                Err(err) => return self.fail(err),
            };
            let ran = self.run(WriteConn::Postgres(&mut tx)).await;
            let commit = if ran.succeeded { tx.commit().await.err() } else { None };
            (ran.answer)(commit.as_ref());
        } else {
            let mut conn = match pool.acquire().await {
                Ok(conn) => conn,
                Err(err) => return self.fail(err),
            };
            let ran = self.run(WriteConn::Postgres(&mut conn)).await;
            (ran.answer)(None);
        }
    }
}

/// SQLite's queue of small writes waiting for a shared commit (cheap to clone).
#[derive(Clone, Default)]
pub(crate) struct SharedCommit(Arc<Mutex<Queue>>);

#[derive(Default)]
struct Queue {
    waiting: Vec<SmallWrite>,
    storing: bool,
}

impl std::fmt::Debug for SharedCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.0.lock();
        f.debug_struct("SharedCommit")
            .field("waiting", &queue.waiting.len())
            .field("storing", &queue.storing)
            .finish()
    }
}

impl SharedCommit {
    fn submit(&self, pool: &SqlitePool, write: SmallWrite) {
        let start = {
            let mut queue = self.0.lock();
            queue.waiting.push(write);
            !std::mem::replace(&mut queue.storing, true)
        };
        if start {
            // Its own task: a writer that goes away (a client gone mid-request) must not leave
            // the queue waiting for a batch nobody stores.
            tokio::spawn(self.clone().drain(pool.clone()));
        }
    }

    async fn drain(self, pool: SqlitePool) {
        loop {
            let batch: Vec<SmallWrite> = {
                let mut queue = self.0.lock();
                if queue.waiting.is_empty() {
                    queue.storing = false;
                    return;
                }
                let n = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..n).collect()
            };
            metrics::histogram!("causerie_shared_commit_writes").record(batch.len() as f64);
            commit_together(&pool, batch).await;
        }
    }
}

/// Runs `batch` in one transaction, each write in a savepoint, and answers every write once
/// the commit succeeded or failed.
async fn commit_together(pool: &SqlitePool, batch: Vec<SmallWrite>) {
    let mut tx = match begin_write(pool).await {
        Ok(tx) => tx,
        Err(err) => {
            for write in batch {
                write.fail(commit_failed(&err));
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    let mut writes = batch.into_iter();
    let mut broken = None;
    for write in writes.by_ref() {
        let mut savepoint = match sqlx::Acquire::begin(&mut tx).await {
            Ok(savepoint) => savepoint,
            Err(err) => {
                write.fail(commit_failed(&err));
                broken = Some(err);
                break;
            }
        };
        let ran = write.run(WriteConn::Sqlite(&mut *savepoint)).await;
        let closed = if ran.succeeded {
            savepoint.commit().await
        } else {
            savepoint.rollback().await
        };
        answers.push(ran);
        if let Err(err) = closed {
            broken = Some(err);
            break;
        }
    }
    let committed = match broken {
        Some(err) => {
            for write in writes {
                write.fail(commit_failed(&err));
            }
            drop(tx);
            Err(err)
        }
        None => tx.commit().await,
    };
    let failure = committed.err();
    if let Some(err) = &failure {
        tracing::warn!(error = %err, writes = answers.len(), "a shared commit of small writes failed");
    }
    for ran in answers {
        (ran.answer)(failure.as_ref());
    }
}

/// Stores one small write, answered once it is committed: on SQLite together with the other
/// small writes waiting, on PostgreSQL on its own.
pub(crate) async fn store<T>(db: &super::Db, write: impl FnOnce(Reply<T>) -> SmallWrite) -> Result<T, sqlx::Error> {
    let (reply, answer) = oneshot::channel();
    let write = write(reply);
    match db {
        super::Db::Sqlite(sqlite) => sqlite.shared_commit().submit(sqlite.writes(), write),
        super::Db::Postgres(pool) => write.run_alone(pool).await,
    }
    // A batch dropped unanswered means its task died: the database is not there right now.
    answer.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
}
