//! What presence needs to hear from the account service: who made an authenticated request
//! (kept in memory, read in batches: no storage write per request) and which presence
//! declarations (`PATCH /api/user/{id}/` with `online`) were stored. `realtime::presence`
//! reads both; the account service knows nothing of sockets, leases or Redis.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::ids::UserId;

/// A stored declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Declared {
    pub user: UserId,
    pub online: bool,
    /// When the shown presence changed with it; None: it already showed this.
    pub changed: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub(crate) struct Activity {
    /// Users seen since the last [`Activity::take_seen`], with the time (unix milliseconds).
    seen: parking_lot::Mutex<HashMap<UserId, i64>>,
    declared: parking_lot::Mutex<Vec<Declared>>,
    /// Wakes the reader of declarations (a permit is kept when nobody waits yet).
    wake: tokio::sync::Notify,
}

impl Activity {
    /// The user made an authenticated request now.
    pub(crate) fn seen(&self, user: UserId) {
        self.seen.lock().insert(user, chrono::Utc::now().timestamp_millis());
    }

    /// Everyone seen since the last call, with when they were last seen (unix milliseconds).
    pub(crate) fn take_seen(&self) -> Vec<(UserId, i64)> {
        std::mem::take(&mut *self.seen.lock()).into_iter().collect()
    }

    pub(crate) fn declare(&self, declared: Declared) {
        self.declared.lock().push(declared);
        self.wake.notify_one();
    }

    /// Waits for declarations and returns those stored so far, oldest first.
    pub(crate) async fn declarations(&self) -> Vec<Declared> {
        loop {
            let batch = std::mem::take(&mut *self.declared.lock());
            if !batch.is_empty() {
                return batch;
            }
            self.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn declarations_wait_and_come_in_order() {
        let activity = std::sync::Arc::new(Activity::default());
        let (a, b) = (UserId::new(), UserId::new());
        let reader = tokio::spawn({
            let activity = activity.clone();
            async move { activity.declarations().await }
        });
        tokio::task::yield_now().await;
        let first = Declared {
            user: a,
            online: true,
            changed: None,
        };
        activity.declare(first);
        let batch = reader.await.unwrap();
        assert_eq!(batch, vec![first]);
        activity.declare(Declared { user: b, ..first });
        activity.declare(Declared { online: false, ..first });
        let batch = activity.declarations().await;
        assert_eq!(
            batch.iter().map(|d| (d.user, d.online)).collect::<Vec<_>>(),
            vec![(b, true), (a, false)]
        );
    }

    #[test]
    fn seen_users_are_taken_once() {
        let activity = Activity::default();
        let user = UserId::new();
        activity.seen(user);
        activity.seen(user);
        assert_eq!(activity.take_seen().len(), 1);
        assert!(activity.take_seen().is_empty());
    }
}
