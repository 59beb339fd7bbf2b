//! Sockets opened, stored together: in a connect storm every handshake is a user coming
//! online, and storing each as its own commit (on SQLite, each a turn of the single writer and
//! a sync to disk) was what held the storm to ~1,700 handshakes/s. Whoever finds no batch being
//! stored starts one; every call that arrives meanwhile waits in the queue and goes into the
//! next statement. A caller waits for its own answer only, so the stored state and the time of
//! the change are the same as one update each would give.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::batches::Batches;
use crate::ids::UserId;
use crate::store::{presence, Db};

/// Most users stored by one statement batch.
const MAX_BATCH: usize = 512;

type Answer = Result<Option<DateTime<Utc>>, Arc<sqlx::Error>>;

/// The queue of sockets opened (cheap to clone).
#[derive(Clone, Default)]
pub(crate) struct OpenedSockets(Batches<(UserId, oneshot::Sender<Answer>)>);

impl OpenedSockets {
    /// Stores that a socket of `id` opened: the time `online` changed, None when it already
    /// was online (or another socket of theirs in the same batch made the change).
    pub(crate) async fn store(&self, db: &Db, id: UserId) -> Answer {
        let (tx, rx) = oneshot::channel();
        if self.0.push((id, tx)) {
            // Its own task: a caller that goes away (a client gone mid-handshake) must not
            // leave the queue waiting for a batch nobody stores.
            tokio::spawn(self.clone().drain(db.clone()));
        }
        rx.await
            .unwrap_or_else(|_| Err(Arc::new(sqlx::Error::Protocol("presence batch dropped".into()))))
    }

    async fn drain(self, db: Db) {
        while let Some(batch) = self.0.next(MAX_BATCH) {
            let mut ids: Vec<UserId> = batch.iter().map(|(id, _)| *id).collect();
            ids.sort_unstable();
            ids.dedup();
            match presence::sockets_opened(&db, &ids).await {
                Ok((mut changed, at)) => {
                    changed.sort_unstable();
                    for (id, tx) in batch {
                        // Only the first socket of a user in the batch is told of the change.
                        let made = changed.binary_search(&id).map(|i| changed.remove(i)).is_ok();
                        let _ = tx.send(Ok(made.then_some(at)));
                    }
                }
                Err(err) => {
                    let err = Arc::new(err);
                    for (_, tx) in batch {
                        let _ = tx.send(Err(err.clone()));
                    }
                }
            }
        }
    }
}
