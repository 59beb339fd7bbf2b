//! The message load shared by `throughput` and `fanout`: v2 sockets subscribed to their chat,
//! some of them sending at a paced (or unbounded, windowed) rate, every socket reading and
//! checking its chat's sequence.
//!
//! Each socket has a reader task and, when it sends, a writer task. The server answers the
//! frames of one socket in order (one `ack` or `error` per `send`), so the reader matches
//! answers to sends first-in first-out; a `rate_limited` or `unavailable` answer puts the send
//! back for the writer to retry with the same `clientId`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::ids::{ChatId, UserId};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::fixtures::Fixtures;
use super::net::{self, Target, Ws};
use super::stats::{self, now_ns, SeqTracker};
use crate::wire::v2::{ChatMessage, ClientFrame, Command, SendMessage, ServerFrame, Subscribe};
use crate::wire::{self, MessageDigest};

/// One socket to open: whose, following which chat, and whether it sends.
#[derive(Clone, Debug)]
pub struct SocketPlan {
    pub user: UserId,
    pub token: String,
    pub chat: ChatId,
    pub sends: bool,
}

#[derive(Clone, Debug)]
pub struct LoadOpts {
    /// Total offered messages per second over all sending sockets; 0: as fast as the window allows.
    pub rate: u64,
    /// Most unanswered sends per socket.
    pub window: usize,
    pub message_bytes: usize,
    pub phase: Duration,
    pub phases: usize,
    pub drain: Duration,
    pub concurrency: usize,
}

/// Counters every task adds to, sampled by the coordinator.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acks: AtomicU64,
    pub deliveries: AtomicU64,
    pub refused: AtomicU64,
    /// Every frame received, of any type (to see when the server has gone quiet).
    pub frames: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> [u64; 4] {
        [
            self.sent.load(Ordering::Relaxed),
            self.acks.load(Ordering::Relaxed),
            self.deliveries.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        ]
    }
}

/// What the reader and the writer of one socket share.
#[derive(Default)]
struct SockShared {
    /// Sends not answered yet, in the order sent: (n, send timestamp).
    pending: Mutex<VecDeque<(u64, u64)>>,
    /// Sends refused for now (rate limit, storage away), to send again.
    retry: Mutex<VecDeque<(u64, u64)>>,
    inflight: AtomicUsize,
    answered: Notify,
    /// Highest seq up to which this socket holds everything.
    contiguous: AtomicI64,
}

/// When phases start (nanoseconds on the `stats::now_ns` clock), so a latency sample lands in
/// the phase its message was sent in.
struct PhaseClock {
    start_ns: AtomicU64,
    phase_ns: u64,
    phases: usize,
}

impl PhaseClock {
    fn of(&self, ts: u64) -> usize {
        let start = self.start_ns.load(Ordering::Relaxed);
        (ts.saturating_sub(start) / self.phase_ns.max(1)).min(self.phases as u64 - 1) as usize
    }
}

/// The send timestamp a bench message text starts with.
fn stamp(text: &str) -> Option<u64> {
    text.split(' ').next()?.parse().ok()
}

fn elapsed_us(ts: u64) -> u64 {
    now_ns().saturating_sub(ts) / 1000
}

#[derive(Default)]
struct ReaderStats {
    deliveries: u64,
    echoes: u64,
    acks: u64,
    duplicate_acks: u64,
    latency: Vec<Histogram<u64>>,
    ack_latency: Vec<Histogram<u64>>,
    tracker: SeqTracker,
    errors: BTreeMap<String, u64>,
    unmatched: u64,
    unparsed: u64,
    /// Why the socket ended before the run did (close code or error).
    closed_early: Option<String>,
}

struct Reader {
    me: UserId,
    chat: ChatId,
    shared: Arc<SockShared>,
    counters: Arc<Counters>,
    clock: Arc<PhaseClock>,
    ready: Option<oneshot::Sender<Result<i64, String>>>,
    stats: ReaderStats,
}

