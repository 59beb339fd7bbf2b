//! A queue whose items are handled together: whoever finds no batch being handled starts a
//! task that takes the waiting items in batches until none are left, and every item that
//! arrives meanwhile joins the next batch. Used where many small requests each cost a commit
//! (or a statement) and one for all of them costs about the same as one.

use std::sync::Arc;

use parking_lot::Mutex;

pub(crate) struct Batches<T>(Arc<Mutex<Queue<T>>>);

struct Queue<T> {
    waiting: Vec<T>,
    handling: bool,
}

impl<T> Clone for Batches<T> {
    fn clone(&self) -> Self {
        Batches(self.0.clone())
    }
}

impl<T> Default for Batches<T> {
    fn default() -> Self {
        Batches(Arc::new(Mutex::new(Queue {
            waiting: Vec::new(),
            handling: false,
        })))
    }
}

impl<T> std::fmt::Debug for Batches<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.0.lock();
        f.debug_struct("Batches")
            .field("waiting", &queue.waiting.len())
            .field("handling", &queue.handling)
            .finish()
    }
}

impl<T> Batches<T> {
    /// Queues `item`. True when no batch was being handled: the caller must then start the
    /// task that calls [`Batches::next`] until it returns None.
    #[must_use]
    pub(crate) fn push(&self, item: T) -> bool {
        let mut queue = self.0.lock();
        queue.waiting.push(item);
        !std::mem::replace(&mut queue.handling, true)
    }

    /// The next batch, at most `max` items in the order they came; None when nothing is
    /// waiting, and from then on the next [`Batches::push`] starts a new task.
    pub(crate) fn next(&self, max: usize) -> Option<Vec<T>> {
        let mut queue = self.0.lock();
        if queue.waiting.is_empty() {
            queue.handling = false;
            return None;
        }
        let n = queue.waiting.len().min(max);
        Some(queue.waiting.drain(..n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::Batches;

    #[test]
    fn the_first_push_starts_and_the_queue_empties_in_order() {
        let batches = Batches::default();
        assert!(batches.push(1));
        assert!(!batches.push(2));
        assert!(!batches.push(3));
        assert_eq!(batches.next(2), Some(vec![1, 2]));
        assert!(!batches.push(4), "a batch is still being handled");
        assert_eq!(batches.next(2), Some(vec![3, 4]));
        assert_eq!(batches.next(2), None);
        assert!(batches.push(5), "the queue went idle, so the next push starts a task");
        assert_eq!(batches.next(8), Some(vec![5]));
    }
}
