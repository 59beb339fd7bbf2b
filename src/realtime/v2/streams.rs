//! The rule that keeps every followed chat's stream in order, gap-free and duplicate-free.
//!
//! For each chat a socket follows, it remembers the last sequence it sent. A live message at or
//! below it is a duplicate (the replay or another path sent it already); the next one is
//! delivered; one beyond the next means earlier ones are still in flight (another instance,
//! another commit), so the missing range is read from storage first. Storage commits a chat's
//! sequences in order, so whatever is missing is already there. A catch-up from storage
//! advances the stream as it writes, so live messages that arrived meanwhile (the socket joins
//! the chat's room before it reads storage) are then seen as the duplicates they are.

use std::collections::HashMap;

use crate::ids::ChatId;

/// What to do with a live message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Live {
    /// The socket does not follow the chat.
    NotFollowed,
    /// Already sent: skip it.
    Duplicate,
    /// The next one: send it.
    Deliver,
    /// Messages `from..=to` are missing before it: send those from storage, then it.
    Gap { from: i64, to: i64 },
}

/// One storage read of a catch-up: up to `limit` messages after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    pub after: i64,
    pub limit: i64,
}

/// Per followed chat, the last sequence sent.
#[derive(Debug, Default)]
pub(crate) struct ChatStreams {
    last_sent: HashMap<ChatId, i64>,
}

impl ChatStreams {
    /// Follows `chat` from after `after` (0: from its first message).
    pub(crate) fn follow(&mut self, chat: ChatId, after: i64) {
        self.last_sent.insert(chat, after);
    }

    pub(crate) fn unfollow(&mut self, chat: ChatId) {
        self.last_sent.remove(&chat);
    }

    pub(crate) fn follows(&self, chat: ChatId) -> bool {
        self.last_sent.contains_key(&chat)
    }

    pub(crate) fn last_sent(&self, chat: ChatId) -> Option<i64> {
        self.last_sent.get(&chat).copied()
    }

    /// What to do with live message `seq` of `chat`.
    pub(crate) fn live(&self, chat: ChatId, seq: i64) -> Live {
        match self.last_sent(chat) {
            None => Live::NotFollowed,
            Some(last) if seq <= last => Live::Duplicate,
            Some(last) if seq == last + 1 => Live::Deliver,
            Some(last) => Live::Gap {
                from: last + 1,
                to: seq - 1,
            },
        }
    }

    /// Records that message `seq` of `chat` was sent (from storage or live). A stream only
    /// moves forward.
    pub(crate) fn sent(&mut self, chat: ChatId, seq: i64) {
        if let Some(last) = self.last_sent.get_mut(&chat) {
            *last = (*last).max(seq);
        }
    }