impl Reader {
    fn handle(&mut self, text: &str) {
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        // Only the few fields checked here are read from each message (see `MessageDigest`).
        let Ok(frame) = serde_json::from_str::<ServerFrame<MessageDigest<'_>>>(text) else {
            self.stats.unparsed += 1;
            return;
        };
        match frame {
            ServerFrame::Message(ChatMessage { chat, message }) if chat == self.chat => {
                self.stats.deliveries += 1;
                self.counters.deliveries.fetch_add(1, Ordering::Relaxed);
                if let Some(seq) = message.seq {
                    self.stats.tracker.see(seq);
                    self.shared
                        .contiguous
                        .store(self.stats.tracker.contiguous(), Ordering::Relaxed);
                }
                if message.author == Some(self.me) {
                    self.stats.echoes += 1;
                } else if let Some(ts) = stamp(&message.message) {
                    let phase = self.clock.of(ts);
                    self.stats.latency[phase].saturating_record(elapsed_us(ts));
                }
            }
            ServerFrame::Ack(ack) => {
                self.stats.acks += 1;
                self.counters.acks.fetch_add(1, Ordering::Relaxed);
                if ack.duplicate {
                    self.stats.duplicate_acks += 1;
                }
                let n = ack.client_id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok());
                let answered = {
                    let mut pending = self.shared.pending.lock();
                    match pending.front() {
                        Some(&(first, ts)) if Some(first) == n => pending.pop_front().map(|_| ts),
                        _ => {
                            let at = pending.iter().position(|(p, _)| Some(*p) == n);
                            at.and_then(|i| pending.remove(i)).map(|(_, ts)| ts)
                        }
                    }
                };
                match answered {
                    Some(ts) => {
                        let phase = self.clock.of(ts);
                        self.stats.ack_latency[phase].saturating_record(elapsed_us(ts));
                        self.shared.inflight.fetch_sub(1, Ordering::Relaxed);
                        self.shared.answered.notify_one();
                    }
                    None => self.stats.unmatched += 1,
                }
            }
            ServerFrame::Error(error) => {
                let code = error.code;
                *self.stats.errors.entry(code.to_string()).or_default() += 1;
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Err(format!("subscribe refused: {code}")));
                    return;
                }
                let refused = self.shared.pending.lock().pop_front();
                if let Some(send) = refused {
                    if matches!(code.as_ref(), "rate_limited" | "unavailable") {
                        self.shared.retry.lock().push_back(send);
                    } else {
                        self.shared.inflight.fetch_sub(1, Ordering::Relaxed);
                        self.shared.answered.notify_one();
                    }
                }
            }
            ServerFrame::Subscribed(subscribed) if subscribed.chat == self.chat => {
                let last = subscribed.last_seq;
                self.stats.tracker = SeqTracker::after(last);
                self.shared.contiguous.store(last, Ordering::Relaxed);
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(last));
                }
            }
            _ => {}
        }
    }

    async fn run(mut self, mut stream: SplitStream<Ws>, mut stop: watch::Receiver<bool>) -> ReaderStats {
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                item = stream.next() => match item {
                    Some(Ok(Message::Text(text))) => self.handle(text.as_str()),
                    Some(Ok(Message::Close(frame))) => {
                        self.stats.closed_early = Some(match frame {
                            Some(f) => format!("close {}", u16::from(f.code)),
                            None => "close".into(),
                        });
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        self.stats.closed_early = Some(format!("error: {err}"));
                        break;
                    }
                    None => {
                        self.stats.closed_early = Some("eof".into());
                        break;
                    }
                }
            }
        }
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(self.stats.closed_early.clone().unwrap_or_default()));
        }
        self.stats
    }
}

/// A connected, subscribed socket.
pub struct Conn {
    index: usize,
    plan: SocketPlan,
    sink: SplitSink<Ws, Message>,
    shared: Arc<SockShared>,
    reader: tokio::task::JoinHandle<ReaderStats>,
}

/// The sockets of a run, connected and subscribed, their readers already reading.
pub struct Load {
    conns: Vec<Conn>,
    counters: Arc<Counters>,
    clock: Arc<PhaseClock>,
    stop: watch::Sender<bool>,
    pub connect_seconds: f64,
}

