//! The `causerie.v2` session: acknowledged, idempotent sends; per-chat ordered, gap-free and
//! duplicate-free message streams with `resume`; receipts, typing, presence, edits, deletes and
//! group membership. Every frame and error code is described in docs/protocol.md; the frames
//! themselves are `wire::v2`'s.
//!
//! This file is the socket loop and the dispatch of commands. Each command group is handled in
//! a file of its own: `sends` (send, and the acks in the order of the sends), `follow`
//! (subscribe, resume, unsubscribe, and delivering what the socket follows: live messages and
//! catch-ups from storage), `actions` (read, typing, edit, delete, membership). `streams` is
//! the ordering rule itself.

mod actions;
mod follow;
mod sends;
mod streams;

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;

use self::sends::{SendEvent, Sends};
use self::streams::ChatStreams;
use super::hub::Connection;
use super::presence;
use super::session::{self, Inbound, OpenGauge};
use super::Realtime;
use crate::chats::Chats;
use crate::ids::{ChatId, UserId};
use crate::wire::v2::{ClientFrame, Command, ErrorReply, Muted, Pong, Refused, ServerFrame};
use crate::wire::{self, ErrorBody, MessageView};

type Sink = SplitSink<WebSocket, Message>;
/// The frames a session writes: message objects by reference.
type Frame<'a> = ServerFrame<&'a MessageView>;

struct Session {
    rt: Realtime,
    user: UserId,
    connection: Connection,
    streams: ChatStreams,
    last_typing: HashMap<ChatId, Instant>,
    sends: Sends,
}

/// Runs a v2 socket. `initial` is the chat of a `/ws/chat/{id}/` URL, followed from `after`
/// (or from now).
pub(crate) async fn run(socket: WebSocket, rt: Realtime, user: UserId, initial: Option<(ChatId, Option<i64>)>) {
    let _gauge = OpenGauge::new();
    let (connection, mut rx) = rt.hub().connect(user, rt.settings().send_queue);
    // Work that only happens now and then is boxed, so the future an idle socket's task keeps
    // stays small (an idle connection should cost a few KiB).
    Box::pin(presence::connected(&rt, user)).await;
    let kicked = connection.kicked();
    let limiter = session::frame_limiter(&rt);
    let mut keepalive = session::Keepalive::new(&rt);
    let closing = rt.closing().clone();
    let (mut sink, mut stream) = socket.split();
    let mut session = Session {
        rt: rt.clone(),
        user,
        connection,
        streams: ChatStreams::default(),
        last_typing: HashMap::new(),
        sends: Sends::default(),
    };

    if let Some((chat, after)) = initial {
        if let Err(error) = Box::pin(session.subscribe(&mut sink, chat, after, None)).await {
            // As for `resume`, the error names the chat it is about.
            let refusal = text(&Frame::Error(ErrorReply::new(error, None).about(chat)));
            let _ = sink.send(refusal).await;
        }
    }
    let close = loop {
        tokio::select! {
            // Acks before deliveries: a sender hears "stored" before its message's echo.
            biased;
            event = session.sends.next_event() => match event {
                SendEvent::Answered(done) => if session.finish_send(&mut sink, done).await.is_err() { break None },
                SendEvent::Room(permit) => session.sends.queue_blocked(permit),
            },
            // A socket with too many sends waiting for their commit, or one waiting for room
            // to queue its last send, reads nothing more until that clears: back-pressure
            // through TCP, while deliveries and acks keep flowing.
            inbound = stream.next(), if session.sends.can_take_more() => match session::read_inbound(inbound, &limiter, &mut keepalive.last_heard) {
                Inbound::Closed(close) => break close,
                Inbound::Nothing => continue,
                Inbound::Refused { code, detail } => {
                    let refusal = text(&Frame::Error(ErrorReply::new(ErrorBody::new(code, detail), None)));
                    if sink.send(refusal).await.is_err() { break None }
                }
                Inbound::Text(text) => if Box::pin(session.handle(&mut sink, &text)).await.is_err() { break None },
            },
            queued = rx.recv() => match queued {
                // A peer that does not read blocks the write once the kernel's buffers are full;
                // the kick must still end it, so race the two.
                Some(delivery) => tokio::select! {
                    forwarded = Box::pin(session.forward(&mut sink, delivery, &mut rx)) => if forwarded.is_err() { break None },
                    reason = kicked.notified() => break Some(session::kick_close(reason)),
                },
                None => break None,
            },
            reason = kicked.notified() => break Some(session::kick_close(reason)),
            due = keepalive.due() => match due {
                Ok(ping) => if sink.send(ping).await.is_err() { break None },
                Err(dead) => break Some(dead),
            },
            _ = closing.cancelled() => break Some(session::restarting()),
        }
    };
    if closing.is_cancelled() {
        // Every send already read is answered (ack or error) before the close frame.
        while let Some(done) = session.sends.next_answer().await {
            if session.finish_send(&mut sink, done).await.is_err() {
                break;
            }
        }
    }
    if let Some(close) = close {
        session::close_handshake(&mut sink, &mut stream, close).await;
    }
    let Session { connection, .. } = session;
    drop(connection);
    Box::pin(presence::disconnected(&rt, user)).await;
}

