//! Change stamps for the caches of read paths (the chat list): every write to a chat or a user
//! moves that id's stamp on, after the write is stored and before anyone is told of it. A
//! cached answer remembers the stamps of everything it was built from, read before the reads
//! that built it, and is served only while every one of them is unchanged.
//!
//! Stamps live in a fixed array of counters indexed by a hash of the id, so memory stays
//! bounded however many chats and users there are. Two ids sharing a slot only make a cached
//! answer look changed when it is not (a needless reload), never the other way round.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use uuid::Uuid;

/// Slots in the array (a power of two): 512 KiB of counters.
const SLOTS: usize = 1 << 16;

/// The shared stamps (cheap to clone).
#[derive(Clone)]
pub(crate) struct Freshness(Arc<Inner>);

struct Inner {
    slots: Box<[AtomicU64]>,
    /// Moves on when changes may have gone unrecorded (fixtures written straight to storage,
    /// a cache cleared wholesale): every stamp taken before it is void.
    epoch: AtomicU64,
}

/// The stamps of one id, or of everything ([`Freshness::epoch`]), as read at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp(u64);

impl Default for Freshness {
    fn default() -> Freshness {
        Freshness::new()
    }
}

impl Freshness {
    pub(crate) fn new() -> Freshness {
        Freshness(Arc::new(Inner {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
        }))
    }

    fn slot(&self, id: Uuid) -> &AtomicU64 {
        // uuid v7 keeps its random bits at the end; v4 is random throughout.
        let (high, low) = id.as_u64_pair();
        let mixed = (low ^ high.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.0.slots[(mixed >> 48) as usize & (SLOTS - 1)]
    }

    /// `id` (a chat or a user) changed; call after the change is stored.
    pub(crate) fn touch(&self, id: Uuid) {
        self.slot(id).fetch_add(1, Ordering::AcqRel);
    }

    /// Everything may have changed.
    pub(crate) fn touch_all(&self) {
        self.0.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn stamp(&self, id: Uuid) -> Stamp {
        Stamp(self.slot(id).load(Ordering::Acquire))
    }

    pub(crate) fn epoch(&self) -> Stamp {
        Stamp(self.0.epoch.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_moves_that_stamp_and_the_epoch_voids_all() {
        let f = Freshness::new();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (sa, e) = (f.stamp(a), f.epoch());
        f.touch(a);
        f.touch(b);
        assert_ne!(f.stamp(a), sa);
        assert_eq!(f.epoch(), e);
        f.touch_all();
        assert_ne!(f.epoch(), e);
    }
}