async fn open_one(
    target: &Target,
    index: usize,
    plan: SocketPlan,
    counters: Arc<Counters>,
    clock: Arc<PhaseClock>,
    stop: watch::Receiver<bool>,
) -> Result<Conn, String> {
    let ws = net::connect_v2(target, &plan.token, index, 64 * 1024, Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sink, stream) = ws.split();
    let shared = Arc::new(SockShared::default());
    let (ready_tx, ready_rx) = oneshot::channel();
    let phases = clock.phases;
    let reader = Reader {
        me: plan.user,
        chat: plan.chat,
        shared: shared.clone(),
        counters,
        clock,
        ready: Some(ready_tx),
        stats: ReaderStats {
            latency: (0..phases).map(|_| stats::histogram()).collect(),
            ack_latency: (0..phases).map(|_| stats::histogram()).collect(),
            ..ReaderStats::default()
        },
    };
    let reader = tokio::spawn(reader.run(stream, stop));
    let subscribe = ClientFrame::from(Command::Subscribe(Subscribe {
        chat: plan.chat,
        after_seq: None,
    }));
    sink.send(Message::Text(wire::to_text(&subscribe).into()))
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(30), ready_rx).await {
        Ok(Ok(Ok(_))) => Ok(Conn {
            index,
            plan,
            sink,
            shared,
            reader,
        }),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err("reader ended".into()),
        Err(_) => Err("no `subscribed` within 30 s".into()),
    }
}