    /// The next storage read of a catch-up of `chat` up to message `upto`, at most `page_size`
    /// messages; None once nothing is missing (or the chat is not followed).
    pub(crate) fn next_page(&self, chat: ChatId, upto: i64, page_size: i64) -> Option<Page> {
        let last = self.last_sent(chat)?;
        (last < upto).then(|| Page {
            after: last,
            limit: page_size.min(upto - last),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: i64 = 500;

    /// A catch-up as the session runs it, against a chat whose storage holds `1..=stored`:
    /// every message read is sent. Returns what it sent.
    fn catch_up(streams: &mut ChatStreams, chat: ChatId, upto: i64, page_size: i64, stored: i64) -> Vec<i64> {
        let mut sent = Vec::new();
        while let Some(page) = streams.next_page(chat, upto, page_size) {
            let rows: Vec<i64> = (page.after + 1..=stored).take(page.limit as usize).collect();
            for &seq in &rows {
                streams.sent(chat, seq);
                sent.push(seq);
            }
            if (rows.len() as i64) < page.limit {
                break;
            }
        }
        sent
    }

    /// Live messages as the session handles them; returns what it sent.
    fn live(streams: &mut ChatStreams, chat: ChatId, seqs: &[i64], stored: i64) -> Vec<i64> {
        let mut sent = Vec::new();
        for &seq in seqs {
            match streams.live(chat, seq) {
                Live::NotFollowed | Live::Duplicate => continue,
                Live::Gap { to, .. } => sent.extend(catch_up(streams, chat, to, PAGE, stored)),
                Live::Deliver => {}
            }
            streams.sent(chat, seq);
            sent.push(seq);
        }
        sent
    }

    #[test]
    fn in_order_messages_are_delivered() {
        let chat = ChatId::new();
        let mut streams = ChatStreams::default();
        streams.follow(chat, 0);
        assert_eq!(streams.live(chat, 1), Live::Deliver);
        assert_eq!(live(&mut streams, chat, &[1, 2, 3], 3), vec![1, 2, 3]);
        assert_eq!(streams.last_sent(chat), Some(3));
    }

    #[test]
    fn duplicates_are_skipped() {
        let chat = ChatId::new();
        let mut streams = ChatStreams::default();
        streams.follow(chat, 5);
        assert_eq!(streams.live(chat, 5), Live::Duplicate);
        assert_eq!(streams.live(chat, 1), Live::Duplicate);
        assert_eq!(live(&mut streams, chat, &[4, 6, 6, 5, 7], 7), vec![6, 7]);
    }

    #[test]
    fn a_gap_is_filled_from_storage_first() {
        let chat = ChatId::new();
        let mut streams = ChatStreams::default();
        streams.follow(chat, 2);
        assert_eq!(streams.live(chat, 6), Live::Gap { from: 3, to: 5 });
        assert_eq!(
            streams.next_page(chat, 5, PAGE),
            Some(Page { after: 2, limit: 3 }),
            "the read stops before the live message"
        );
        // 6 arrives before 3..5 (which another instance committed first); they come late too.
        assert_eq!(live(&mut streams, chat, &[6, 3, 4, 5, 7], 7), vec![3, 4, 5, 6, 7]);
    }

    #[test]
    fn live_messages_during_a_catch_up_are_not_sent_twice() {
        let chat = ChatId::new();
        let mut streams = ChatStreams::default();
        // Resume after 4. The socket joined the room first, so 8..=11 are queued for it while
        // the replay reads storage, which by then holds up to 10.
        streams.follow(chat, 4);
        assert_eq!(
            catch_up(&mut streams, chat, i64::MAX, PAGE, 10),
            vec![5, 6, 7, 8, 9, 10]
        );
        assert_eq!(streams.last_sent(chat), Some(10), "subscribed reports lastSeq 10");
        assert_eq!(live(&mut streams, chat, &[8, 9, 10, 11], 11), vec![11]);
    }

    #[test]
    fn a_long_catch_up_reads_page_by_page() {
        let chat = ChatId::new();
        let mut streams = ChatStreams::default();
        streams.follow(chat, 0);
        assert_eq!(streams.next_page(chat, i64::MAX, 2), Some(Page { after: 0, limit: 2 }));
        assert_eq!(catch_up(&mut streams, chat, i64::MAX, 2, 5), vec![1, 2, 3, 4, 5]);
        assert_eq!(streams.next_page(chat, 5, 2), None, "nothing missing up to 5");
        // A stream holding everything stored reads once more, finds nothing, and stops.
        assert_eq!(catch_up(&mut streams, chat, i64::MAX, 2, 5), Vec::<i64>::new());
    }

    #[test]
    fn unfollowed_chats_get_nothing() {
        let chat = ChatId::new();
        let mut streams = ChatStreams::default();
        assert_eq!(streams.live(chat, 1), Live::NotFollowed);
        assert_eq!(streams.next_page(chat, i64::MAX, PAGE), None);
        streams.follow(chat, 0);
        streams.unfollow(chat);
        assert!(!streams.follows(chat));
        streams.sent(chat, 3);
        assert_eq!(streams.last_sent(chat), None, "sending does not follow");
    }
}
