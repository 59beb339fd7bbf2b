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

use futures_util::future::BoxFuture;
use sqlx::{PgConnection, PgPool, SqliteConnection, SqlitePool};
use std::future::Future;
use tokio::sync::oneshot;

use super::begin_write;
use crate::batches::Batches;

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

/// One small write: its arguments, and the statements that store it. Each kind lives beside
/// its table's other queries (`tokens`, `presence`, `messages`); this module only knows how to
/// run them together.
pub(crate) trait SmallWrite: Send + 'static {
    type Output: Send + 'static;
    /// Whether the write is more than one statement, so needs a transaction of its own when it
    /// runs alone.
    const NEEDS_TRANSACTION: bool;

    fn run(self, conn: WriteConn<'_>) -> impl Future<Output = Result<Self::Output, sqlx::Error>> + Send;
}

type Reply<T> = oneshot::Sender<Result<T, sqlx::Error>>;

/// A write waiting in the queue with where its answer goes, whatever its kind.
trait Job: Send {
    fn run<'c>(self: Box<Self>, conn: WriteConn<'c>) -> BoxFuture<'c, Ran>;
    /// Answers the write with `err` without running it.
    fn fail(self: Box<Self>, err: sqlx::Error);
}

struct Pending<W: SmallWrite> {
    write: W,
    reply: Reply<W::Output>,
}

impl<W: SmallWrite> Job for Pending<W> {
    fn run<'c>(self: Box<Self>, conn: WriteConn<'c>) -> BoxFuture<'c, Ran> {
        let Pending { write, reply } = *self;
        Box::pin(async move { ran(reply, write.run(conn).await) })
    }

    fn fail(self: Box<Self>, err: sqlx::Error) {
        let _ = self.reply.send(Err(err));
    }
}

/// Sends a write's answer, given the commit's failure if it failed.
type Answer = Box<dyn FnOnce(Option<&sqlx::Error>) + Send>;

/// What is left to do for a write that ran: answer it once the commit's fate is known.
struct Ran {
    succeeded: bool,
    answer: Answer,
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

/// Runs the write on its own, committed before it is answered (PostgreSQL).
async fn run_alone<W: SmallWrite>(pool: &PgPool, write: W) -> Result<W::Output, sqlx::Error> {
    if W::NEEDS_TRANSACTION {
        let mut tx = begin_write(pool).await?;
        let value = write.run(WriteConn::Postgres(&mut tx)).await?;
        tx.commit().await?;
        Ok(value)
    } else {
        let mut conn = pool.acquire().await?;
        write.run(WriteConn::Postgres(&mut conn)).await
    }
}

/// SQLite's queue of small writes waiting for a shared commit (cheap to clone).
#[derive(Clone, Default, Debug)]
pub(crate) struct SharedCommit(Batches<Box<dyn Job>>);

impl SharedCommit {
    fn submit(&self, pool: &SqlitePool, write: Box<dyn Job>) {
        if self.0.push(write) {
            // Its own task: a writer that goes away (a client gone mid-request) must not leave
            // the queue waiting for a batch nobody stores.
            tokio::spawn(self.clone().drain(pool.clone()));
        }
    }

    async fn drain(self, pool: SqlitePool) {
        while let Some(batch) = self.0.next(MAX_BATCH) {
            metrics::histogram!("causerie_shared_commit_writes").record(batch.len() as f64);
            commit_together(&pool, batch).await;
        }
    }
}

/// Runs `batch` in one transaction, each write in a savepoint, and answers every write once
/// the commit succeeded or failed.
async fn commit_together(pool: &SqlitePool, batch: Vec<Box<dyn Job>>) {
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
        let ran = write.run(WriteConn::Sqlite(&mut savepoint)).await;
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
pub(crate) async fn store<W: SmallWrite>(db: &super::Db, write: W) -> Result<W::Output, sqlx::Error> {
    let sqlite = match db {
        super::Db::Sqlite(sqlite) => sqlite,
        super::Db::Postgres(pool) => return run_alone(pool, write).await,
    };
    let (reply, answer) = oneshot::channel();
    sqlite
        .shared_commit()
        .submit(sqlite.writes(), Box::new(Pending { write, reply }));
    // A batch dropped unanswered means its task died: the database is not there right now.
    answer.await.unwrap_or(Err(sqlx::Error::WorkerCrashed))
}