impl Load {
    /// Opens and subscribes every planned socket (`concurrency` handshakes at a time).
    pub async fn connect(target: &Target, plans: Vec<SocketPlan>, opts: &LoadOpts) -> anyhow::Result<Load> {
        let started = std::time::Instant::now();
        let counters = Arc::new(Counters::default());
        let clock = Arc::new(PhaseClock {
            start_ns: AtomicU64::new(u64::MAX),
            phase_ns: opts.phase.as_nanos() as u64,
            phases: opts.phases,
        });
        let (stop, stop_rx) = watch::channel(false);
        let total = plans.len();
        let done = AtomicUsize::new(0);
        let results: Vec<Result<Conn, String>> = futures_util::stream::iter(plans.into_iter().enumerate())
            .map(|(index, plan)| {
                let (counters, clock, stop_rx) = (counters.clone(), clock.clone(), stop_rx.clone());
                let done = &done;
                async move {
                    let result = open_one(target, index, plan, counters, clock, stop_rx).await;
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % 1000 == 0 || n == total {
                        eprintln!("bench: {n}/{total} sockets connected and subscribed");
                    }
                    result
                }
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
        let mut conns = Vec::with_capacity(total);
        let mut failures: BTreeMap<String, usize> = BTreeMap::new();
        for result in results {
            match result {
                Ok(conn) => conns.push(conn),
                Err(e) => *failures.entry(e).or_default() += 1,
            }
        }
        if !failures.is_empty() {
            let _ = stop.send(true);
            anyhow::bail!(
                "{} of {total} sockets could not connect and subscribe: {failures:?}",
                total - conns.len()
            );
        }
        conns.sort_by_key(|c| c.index);
        Ok(Load {
            conns,
            counters,
            clock,
            stop,
            connect_seconds: started.elapsed().as_secs_f64(),
        })
    }

    pub fn sockets(&self) -> usize {
        self.conns.len()
    }

    /// Waits until no frame has arrived for a second (the presence announcements of everyone
    /// connecting have been delivered), at most `limit`; returns the seconds waited.
    pub async fn settle(&self, limit: Duration) -> f64 {
        let started = Instant::now();
        let mut last = self.counters.frames.load(Ordering::Relaxed);
        let mut quiet = 0;
        while quiet < 4 && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.counters.frames.load(Ordering::Relaxed);
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
        started.elapsed().as_secs_f64()
    }

    /// Runs the phases, drains, closes, and gathers the figures. `start` is when sending starts.
    pub async fn run(self, fixtures: &Fixtures, opts: &LoadOpts, start: Instant) -> anyhow::Result<LoadResult> {
        let Load {
            conns,
            counters,
            clock,
            stop,
            connect_seconds,
        } = self;
        let senders = conns.iter().filter(|c| c.plan.sends).count().max(1);
        let end = start + opts.phase * opts.phases as u32;
        clock.start_ns.store(
            now_ns() + start.saturating_duration_since(Instant::now()).as_nanos() as u64,
            Ordering::Relaxed,
        );
        let pad = "x".repeat(opts.message_bytes);
        let period = (opts.rate > 0).then(|| Duration::from_secs_f64(senders as f64 / opts.rate as f64));
        let mut writers = Vec::new();
        let mut idle_sinks = Vec::new();
        let mut readers = Vec::new();
        let mut watch_progress = Vec::new();
        for conn in conns {
            readers.push(conn.reader);
            watch_progress.push((conn.plan.chat, conn.shared.clone()));
            if conn.plan.sends {
                let writer = Writer {
                    index: conn.index,
                    chat: conn.plan.chat,
                    shared: conn.shared,
                    counters: counters.clone(),
                    pad: pad.clone(),
                    window: opts.window.max(1),
                    sink: conn.sink,
                    stats: WriterStats::default(),
                };
                let offset = period.map(|p| p.mul_f64(rand::random::<f64>())).unwrap_or_default();
                writers.push(tokio::spawn(writer.run(start + offset, period, end, stop.subscribe())));
            } else {
                idle_sinks.push(conn.sink);
            }
        }

        // Sample the counters every second and at phase boundaries.
        tokio::time::sleep_until(start).await;
        let mut boundaries = vec![counters.snapshot()];
        let mut timeline = Vec::new();
        let mut previous = counters.snapshot();
        let mut next_phase = start + opts.phase;
        let mut tick = start + Duration::from_secs(1);
        while boundaries.len() <= opts.phases {
            let wake = tick.min(next_phase);
            tokio::time::sleep_until(wake).await;
            let now = counters.snapshot();
            if wake == tick {
                timeline.push(json!({
                    "t": (tick - start).as_secs(),
                    "sent": now[0] - previous[0],
                    "acks": now[1] - previous[1],
                    "deliveries": now[2] - previous[2],
                }));
                previous = now;
                tick += Duration::from_secs(1);
            }
            if wake == next_phase {
                boundaries.push(now);
                next_phase += opts.phase;
            }
        }

        // Drain: every send answered, then every socket holding its chat up to the last seq.
        let deadline = Instant::now() + opts.drain;
        while Instant::now() < deadline
            && watch_progress
                .iter()
                .any(|(_, s)| s.inflight.load(Ordering::Relaxed) > 0)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut last_seq: HashMap<ChatId, i64> = HashMap::new();
        for (chat, _) in &watch_progress {
            if !last_seq.contains_key(chat) {
                last_seq.insert(*chat, fixtures.last_seq(*chat).await?);
            }
        }
        while Instant::now() < deadline
            && watch_progress
                .iter()
                .any(|(chat, s)| s.contiguous.load(Ordering::Relaxed) < last_seq[chat])
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let unanswered: usize = watch_progress
            .iter()
            .map(|(_, s)| s.inflight.load(Ordering::Relaxed))
            .sum();
        let _ = stop.send(true);

        let mut writer_stats = WriterStats::default();
        let mut sinks = idle_sinks;
        for writer in writers {
            let (stats, sink) = writer.await?;
            writer_stats.add(&stats);
            sinks.push(sink);
        }
        let mut result = LoadResult {
            sockets: readers.len(),
            connect_seconds,
            unanswered,
            boundaries,
            timeline,
            phase_seconds: opts.phase.as_secs_f64(),
            latency: (0..opts.phases).map(|_| stats::histogram()).collect(),
            ack_latency: (0..opts.phases).map(|_| stats::histogram()).collect(),
            writer: writer_stats,
            ..LoadResult::default()
        };
        for (reader, (chat, _)) in readers.into_iter().zip(&watch_progress) {
            let stats = reader.await?;
            result.add_reader(&stats, last_seq[chat]);
        }
        // Close every socket, a few hundred at a time.
        let closing = futures_util::stream::iter(sinks)
            .map(|mut sink| async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
            })
            .buffer_unordered(256)
            .collect::<Vec<()>>();
        let _ = tokio::time::timeout(Duration::from_secs(15), closing).await;
        Ok(result)
    }
}

#[derive(Default, Clone)]
pub struct WriterStats {
    pub sent: u64,
    pub resent: u64,
    /// Paced sends not made because the socket already had `window` sends unanswered.
    pub skipped_window: u64,
    pub failed: Option<String>,
    pub failed_sockets: u64,
}

impl WriterStats {
    fn add(&mut self, other: &WriterStats) {
        self.sent += other.sent;
        self.resent += other.resent;
        self.skipped_window += other.skipped_window;
        if other.failed.is_some() {
            self.failed_sockets += 1;
            self.failed = other.failed.clone();
        }
    }
}

struct Writer {
    index: usize,
    chat: ChatId,
    shared: Arc<SockShared>,
    counters: Arc<Counters>,
    pad: String,
    window: usize,
    sink: SplitSink<Ws, Message>,
    stats: WriterStats,
}

impl Writer {
    async fn send(&mut self, n: u64, ts: u64) -> bool {
        let frame = wire::to_text(&ClientFrame::from(Command::Send(SendMessage {
            chat: self.chat,
            client_id: format!("b{}-{n}", self.index),
            message: format!("{ts} {}", self.pad),
            message_type: None,
            extra_data: None,
            attachments: Vec::new(),
        })));
        self.shared.pending.lock().push_back((n, ts));
        match self.sink.send(Message::Text(frame.into())).await {
            Ok(()) => true,
            Err(err) => {
                self.stats.failed = Some(err.to_string());
                false
            }
        }
    }

