//! `send`: messages queued for storage while the socket goes on reading and delivering, each
//! answered (`ack`, or an error naming its `clientId`) in the order of the sends.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use serde_json::Value;

use futures_util::SinkExt;
use tungstenite::Message;

use super::{text, Frame, Session, Sink};
use crate::chats::view::MessageView;
use crate::chats::writer::WriterPermit;
use crate::chats::{ChatError, ChatResult, Chats, Submitted};
use crate::ids::ChatId;
use crate::store::messages::{NewMessage, Stored};
use crate::wire::v2::{Ack, ErrorReply, SendMessage};
use crate::wire::ErrorBody;

/// Sends one socket may have waiting for their commit before it stops reading new ones.
const MAX_SENDS_IN_FLIGHT: usize = 256;

/// What an `ack` (or its error) must say about the send it answers.
pub(super) struct PendingAck {
    client_id: String,
    chat: ChatId,
    reference: Option<Value>,
}

/// A send and how storing it went.
pub(super) type Answer = (PendingAck, ChatResult<Stored>);

type PendingSend = Pin<Box<dyn Future<Output = Answer> + Send + Sync>>;

/// A send waiting for room in the storage queue.
struct BlockedSend {
    message: NewMessage,
    ack: PendingAck,
    room: Pin<Box<dyn Future<Output = Result<WriterPermit, ChatError>> + Send + Sync>>,
}

/// The sends of one socket that are not answered yet.
#[derive(Default)]
pub(super) struct Sends {
    /// Queued for storage, answered in the order they were made.
    pending: FuturesOrdered<PendingSend>,
    /// (chat, clientId) of every send not answered yet, oldest first.
    in_flight: VecDeque<(ChatId, String)>,
    /// A send that found the storage queue full. Meanwhile the socket reads nothing new (so
    /// its sends keep their order) but keeps delivering.
    /// Boxed: it is rare, and every idle socket would otherwise carry its size.
    blocked: Option<Box<BlockedSend>>,
}

/// What the sends of a socket need next.
pub(super) enum SendEvent {
    /// The oldest pending send is stored (or failed): answer it.
    /// Boxed so that the future every idle socket waits on stays small.
    Answered(Box<Answer>),
    /// The blocked send may now be queued (or must be refused, storage having stopped).
    Room(Result<WriterPermit, ChatError>),
}

impl Sends {
    /// True while the socket may read another frame.
    pub(super) fn can_take_more(&self) -> bool {
        self.blocked.is_none() && self.pending.len() < MAX_SENDS_IN_FLIGHT
    }

    /// Waits for the next answer or for room for the blocked send, answers first; pends forever
    /// while there is neither. A plain poll, not an async fn: every idle socket waits on it,
    /// and an async fn would keep room for both outcomes.
    pub(super) fn next_event(&mut self) -> impl Future<Output = SendEvent> + '_ {
        std::future::poll_fn(|cx| {
            if !self.pending.is_empty() {
                if let Poll::Ready(Some(done)) = self.pending.poll_next_unpin(cx) {
                    return Poll::Ready(SendEvent::Answered(Box::new(done)));
                }
            }
            if let Some(blocked) = &mut self.blocked {
                if let Poll::Ready(permit) = blocked.room.as_mut().poll(cx) {
                    return Poll::Ready(SendEvent::Room(permit));
                }
            }
            Poll::Pending
        })
    }

    /// The next answer of a pending send; None when none is pending.
    pub(super) async fn next_answer(&mut self) -> Option<Answer> {
        self.pending.next().await
    }

    /// Queues the send that found the storage queue full, now that there is room (or answers
    /// it with an error, in its turn, if storage stopped).
    pub(super) fn queue_blocked(&mut self, permit: Result<WriterPermit, ChatError>) {
        let Some(blocked) = self.blocked.take() else {
            return;
        };
        let BlockedSend { message, ack, .. } = *blocked;
        match permit {
            Ok(permit) => {
                let committed = Chats::submit_with(permit, message);
                self.pending.push_back(Box::pin(async move { (ack, committed.await) }));
            }
            Err(_) => self
                .pending
                .push_back(Box::pin(async move { (ack, Err(ChatError::Unavailable)) })),
        }
    }
}

impl Session {
    /// Checks a send and queues it for storage; its answer comes once it is stored.
    pub(super) async fn send(&mut self, send: SendMessage, reference: Option<&Value>) -> Result<(), ErrorBody> {
        let (chat, client_id) = (send.chat, send.client_id.clone());
        let mut draft = send.into_draft();
        draft.check(self.chats().max_extra_bytes()).map_err(ChatError::from)?;
        if !self.connection.has_joined(chat) {
            // A chat this socket follows was checked when it joined (a removal leaves the room).
            self.chats().chat_for_member(chat, self.user).await?;
        }
        self.chats().attach(self.user, chat, &mut draft).await?;
        let submitted = self.chats().try_submit(self.user, chat, draft).await?;
        self.sends.in_flight.push_back((chat, client_id.clone()));
        let ack = PendingAck {
            client_id,
            chat,
            reference: reference.cloned(),
        };
        match submitted {
            Submitted::Queued(committed) => self
                .sends
                .pending
                .push_back(Box::pin(async move { (ack, committed.await) })),
            Submitted::QueueFull(message) => {
                let room = Box::pin(self.chats().storage_room());
                self.sends.blocked = Some(Box::new(BlockedSend { message, ack, room }));
            }
        }
        Ok(())
    }

    /// Answers a send once its commit is known: `ack`, or an error frame naming its clientId.
    pub(super) async fn finish_send(&mut self, sink: &mut Sink, answer: Answer) -> Result<(), ()> {
        let answer = self.answer(answer);
        sink.send(answer).await.map_err(|_| ())
    }

    /// The frame that answers a send (built apart from the write: see `text`).
    fn answer(&mut self, (ack, result): Answer) -> Message {
        self.sends.in_flight.pop_front();
        let PendingAck {
            client_id,
            chat,
            reference,
        } = ack;
        match result {
            Ok(stored) => {
                let message = self.chats().show_full(&stored.row);
                text(&Frame::Ack(Ack {
                    client_id,
                    chat,
                    duplicate: !stored.created,
                    message: &message,
                    reference,
                }))
            }
            Err(err) => {
                let error = ErrorBody::from(err);
                metrics::counter!("causerie_ws_frames_refused_total", "code" => error.code.clone()).increment(1);
                text(&Frame::Error(ErrorReply {
                    client_id: Some(client_id),
                    ..ErrorReply::new(error, reference).about(chat)
                }))
            }
        }
    }

    /// Before the echo of one of this socket's own sends, its ack: written as soon as the
    /// commit is known, which it is by now, since storage answers senders before it publishes.
    pub(super) async fn ack_before_echo(&mut self, sink: &mut Sink, message: &MessageView) -> Result<(), ()> {
        if message.author != Some(self.user) {
            return Ok(());
        }
        let Some(client_id) = &message.client_id else {
            return Ok(());
        };
        let is_ours = |(chat, id): &(ChatId, String)| *chat == message.ref_chat && id == client_id;
        if !self.sends.in_flight.iter().any(is_ours) {
            return Ok(());
        }
        while let Some(done) = self.sends.next_answer().await {
            let answered = done.0.chat == message.ref_chat && done.0.client_id == *client_id;
            self.finish_send(sink, done).await?;
            if answered {
                break;
            }
        }
        Ok(())
    }
}
