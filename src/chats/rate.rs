//! Messages per user per second, over every socket and `POST /api/message/` together: the
//! chat service checks it before a message is queued, so both ways in share it.
//!
//! A fixed one-second window per user (`user_messages_per_second`), counted in Redis
//! (`causerie:limit:messages:*`, expiring after two seconds) when it is configured, so a user's
//! sockets on several instances add up; in this process otherwise, or while Redis does not
//! answer. A refused message is not stored; REST answers 429 with `Retry-After: 1`, a socket an
//! error frame with the code `rate_limited` (the socket stays open).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::counters::RedisCounters;
use crate::ids::UserId;

pub(crate) struct MessageRate {
    /// 0: no limit.
    per_second: u32,
    /// Per user: the second counted and how many messages so far in it.
    local: Mutex<HashMap<UserId, (u64, u32)>>,
    redis: Option<RedisCounters>,
}

impl MessageRate {
    pub(crate) fn new(per_second: u32, redis: Option<RedisCounters>) -> MessageRate {
        MessageRate {
            per_second,
            local: Mutex::new(HashMap::new()),
            redis,
        }
    }

    pub(crate) fn unlimited() -> MessageRate {
        MessageRate::new(0, None)
    }

    /// Counts one message of `user`; false when it is over this second's allowance.
    pub(crate) async fn admit(&self, user: UserId) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Some(redis) = &self.redis {
            let key = format!("causerie:limit:messages:{user}:{second}");
            let mut pipe = redis::pipe();
            pipe.cmd("INCR").arg(&key);
            pipe.cmd("EXPIRE").arg(&key).arg(2).ignore();
            if let Some((count,)) = redis.query::<(u32,)>(&pipe).await {
                return count <= self.per_second;
            }
        }
        let mut local = self.local.lock();
        let slot = local.entry(user).or_insert((second, 0));
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        slot.1 <= self.per_second
    }

    /// Forgets users who sent nothing this second (run now and then).
    pub(crate) fn sweep(&self) {
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.local.lock().retain(|_, (at, _)| *at + 1 >= second);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_per_user() {
        let rate = MessageRate::new(3, None);
        let (a, b) = (UserId::new(), UserId::new());
        let mut admitted = 0;
        for _ in 0..10 {
            admitted += usize::from(rate.admit(a).await);
        }
        // Three per second; the loop may straddle a second boundary, never more than twice.
        assert!((3..=6).contains(&admitted), "{admitted}");
        assert!(rate.admit(b).await, "another user has their own allowance");
        assert!(MessageRate::unlimited().admit(a).await);
    }
}