    async fn send_new(&mut self, n: &mut u64) -> bool {
        *n += 1;
        self.shared.inflight.fetch_add(1, Ordering::Relaxed);
        self.stats.sent += 1;
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        self.send(*n, now_ns()).await
    }

    async fn resend_one(&mut self) -> Option<bool> {
        let retry = self.shared.retry.lock().pop_front();
        let (n, ts) = retry?;
        self.stats.resent += 1;
        Some(self.send(n, ts).await)
    }

    async fn run(
        mut self,
        first: Instant,
        period: Option<Duration>,
        end: Instant,
        mut stop: watch::Receiver<bool>,
    ) -> (WriterStats, SplitSink<Ws, Message>) {
        let mut n = 0u64;
        match period {
            Some(period) => {
                let mut ticks = tokio::time::interval_at(first, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                loop {
                    ticks.tick().await;
                    if Instant::now() >= end {
                        break;
                    }
                    // A refused send goes again in the next slot, so the offered rate holds.
                    let ok = match self.resend_one().await {
                        Some(ok) => ok,
                        None if self.shared.inflight.load(Ordering::Relaxed) >= self.window => {
                            self.stats.skipped_window += 1;
                            true
                        }
                        None => self.send_new(&mut n).await,
                    };
                    if !ok {
                        break;
                    }
                }
            }
            None => {
                tokio::time::sleep_until(first).await;
                let shared = self.shared.clone();
                while Instant::now() < end {
                    let answered = shared.answered.notified();
                    if !self.shared.retry.lock().is_empty() {
                        // Refused for the rate limit or storage: give the server a moment.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        if self.resend_one().await == Some(false) {
                            break;
                        }
                        continue;
                    }
                    if self.shared.inflight.load(Ordering::Relaxed) >= self.window {
                        tokio::select! {
                            _ = answered => {}
                            _ = tokio::time::sleep_until(end) => {}
                        }
                        continue;
                    }
                    if !self.send_new(&mut n).await {
                        break;
                    }
                }
            }
        }
        // Draining: no new sends, but refused ones go again until the run stops.
        if self.stats.failed.is_none() {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {
                        while let Some(ok) = self.resend_one().await {
                            if !ok { break }
                        }
                    }
                }
            }
        }
        (self.stats, self.sink)
    }
}

/// Everything a run measured.
#[derive(Default)]
pub struct LoadResult {
    pub sockets: usize,
    pub connect_seconds: f64,
    pub phase_seconds: f64,
    /// Counter snapshots `[sent, acks, deliveries, refused]` at the start and at each phase end.
    pub boundaries: Vec<[u64; 4]>,
    pub timeline: Vec<Value>,
    pub latency: Vec<Histogram<u64>>,
    pub ack_latency: Vec<Histogram<u64>>,
    pub writer: WriterStats,
    pub unanswered: usize,
    pub deliveries: u64,
    pub echoes: u64,
    pub acks: u64,
    pub duplicate_acks: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub errors: BTreeMap<String, u64>,
    pub closed_early: BTreeMap<String, u64>,
    pub unmatched: u64,
    pub unparsed: u64,
}

