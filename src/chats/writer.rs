//! Group commit: messages from every connection go through one writer task that stores
//! whatever has queued up in a single transaction, then publishes them in commit order and
//! only then answers each sender. Throughput no longer pays one fsync per message, and nobody
//! is acknowledged before their message is on disk.

use tokio::sync::{mpsc, oneshot};

use crate::chats::view::MessageView;
use crate::realtime::event::Event;
use crate::realtime::fanout::Fanout;
use crate::store::messages::{self, NewMessage, Stored};
use crate::store::{is_unavailable, Db};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("database unavailable")]
    Unavailable,
    #[error("chat no longer exists")]
    ChatGone,
    #[error("storing failed: {0}")]
    Failed(String),
    #[error("server shutting down")]
    Stopped,
}

type Reply = oneshot::Sender<Result<Stored, WriteError>>;

/// Resolves once a queued message is committed (or failed).
pub type Committed = oneshot::Receiver<Result<Stored, WriteError>>;

/// Room for one message in the writer's queue.
pub struct WriterPermit(mpsc::OwnedPermit<(NewMessage, Reply)>);

impl WriterPermit {
    pub fn enqueue(self, message: NewMessage) -> Committed {
        let (reply, answer) = oneshot::channel();
        self.0.send((message, reply));
        answer
    }
}

#[derive(Clone)]
pub struct MessageWriter {
    queue: mpsc::Sender<(NewMessage, Reply)>,
}

impl MessageWriter {
    pub fn spawn(db: Db, fanout: Fanout, max_batch: usize) -> MessageWriter {
        let (queue, rx) = mpsc::channel(max_batch * 8);
        tokio::spawn(run(db, fanout, rx, max_batch));
        MessageWriter { queue }
    }

    /// Waits until nothing is queued for storage (or the deadline passes).
    pub async fn drain(&self, deadline: tokio::time::Instant) {
        while self.queue.capacity() < self.queue.max_capacity() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Queues a message for storage; the receiver resolves once it is committed. Messages are
    /// stored in the order they are queued.
    pub async fn enqueue(&self, message: NewMessage) -> Result<Committed, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((message, reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        Ok(answer)
    }

    /// Queues a message if there is room now; hands it back when the queue is full, so that a
    /// socket can keep delivering while it waits for [`MessageWriter::room`].
    pub fn try_enqueue(&self, message: NewMessage) -> Result<Result<Committed, NewMessage>, WriteError> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send((message, reply)) {
            Ok(()) => Ok(Ok(answer)),
            Err(mpsc::error::TrySendError::Full((message, _))) => Ok(Err(message)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(WriteError::Stopped),
        }
    }

    /// Resolves once the queue has room for one message, which the permit then holds.
    pub fn room(&self) -> impl std::future::Future<Output = Result<WriterPermit, WriteError>> + Send + Sync + 'static {
        let queue = self.queue.clone();
        async move {
            queue
                .reserve_owned()
                .await
                .map(WriterPermit)
                .map_err(|_| WriteError::Stopped)
        }
    }

    /// Stores a message and resolves once it is committed.
    pub async fn write(&self, message: NewMessage) -> Result<Stored, WriteError> {
        self.enqueue(message).await?.await.map_err(|_| WriteError::Stopped)?
    }
}

async fn run(db: Db, fanout: Fanout, mut rx: mpsc::Receiver<(NewMessage, Reply)>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    // recv_many waits for the first message, then takes whatever else is already queued.
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let (messages, replies): (Vec<NewMessage>, Vec<Reply>) = batch.drain(..).unzip();
        let results = match messages::insert_batch(&db, &messages).await {
            Ok(stored) => stored.into_iter().map(Ok).collect(),
            // One bad message (its chat deleted meanwhile) must not fail its neighbours.
            Err(err) if messages.len() > 1 && !is_unavailable(&err) => one_by_one(&db, &messages).await,
            Err(err) => messages.iter().map(|_| Err(classify(&err))).collect::<Vec<_>>(),
        };
        metrics::histogram!("causerie_commit_batch_size").record(messages.len() as f64);
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
        for row in &created {
            fanout.to_chat(Event::Message {
                message: MessageView::full(row),
            });
        }
    }
}

async fn one_by_one(db: &Db, messages: &[NewMessage]) -> Vec<Result<Stored, WriteError>> {
    let mut results = Vec::with_capacity(messages.len());
    for message in messages {
        let result = messages::insert_batch(db, std::slice::from_ref(message)).await;
        results.push(result.map(|mut s| s.remove(0)).map_err(|e| classify(&e)));
    }
    results
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