/// A frame's WebSocket message. Sessions turn a frame into its text before they await the
/// write, so that the frame (and the message object it may borrow) is not kept in the
/// session's future: every socket's task is as large as its largest state, idle or not.
fn text<M: Serialize>(frame: &ServerFrame<M>) -> Message {
    Message::Text(wire::to_text(frame).into())
}

/// Writes one frame; `Err` carries nothing useful but means the socket is gone.
async fn write<M: Serialize>(sink: &mut Sink, frame: &ServerFrame<M>) -> Result<(), axum::Error> {
    let message = text(frame);
    sink.send(message).await
}

/// Answers a refused text frame with its error, counted by code.
async fn refuse(sink: &mut Sink, error: ErrorBody, reference: Option<Value>) -> Result<(), axum::Error> {
    metrics::counter!("causerie_ws_frames_refused_total", "code" => error.code.clone()).increment(1);
    write(sink, &Frame::Error(ErrorReply::new(error, reference))).await
}

impl Session {
    fn chats(&self) -> &Chats {
        self.rt.chats()
    }

    /// Handles one inbound frame; `Err` only when the socket is gone.
    async fn handle(&mut self, sink: &mut Sink, text: &str) -> Result<(), ()> {
        let ClientFrame { command, reference } = match ClientFrame::parse(text, self.chats().max_extra_bytes()) {
            Ok(frame) => frame,
            Err(Refused { error, reference }) => return refuse(sink, error, reference).await.map_err(|_| ()),
        };
        match self.apply(sink, command, reference.as_ref()).await {
            Ok(()) => Ok(()),
            Err(error) => refuse(sink, error, reference).await.map_err(|_| ()),
        }
    }

    /// Carries out one command; `Err` is the refusal to answer it with.
    async fn apply(&mut self, sink: &mut Sink, command: Command, reference: Option<&Value>) -> Result<(), ErrorBody> {
        match command {
            Command::Send(send) => self.send(send, reference).await,
            Command::Subscribe(subscribe) => {
                self.subscribe(sink, subscribe.chat, subscribe.after_seq, reference)
                    .await
            }
            Command::Resume(resume) => {
                self.resume(sink, resume, reference).await;
                Ok(())
            }
            Command::Unsubscribe(unsubscribe) => {
                self.unsubscribe(sink, unsubscribe.chat, reference).await;
                Ok(())
            }
            Command::Read(read) => self.read(read).await,
            Command::Typing(typing) => self.typing(typing.chat).await,
            Command::Edit(edit) => self.edit(edit).await,
            Command::Delete(delete) => self.delete(delete.id).await,
            Command::AddMember(change) => self.add_member(change).await,
            Command::RemoveMember(change) => self.remove_member(change).await,
            Command::Mute(mute) => {
                let muted = self.mute(mute.chat, mute.muted).await?;
                let muted = Muted {
                    reference: reference.cloned(),
                    ..muted
                };
                reply(sink, &Frame::Muted(muted)).await;
                Ok(())
            }
            Command::Ping => {
                let pong = Frame::Pong(Pong {
                    reference: reference.cloned(),
                });
                reply(sink, &pong).await;
                Ok(())
            }
        }
    }
}

/// Writes a reply. A failed write means the peer left; the loop notices on its next read.
async fn reply<M: Serialize>(sink: &mut Sink, frame: &ServerFrame<M>) {
    let _ = write(sink, frame).await;
}
