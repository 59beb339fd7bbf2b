//! `subscribe`, `resume` and `unsubscribe`, and the delivery of what a socket follows: live
//! events from its queue, and catch-ups from storage when a stream has a gap.

use std::sync::Arc;

use futures_util::SinkExt;
use serde_json::Value;

use super::streams::Live;
use super::{reply, write, Frame, Session, Sink};
use crate::chats::events::ChatEvent;
use crate::ids::ChatId;
use crate::realtime::event::{Delivery, Event, Format};
use crate::realtime::hub::Deliveries;
use crate::realtime::session::FLUSH_BATCH;
use crate::wire::v2::{ChatMessage, ErrorReply, Resume, Subscribed, Unsubscribed};
use crate::wire::ErrorBody;

/// Messages replayed per storage read while catching a socket up.
const REPLAY_PAGE: i64 = 500;

/// Most messages one `subscribe` frame (or one `resume` frame, over all its chats) replays
/// from storage. A longer gap is paged: `subscribed` says `more`, the chat is not followed
/// yet, and the client subscribes again from the `lastSeq` it got (docs/protocol.md). So a
/// frame costs the server a bounded amount of work, however old its `afterSeq`.
pub(crate) const REPLAY_LIMIT: i64 = 200;

impl Session {
    /// Follows `chat` from `after` (replaying what is stored beyond it, at most `budget`
    /// messages, which it uses up) or from now.
    pub(super) async fn subscribe(
        &mut self,
        sink: &mut Sink,
        chat: ChatId,
        after: Option<i64>,
        reference: Option<&Value>,
        budget: &mut i64,
    ) -> Result<(), ErrorBody> {
        let row = self.chats().chat_for_member(chat, self.user).await?;
        if let Some(after) = after {
            if after < 0 || after > row.last_seq {
                return Err(ErrorBody::new(
                    "invalid_seq",
                    format!(
                        "afterSeq {after} does not exist in this chat (last is {}).",
                        row.last_seq
                    ),
                ));
            }
        }
        // Join first: whatever commits from here on is queued for this socket, and the replay
        // below covers what committed before, so the two overlap rather than leave a gap.
        self.connection.join(chat);
        let start = match after {
            Some(after) => after,
            None => self.chats().last_seq(chat).await?,
        };
        self.streams.follow(chat, start);
        let more = !self.replay(sink, chat, budget).await?;
        let last_seq = self.streams.last_sent(chat).unwrap_or(start);
        if more {
            // Not caught up: not followed either (a live message would open a gap that the
            // stream rule would fill from storage, unbounded). The client asks for the next page.
            self.connection.leave(chat);
            self.streams.unfollow(chat);
        }
        let subscribed = Subscribed {
            chat,
            last_seq,
            more,
            reference: reference.cloned(),
        };
        reply(sink, &Frame::Subscribed(subscribed)).await;
        Ok(())
    }

    /// Subscribes to each chat after its last sequence held. One bad entry does not stop the
    /// others; it is reported with its chat.
    pub(super) async fn resume(&mut self, sink: &mut Sink, resume: Resume, reference: Option<&Value>) {
        // One replay budget for the whole frame.
        let mut budget = REPLAY_LIMIT;
        for (chat, seq) in resume.chats {
            if let Err(error) = self.subscribe(sink, chat, Some(seq), reference, &mut budget).await {
                let error = ErrorReply::new(error, reference.cloned()).about(chat);
                reply(sink, &Frame::Error(error)).await;
            }
        }
    }

    pub(super) async fn unsubscribe(&mut self, sink: &mut Sink, chat: ChatId, reference: Option<&Value>) {
        self.connection.leave(chat);
        self.streams.unfollow(chat);
        let unsubscribed = Unsubscribed {
            chat,
            reference: reference.cloned(),
        };
        reply(sink, &Frame::Unsubscribed(unsubscribed)).await;
    }