impl LoadResult {
    fn add_reader(&mut self, r: &ReaderStats, last_seq: i64) {
        for (into, from) in self.latency.iter_mut().zip(&r.latency) {
            stats::merge(into, from);
        }
        for (into, from) in self.ack_latency.iter_mut().zip(&r.ack_latency) {
            stats::merge(into, from);
        }
        self.deliveries += r.deliveries;
        self.echoes += r.echoes;
        self.acks += r.acks;
        self.duplicate_acks += r.duplicate_acks;
        self.lost += r.tracker.lost(last_seq);
        self.duplicates += r.tracker.duplicates;
        self.out_of_order += r.tracker.out_of_order;
        self.unmatched += r.unmatched;
        self.unparsed += r.unparsed;
        for (code, n) in &r.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        if let Some(why) = &r.closed_early {
            *self.closed_early.entry(why.clone()).or_default() += 1;
        }
    }

    /// Per second over phase `i`: `(sent, acks, deliveries)`.
    pub fn phase_rates(&self, i: usize) -> (f64, f64, f64) {
        let (a, b) = (self.boundaries[i], self.boundaries[i + 1]);
        let s = self.phase_seconds.max(1e-9);
        (
            (b[0] - a[0]) as f64 / s,
            (b[1] - a[1]) as f64 / s,
            (b[2] - a[2]) as f64 / s,
        )
    }

    pub fn phase_json(&self, i: usize) -> Value {
        let (sent, acks, deliveries) = self.phase_rates(i);
        json!({
            "seconds": self.phase_seconds,
            "sent_per_sec": sent.round(),
            "stored_per_sec": acks.round(),
            "deliveries_per_sec": deliveries.round(),
            "latency_ms": stats::summary(&self.latency[i]),
            "ack_latency_ms": stats::summary(&self.ack_latency[i]),
        })
    }

    pub fn phase_lines(&self, i: usize) -> String {
        let (sent, acks, deliveries) = self.phase_rates(i);
        format!(
            "  sent {sent:.0}/s   stored (acks) {acks:.0}/s   deliveries {deliveries:.0}/s\n  \
             end-to-end latency (send -> other member's receipt): {}\n  \
             ack latency (send -> ack): {}\n",
            stats::line(&self.latency[i]),
            stats::line(&self.ack_latency[i]),
        )
    }

    /// Losses, duplicates and everything that went wrong, as JSON.
    pub fn integrity_json(&self) -> Value {
        json!({
            "messages_sent": self.writer.sent,
            "acks": self.acks,
            "duplicate_acks": self.duplicate_acks,
            "deliveries": self.deliveries,
            "own_echoes": self.echoes,
            "lost": self.lost,
            "duplicated": self.duplicates,
            "out_of_order": self.out_of_order,
            "unanswered_at_end": self.unanswered,
            "resent_after_refusal": self.writer.resent,
            "skipped_window_full": self.writer.skipped_window,
            "errors": self.errors,
            "sockets_closed_early": self.closed_early,
            "send_failures": self.writer.failed_sockets,
            "unmatched_acks": self.unmatched,
            "unparsed_frames": self.unparsed,
        })
    }

    pub fn integrity_lines(&self) -> String {
        let mut out = format!(
            "  sent {}  acked {}  deliveries {} (own echoes {})\n  \
             lost {}  duplicated {}  out of order {}  unanswered at end {}\n",
            self.writer.sent,
            self.acks,
            self.deliveries,
            self.echoes,
            self.lost,
            self.duplicates,
            self.out_of_order,
            self.unanswered
        );
        if self.writer.skipped_window > 0 || self.writer.resent > 0 {
            out += &format!(
                "  paced sends skipped (window full) {}  resent after refusal {}\n",
                self.writer.skipped_window, self.writer.resent
            );
        }
        if !self.errors.is_empty() {
            out += &format!("  error frames {:?}\n", self.errors);
        }
        if !self.closed_early.is_empty() {
            out += &format!("  sockets closed early {:?}\n", self.closed_early);
        }
        if let Some(failed) = &self.writer.failed {
            out += &format!(
                "  sends failed on {} sockets (last: {failed})\n",
                self.writer.failed_sockets
            );
        }
        out
    }
}
