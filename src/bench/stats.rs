//! Latency histograms and per-chat sequence tracking.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Microseconds, 1 µs … 120 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// Nanoseconds since the first call: the clock every timestamp in a message text uses.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// `{count, p50_ms, p99_ms, p999_ms, max_ms, mean_ms}`.
pub fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": (h.mean() / 10.0).round() / 100.0,
    })
}

/// One line for the human summary.
pub fn line(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  ({} samples)",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

pub fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Same bounds everywhere, so adding cannot fail.
    let _ = into.add(from);
}

/// What one receiver saw of one chat's sequence: gaps filled later are out of order, a seq
/// seen twice is a duplicate, a seq never seen by the end is lost.
#[derive(Debug, Default)]
pub struct SeqTracker {
    /// The next seq expected after an unbroken run from the start.
    next: i64,
    missing: BTreeSet<i64>,
    pub duplicates: u64,
    pub out_of_order: u64,
}

impl SeqTracker {
    /// Starts after `last_seq` (what `subscribed` reported).
    pub fn after(last_seq: i64) -> SeqTracker {
        SeqTracker {
            next: last_seq + 1,
            ..SeqTracker::default()
        }
    }

    pub fn see(&mut self, seq: i64) {
        if seq == self.next {
            self.next += 1;
        } else if seq > self.next {
            // Bounded: a receiver this far behind is reported as such anyway.
            for missing in self.next..seq.min(self.next + 1_000_000) {
                self.missing.insert(missing);
            }
            self.next = seq + 1;
        } else if self.missing.remove(&seq) {
            self.out_of_order += 1;
        } else {
            self.duplicates += 1;
        }
    }

    /// Everything up to here has been received.
    pub fn contiguous(&self) -> i64 {
        match self.missing.first() {
            Some(first) => first - 1,
            None => self.next - 1,
        }
    }

    /// Seqs up to `last` (the chat's final sequence) never received.
    pub fn lost(&self, last: i64) -> u64 {
        self.missing.len() as u64 + (last - (self.next - 1)).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_gaps_duplicates_and_losses() {
        let mut t = SeqTracker::after(0);
        for seq in [1, 2, 4, 3, 3, 6] {
            t.see(seq);
        }
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.out_of_order, 1);
        assert_eq!(t.contiguous(), 4);
        assert_eq!(t.lost(7), 2); // 5 and 7
    }
}