    /// Replays stored messages of `chat` after the last one sent, at most `budget` of them (which
    /// it uses up). True when the socket then holds everything stored.
    async fn replay(&mut self, sink: &mut Sink, chat: ChatId, budget: &mut i64) -> Result<bool, ErrorBody> {
        loop {
            let Some(page) = self.streams.next_page(chat, i64::MAX, REPLAY_PAGE.min(*budget).max(1)) else {
                return Ok(true);
            };
            if *budget <= 0 {
                // Is anything left beyond what was sent?
                let last = self.chats().last_seq(chat).await?;
                return Ok(page.after >= last);
            }
            let (count, peer_left) = self.send_stored(sink, chat, page.after, page.limit).await?;
            *budget -= count;
            if peer_left || count < page.limit {
                return Ok(true);
            }
        }
    }

    /// Sends up to `limit` stored messages of `chat` after `after`, in order, marking each sent.
    /// Returns how many were read, and whether the peer left meanwhile (the loop notices that
    /// on its next read).
    async fn send_stored(
        &mut self,
        sink: &mut Sink,
        chat: ChatId,
        after: i64,
        limit: i64,
    ) -> Result<(i64, bool), ErrorBody> {
        let rows = self.chats().since(chat, after, limit).await?;
        let count = rows.len() as i64;
        for row in rows {
            self.streams.sent(chat, row.seq);
            let message = self.chats().show_full(&row);
            let frame = Frame::Message(ChatMessage {
                chat: message.ref_chat,
                message: &message,
            });
            if write(sink, &frame).await.is_err() {
                return Ok((count, true));
            }
        }
        Ok((count, false))
    }

    /// Sends the stored messages of `chat` after the last one sent, up to message `upto`.
    async fn catch_up(&mut self, sink: &mut Sink, chat: ChatId, upto: i64) -> Result<(), ErrorBody> {
        while let Some(page) = self.streams.next_page(chat, upto, REPLAY_PAGE) {
            let (count, peer_left) = self.send_stored(sink, chat, page.after, page.limit).await?;
            if peer_left {
                return Ok(());
            }
            if count < page.limit {
                break;
            }
        }
        Ok(())
    }

    /// Forwards queued deliveries (several per flush), keeping each chat's stream gap-free.
    pub(super) async fn forward(
        &mut self,
        sink: &mut Sink,
        first: Arc<Delivery>,
        rx: &mut Deliveries,
    ) -> Result<(), ()> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(delivery) = next.take() {
            if let Event::Resync { chat } = delivery.event {
                if self.streams.follows(chat) {
                    sink.flush().await.map_err(|_| ())?;
                    self.catch_up(sink, chat, i64::MAX).await.map_err(|_| ())?;
                }
                next = rx.try_recv();
                continue;
            }
            if let Event::Chat {
                event: ChatEvent::MemberRemoved { chat, user },
            } = delivery.event
            {
                // The hub has taken this socket out of the room; the stream ends too, so no
                // catch-up from storage reaches a chat its user has left.
                if user == self.user {
                    self.streams.unfollow(chat);
                }
            }
            if let Some(message) = delivery.event.new_message() {
                self.ack_before_echo(sink, message).await?;
                let (chat, seq) = (message.ref_chat, message.seq.unwrap_or(0));
                match self.streams.live(chat, seq) {
                    Live::NotFollowed | Live::Duplicate => {
                        next = rx.try_recv();
                        continue;
                    }
                    Live::Gap { to, .. } => {
                        sink.flush().await.map_err(|_| ())?;
                        self.catch_up(sink, chat, to).await.map_err(|_| ())?;
                    }
                    Live::Deliver => {}
                }
                self.streams.sent(chat, seq);
            }
            if let Some(frame) = delivery.frame(Format::V2) {
                sink.feed(tungstenite::Message::Text(frame)).await.map_err(|_| ())?;
                written += 1;
            }
            if written < FLUSH_BATCH {
                next = rx.try_recv();
            }
        }
        sink.flush().await.map_err(|_| ())
    }
}
