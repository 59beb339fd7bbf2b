//! Background work the server owns: each task is spawned into a stage, and shutdown stops the
//! stages one after the other, waiting for each stage's tasks to finish.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Tasks that stop together: told by one token, awaited through one tracker.
pub(crate) struct Stage {
    name: &'static str,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Stage {
    pub(crate) fn new(name: &'static str) -> Stage {
        Stage {
            name,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// Spawns `task`, which gets this stage's stop token and must return soon after it fires.
    pub(crate) fn spawn<F, Fut>(&self, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task(self.stop.clone()));
    }

    /// Spawns a task that knows nothing of stopping: it is aborted when the stage stops.
    pub(crate) fn spawn_until_stopped<Fut>(&self, task: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = task => {}
                _ = stop.cancelled() => {}
            }
        });
    }

    /// Tells the stage's tasks to stop and waits for them until `deadline`.
    pub(crate) async fn stop(&self, deadline: tokio::time::Instant) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout_at(deadline, self.tasks.wait()).await.is_err() {
            tracing::warn!(
                stage = self.name,
                still_running = self.tasks.len(),
                "shutdown grace period over before these tasks finished"
            );
        }
    }
}

/// Runs `every` at a fixed period until `stop` (a run under way when it fires is finished).
pub(crate) async fn periodically<F, Fut>(period: Duration, stop: CancellationToken, mut every: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = ticks.tick() => every().await,
            _ = stop.cancelled() => return,
        }
    }
}
