//! Group commit: messages from every connection go through one writer task that stores
//! whatever has queued up in a single transaction, then publishes them in commit order and
//! only then answers each sender. Throughput no longer pays one fsync per message, and nobody
//! is acknowledged before their message is on disk.

//!
//! The writer is an owned task: [`WriterTask::run`] ends only when told to stop, and then it
//! first refuses new messages and stores everything already queued, answering every sender.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::events::{ChatEvent, EventSink};
use super::view::MessageView;
use crate::freshness::Freshness;
use crate::store::message_batch::{insert_batch_with_push, NotAMember};
use crate::store::messages::{NewMessage, Stored};
use crate::store::{is_unavailable, Db};

#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("database unavailable")]
    Unavailable,
    #[error("chat no longer exists")]
    ChatGone,
    /// The author is no longer a member of the chat (checked in the storing transaction):
    /// nothing stored.
    #[error("the author is not a member of the chat")]
    NotAMember,
    #[error("storing failed: {0}")]
    Failed(String),
    #[error("server shutting down")]
    Stopped,
}

type Reply = oneshot::Sender<Result<Stored, WriteError>>;
type Job = (NewMessage, Reply);

/// Resolves once a queued message is committed (or failed).
pub(crate) type Committed = oneshot::Receiver<Result<Stored, WriteError>>;

/// Room for one message in the writer's queue.
pub(crate) struct WriterPermit(mpsc::OwnedPermit<Job>);

impl WriterPermit {
    pub(crate) fn enqueue(self, message: NewMessage) -> Committed {
        let (reply, answer) = oneshot::channel();
        self.0.send((message, reply));
        answer
    }
}

/// The way into the writer's queue (cheap to clone).
#[derive(Clone)]
pub(crate) struct MessageWriter {
    queue: mpsc::Sender<Job>,
}

/// The writer's work, to be run by whoever owns the server's tasks. Dropped without running
/// (a command that stores no messages), every enqueue fails as `Stopped`.
pub(crate) struct WriterTask {
    db: Db,
    /// Moved on for every chat a batch wrote to, after the commit and before any answer.
    freshness: Freshness,
    events: Arc<dyn EventSink>,
    queue: mpsc::Receiver<Job>,
    max_batch: usize,
    /// Push configured: the coalescing window the outbox rows are due after, and the push
    /// workers' wake-up.
    push: Option<(std::time::Duration, Arc<tokio::sync::Notify>)>,
}

impl MessageWriter {
    pub(crate) fn new(
        db: Db,
        events: Arc<dyn EventSink>,
        freshness: Freshness,
        max_batch: usize,
    ) -> (MessageWriter, WriterTask) {
        let (queue, rx) = mpsc::channel(max_batch * 8);
        let task = WriterTask {
            db,
            freshness,
            events,
            queue: rx,
            max_batch,
            push: None,
        };
        (MessageWriter { queue }, task)
    }

    /// Queues a message for storage; the receiver resolves once it is committed. Messages are
    /// stored in the order they are queued.
    pub(crate) async fn enqueue(&self, message: NewMessage) -> Result<Committed, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((message, reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        Ok(answer)
    }

    /// Queues a message if there is room now; hands it back when the queue is full, so that a
    /// socket can keep delivering while it waits for [`MessageWriter::room`].
    pub(crate) fn try_enqueue(&self, message: NewMessage) -> Result<Result<Committed, NewMessage>, WriteError> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send((message, reply)) {
            Ok(()) => Ok(Ok(answer)),
            Err(mpsc::error::TrySendError::Full((message, _))) => Ok(Err(message)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(WriteError::Stopped),
        }
    }

    /// Resolves once the queue has room for one message, which the permit then holds.
    pub(crate) fn room(
        &self,
    ) -> impl std::future::Future<Output = Result<WriterPermit, WriteError>> + Send + Sync + 'static {
        let queue = self.queue.clone();
        async move {
            queue
                .reserve_owned()
                .await
                .map(WriterPermit)
                .map_err(|_| WriteError::Stopped)
        }
    }
}

impl WriterTask {
    /// Writes push outbox rows with each batch (docs/push.md), due after `window`, and wakes
    /// the push workers after each commit that may have written some.
    pub(crate) fn with_push_outbox(
        mut self,
        window: std::time::Duration,
        wake: Arc<tokio::sync::Notify>,
    ) -> WriterTask {
        self.push = Some((window, wake));
        self
    }

    /// Stores batches until `stop` is cancelled; then refuses new messages and stores what is
    /// already queued (each sender gets its answer) before returning.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(self.max_batch);
        loop {
            // recv_many waits for the first message, then takes whatever else is already queued.
            let received = tokio::select! {
                received = self.queue.recv_many(&mut batch, self.max_batch) => received,
                _ = stop.cancelled() => {
                    self.queue.close();
                    break;
                }
            };
            if received == 0 {
                return;
            }
            self.store(&mut batch).await;
        }
        while self.queue.recv_many(&mut batch, self.max_batch).await > 0 {
            self.store(&mut batch).await;
        }
        tracing::debug!("message writer drained");
    }

    async fn store(&self, batch: &mut Vec<Job>) {
        let (messages, replies): (Vec<NewMessage>, Vec<Reply>) = batch.drain(..).unzip();
        let window = self.push.as_ref().map(|(window, _)| *window);
        let results = match insert_batch_with_push(&self.db, &messages, window).await {
            Ok(outcomes) => outcomes.into_iter().map(|o| o.map_err(not_a_member)).collect(),
            // One bad message (its chat deleted meanwhile) must not fail its neighbours.
            Err(err) if messages.len() > 1 && !is_unavailable(&err) => one_by_one(&self.db, &messages, window).await,
            Err(err) => messages.iter().map(|_| Err(classify(&err))).collect::<Vec<_>>(),
        };
        metrics::histogram!("causerie_commit_batch_size").record(messages.len() as f64);
        // Whatever the outcome (a failed batch may have committed in part, one by one), so no
        // cached chat list outlives what is now stored.
        let mut chats: Vec<_> = messages.iter().map(|m| m.chat_id).collect();
        chats.sort_unstable();
        chats.dedup();
        for chat in chats {
            self.freshness.touch(chat.as_uuid());
        }
        // Senders hear first (their ack precedes their own message's echo), then everyone.
        let mut created = Vec::new();
        for (result, reply) in results.into_iter().zip(replies) {
            if let Ok(stored) = &result {
                if stored.created {
                    created.push(stored.row.clone());
                }
            }
            // The sender may have gone away; the message is stored all the same.
            let _ = reply.send(result);
        }
        metrics::counter!("causerie_messages_stored_total").increment(created.len() as u64);
        if let Some((_, wake)) = self.push.as_ref().filter(|_| !created.is_empty()) {
            wake.notify_waiters();
        }
        for row in &created {
            self.events.publish(
                ChatEvent::Message {
                    message: MessageView::full(row),
                },
                &[],
            );
        }
    }
}

async fn one_by_one(
    db: &Db,
    messages: &[NewMessage],
    push: Option<std::time::Duration>,
) -> Vec<Result<Stored, WriteError>> {
    let mut results = Vec::with_capacity(messages.len());
    for message in messages {
        let result = insert_batch_with_push(db, std::slice::from_ref(message), push).await;
        results.push(match result {
            Ok(mut outcomes) => outcomes.remove(0).map_err(not_a_member),
            Err(err) => Err(classify(&err)),
        });
    }
    results
}

fn not_a_member(_: NotAMember) -> WriteError {
    metrics::counter!("causerie_messages_refused_not_member_total").increment(1);
    WriteError::NotAMember
}

fn classify(err: &sqlx::Error) -> WriteError {
    if is_unavailable(err) {
        WriteError::Unavailable
    } else if matches!(err, sqlx::Error::RowNotFound)
        || matches!(err, sqlx::Error::Database(d) if d.is_foreign_key_violation())
    {
        WriteError::ChatGone
    } else {
        tracing::error!(error = %err, "storing messages failed");
        WriteError::Failed(err.to_string())
    }
}
