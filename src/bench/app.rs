//! `bench app`: simulated users of the finished app, over real HTTP and WebSocket, ramped until
//! the server no longer keeps up. Each user does what the app does:
//!
//! - polls `GET /api/chat/` once a second while on the home screen;
//! - now and then (every `--open-every` seconds on average) opens one of its chats: reads
//!   history page 1, opens the chat's socket (`/ws/chat/{id}/?format=object`), marks the other
//!   person's unread messages read (`POST /api/updateMessagesStatus/`), sends a few messages a
//!   second or so apart (each waits for its echo), closes the socket and goes back;
//! - sometimes searches a user (`GET /api/searchUser/`);
//! - refreshes its access token through `POST /auth/jwt/refresh/` before it expires (the
//!   server's `access_token_lifetime_secs`; set it short to see refreshes in a short run).
//!
//! The ramp starts at `--start` users and adds `--step` users every step; each step is
//! measured for `--step-secs` once its new users have had their first answers and one more
//! second has passed (their first polls all read storage at once: arrival, not load). A step passes when every kind of
//! request has p99 ≤ `--p99-ms` and nothing failed; the report's headline is the most users of
//! a passing step — app users per box. The run stops at the first failing step (unless
//! `--keep-going`), at `--max-users`, or when `--duration` is spent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use super::fixtures::{self, BenchUser, Fixtures};
use super::http::Http;
use super::net::{self, Target, Ws};
use super::{bounded, stats, Common, Outcome};
use crate::config::Config;
use crate::ids::{ChatId, MessageId, UserId};
use crate::wire::v1::{MessageFrame, ObjectFrame};
use crate::wire::{self, MessageDigest};

/// Longest wait for a step's new users' first answers before it is measured anyway.
const SETTLE_MAX: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct AppArgs {
    /// `--duration` bounds the whole ramp (at most 300 s).
    #[command(flatten)]
    pub common: Common,
    /// Users in the first step.
    #[arg(long, default_value_t = 500)]
    pub start: usize,
    /// Users added at each further step.
    #[arg(long, default_value_t = 500)]
    pub step: usize,
    /// Most users (all of them are created before the ramp).
    #[arg(long, default_value_t = 12_000)]
    pub max_users: usize,
    /// Measured seconds per step (after the new users' first answers and one more second).
    #[arg(long, default_value_t = 10)]
    pub step_secs: u64,
    /// Two-person chats per user (even: each user talks to its neighbours on a ring).
    #[arg(long, default_value_t = 20)]
    pub chats_per_user: usize,
    /// Mean seconds between two chat visits of one user.
    #[arg(long, default_value_t = 60)]
    pub open_every: u64,
    /// Mean seconds between two searches of one user.
    #[arg(long, default_value_t = 120)]
    pub search_every: u64,
    /// Messages sent per chat visit.
    #[arg(long, default_value_t = 3)]
    pub messages_per_visit: usize,
    /// The latency every kind of request must stay under (p99) for a step to pass.
    #[arg(long, default_value_t = 50)]
    pub p99_ms: u64,
    /// Go on ramping after a failing step (up to --max-users or --duration).
    #[arg(long)]
    pub keep_going: bool,
}

/// The kinds of request, each with its own latency and error count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ChatList,
    History,
    Socket,
    Message,
    MarkRead,
    Search,
    Refresh,
}

const KINDS: [Kind; 7] = [
    Kind::ChatList,
    Kind::History,
    Kind::Socket,
    Kind::Message,
    Kind::MarkRead,
    Kind::Search,
    Kind::Refresh,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ChatList => "chat_list",
            Kind::History => "history_page_1",
            Kind::Socket => "socket_handshake",
            Kind::Message => "message_echo",
            Kind::MarkRead => "update_messages_status",
            Kind::Search => "search_user",
            Kind::Refresh => "token_refresh",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::ChatList => "GET /api/chat/",
            Kind::History => "GET /api/message/?refChat=…&page=1",
            Kind::Socket => "WebSocket /ws/chat/{id}/ handshake",
            Kind::Message => "v1 socket: send → own echo",
            Kind::MarkRead => "POST /api/updateMessagesStatus/",
            Kind::Search => "GET /api/searchUser/?search=…",
            Kind::Refresh => "POST /auth/jwt/refresh/",
        }
    }
}

/// What every user records into during one step.
struct Window {
    latency: Vec<Histogram<u64>>,
    errors: Vec<u64>,
    /// Failures by kind of request and what went wrong, e.g. `chat_list: 503`.
    failures: BTreeMap<String, u64>,
}

impl Window {
    fn new() -> Window {
        Window {
            latency: KINDS.iter().map(|_| stats::histogram()).collect(),
            errors: vec![0; KINDS.len()],
            failures: BTreeMap::new(),
        }
    }
}

struct Shared {
    target: Target,
    window: Mutex<Window>,
    /// Access token lifetime of the server (the bench runs with its configuration).
    token_lifetime: Duration,
    open_every: f64,
    search_every: f64,
    messages_per_visit: usize,
    users: usize,
    /// Users whose first poll has been answered (or failed).
    started: AtomicUsize,
}

impl Shared {
    fn ok(&self, kind: Kind, since: std::time::Instant) {
        let us = since.elapsed().as_micros() as u64;
        self.window.lock().latency[kind as usize].saturating_record(us);
    }

    fn failed(&self, kind: Kind, why: impl std::fmt::Display) {
        let mut window = self.window.lock();
        window.errors[kind as usize] += 1;
        *window.failures.entry(format!("{}: {why}", kind.name())).or_default() += 1;
    }
}

/// One simulated user: its identity, tokens and chats (with the other member of each).
struct AppUser {
    index: usize,
    id: UserId,
    token: String,
    refresh: String,
    refresh_at: Instant,
    chats: Vec<ChatId>,
}

#[derive(Deserialize)]
struct PageOf<T> {
    results: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageBrief {
    id: MessageId,
    author: Option<UserId>,
    is_read: bool,
}

#[derive(Deserialize)]
struct Refreshed {
    access: String,
    refresh: Option<String>,
}

#[derive(Deserialize)]
struct StatusAnswer {
    status: String,
}

/// True once in `mean_secs` calls on average (called once a second: visits and searches of
/// one user come about every `mean_secs` seconds, at random).
fn chance_per_second(mean_secs: f64) -> bool {
    mean_secs > 0.0 && rand::thread_rng().gen_bool((1.0 / mean_secs).min(1.0))
}

impl AppUser {
    async fn live(mut self, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
        let mut http = Http::new(&shared.target, self.index);
        let first = Instant::now() + Duration::from_secs_f64(rand::thread_rng().gen_range(0.0..1.0));
        let mut ticks = tokio::time::interval_at(first, Duration::from_secs(1));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sent = 0u64;
        let mut first = true;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            if Instant::now() >= self.refresh_at {
                self.refresh_token(&shared, &mut http).await;
            }
            self.poll(&shared, &mut http).await;
            if std::mem::take(&mut first) {
                shared.started.fetch_add(1, Ordering::Relaxed);
            }
            if chance_per_second(shared.search_every) {
                self.search(&shared, &mut http).await;
            }
            if chance_per_second(shared.open_every) {
                let chat = self.chats[rand::thread_rng().gen_range(0..self.chats.len())];
                tokio::select! {
                    _ = self.visit(&shared, &mut http, chat, &mut sent) => {}
                    _ = stop.changed() => return,
                }
                ticks.reset();
            }
        }
    }

    /// A GET that must answer 2xx; the body on success.
    async fn get(&self, shared: &Shared, http: &mut Http, kind: Kind, path: &str) -> Option<bytes::BytesMut> {
        let request = http.request("GET", path, Some(&self.token), None);
        self.exchange(shared, http, kind, &request).await
    }

    async fn exchange(&self, shared: &Shared, http: &mut Http, kind: Kind, request: &[u8]) -> Option<bytes::BytesMut> {
        let at = std::time::Instant::now();
        match http.send(request).await {
            Ok(reply) if (200..300).contains(&reply.status) => {
                shared.ok(kind, at);
                Some(reply.body)
            }
            Ok(reply) => {
                shared.failed(kind, format!("HTTP {}", reply.status));
                None
            }
            Err(err) => {
                shared.failed(kind, err.kind());
                None
            }
        }
    }

    async fn poll(&self, shared: &Shared, http: &mut Http) {
        self.get(shared, http, Kind::ChatList, "/api/chat/").await;
    }

    async fn search(&self, shared: &Shared, http: &mut Http) {
        let n = rand::thread_rng().gen_range(0..shared.users.min(500));
        self.get(
            shared,
            http,
            Kind::Search,
            &format!("/api/searchUser/?search=User%20{n}"),
        )
        .await;
    }

    async fn refresh_token(&mut self, shared: &Shared, http: &mut Http) {
        let body = json!({ "refresh": self.refresh }).to_string();
        let request = http.request("POST", "/auth/jwt/refresh/", None, Some(&body));
        let Some(answer) = self.exchange(shared, http, Kind::Refresh, &request).await else {
            // Try again at the next tick.
            return;
        };
        match serde_json::from_slice::<Refreshed>(&answer) {
            Ok(refreshed) => {
                self.token = refreshed.access;
                if let Some(refresh) = refreshed.refresh {
                    self.refresh = refresh;
                }
                self.refresh_at = Instant::now() + shared.token_lifetime.mul_f64(0.9);
            }
            Err(err) => shared.failed(Kind::Refresh, format!("unreadable answer: {err}")),
        }
    }

    /// Opens a chat, talks a little, goes back.
    async fn visit(&self, shared: &Shared, http: &mut Http, chat: ChatId, sent: &mut u64) {
        let Some(page) = self
            .get(
                shared,
                http,
                Kind::History,
                &format!("/api/message/?refChat={chat}&page=1"),
            )
            .await
        else {
            return;
        };
        let unread: Vec<MessageId> = match serde_json::from_slice::<PageOf<MessageBrief>>(&page) {
            Ok(page) => page
                .results
                .into_iter()
                .filter(|m| !m.is_read && m.author.is_some_and(|a| a != self.id))
                .map(|m| m.id)
                .collect(),
            Err(err) => {
                shared.failed(Kind::History, format!("unreadable page: {err}"));
                return;
            }
        };
        let at = std::time::Instant::now();
        let path = format!("/ws/chat/{chat}/?token={}&format=object", self.token);
        let mut ws = match net::connect_ws(&shared.target, &path, None, self.index, 4096, Duration::from_secs(10)).await
        {
            Ok(ws) => {
                shared.ok(Kind::Socket, at);
                ws
            }
            Err(err) => {
                shared.failed(Kind::Socket, err.kind());
                return;
            }
        };
        if !unread.is_empty() {
            let body = json!({ "messageIds": unread }).to_string();
            let request = http.request("POST", "/api/updateMessagesStatus/", Some(&self.token), Some(&body));
            if let Some(answer) = self.exchange(shared, http, Kind::MarkRead, &request).await {
                match serde_json::from_slice::<StatusAnswer>(&answer) {
                    Ok(a) if a.status == "OK" => {}
                    _ => shared.failed(Kind::MarkRead, "not {\"status\":\"OK\"}"),
                }
            }
        }
        for _ in 0..shared.messages_per_visit {
            let pause = rand::thread_rng().gen_range(0.5..1.5);
            tokio::time::sleep(Duration::from_secs_f64(pause)).await;
            *sent += 1;
            let text = format!("app user {} says hello, message {sent}", self.index);
            if !self.say(shared, &mut ws, chat, &text).await {
                return;
            }
        }
        // Back: the app closes the socket and expects the server's close in answer.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = ws.close(None).await;
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }

    /// Sends one message on the chat's socket and waits for its echo; false if the socket is
    /// no longer usable.
    async fn say(&self, shared: &Shared, ws: &mut Ws, chat: ChatId, text: &str) -> bool {
        let frame = MessageFrame {
            message: text.to_string(),
            ref_chat: Some(chat),
            author: Some(self.id),
            kind: Some(0),
            extra_data: Some(Some(String::new())),
            client_id: None,
        };
        let at = std::time::Instant::now();
        if let Err(err) = ws.send(Message::Text(wire::to_text(&frame).into())).await {
            shared.failed(Kind::Message, format!("send: {err}"));
            return false;
        }
        let echo = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(frame))) => {
                        match serde_json::from_str::<ObjectFrame<MessageDigest>>(frame.as_str()) {
                            Ok(object) if object.message.author == Some(self.id) && object.message.message == text => {
                                return Ok(());
                            }
                            // Someone else's message, or one of ours from before.
                            Ok(_) => {}
                            Err(_) => return Err(format!("not a message: {}", frame.as_str())),
                        }
                    }
                    Some(Ok(Message::Close(close))) => {
                        return Err(format!("closed: {:?}", close.map(|c| u16::from(c.code))));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return Err(format!("socket: {err}")),
                    None => return Err("socket ended".into()),
                }
            }
        })
        .await;
        match echo {
            Ok(Ok(())) => {
                shared.ok(Kind::Message, at);
                true
            }
            Ok(Err(why)) => {
                shared.failed(Kind::Message, why);
                false
            }
            Err(_) => {
                shared.failed(Kind::Message, "no echo within 10 s");
                false
            }
        }
    }
}

/// The outcome of one step of the ramp.
struct Step {
    users: usize,
    seconds: f64,
    /// Seconds from the step's new users' start to its measurement.
    settled: f64,
    window: Window,
    cpu: Value,
    rss_kib: Option<u64>,
}

impl Step {
    /// Why the step fails, if it does.
    fn failure(&self, p99_ms: u64) -> Option<String> {
        let errors: u64 = self.window.errors.iter().sum();
        if errors > 0 {
            return Some(format!("{errors} failed requests"));
        }
        if self.window.latency[Kind::ChatList as usize].is_empty() {
            return Some("no chat list answered".into());
        }
        for kind in KINDS {
            let h = &self.window.latency[kind as usize];
            if !h.is_empty() && h.value_at_quantile(0.99) > p99_ms * 1000 {
                return Some(format!(
                    "{} p99 {:.1} ms",
                    kind.name(),
                    h.value_at_quantile(0.99) as f64 / 1000.0
                ));
            }
        }
        None
    }

    fn json(&self, p99_ms: u64) -> Value {
        let kinds: serde_json::Map<String, Value> = KINDS
            .iter()
            .map(|&kind| {
                let h = &self.window.latency[kind as usize];
                let mut entry = stats::summary(h);
                entry["per_sec"] = json!((h.len() as f64 / self.seconds * 10.0).round() / 10.0);
                entry["errors"] = json!(self.window.errors[kind as usize]);
                (kind.name().to_string(), entry)
            })
            .collect();
        json!({
            "users": self.users,
            "seconds": (self.seconds * 10.0).round() / 10.0,
            "settle_seconds": (self.settled * 10.0).round() / 10.0,
            "passed": self.failure(p99_ms).is_none(),
            "failure": self.failure(p99_ms),
            "requests": kinds,
            "failures": self.window.failures,
            "cpu": self.cpu,
            "server_rss_kib": self.rss_kib,
        })
    }

    fn lines(&self, p99_ms: u64) -> String {
        let verdict = match self.failure(p99_ms) {
            None => "passed".to_string(),
            Some(why) => format!("FAILED ({why})"),
        };
        let mut out = format!(
            "  {} users: {verdict}; server CPU {}%, bench CPU {}%, server RSS {} KiB (settled {:.1} s)\n",
            self.users,
            self.cpu["server_cpu_percent"],
            self.cpu["bench_cpu_percent"],
            self.rss_kib.map(|k| k.to_string()).unwrap_or_else(|| "?".into()),
            self.settled,
        );
        for kind in KINDS {
            let h = &self.window.latency[kind as usize];
            let errors = self.window.errors[kind as usize];
            if h.is_empty() && errors == 0 {
                continue;
            }
            out += &format!(
                "    {:<24} {:>8.1}/s  {}{}\n",
                kind.name(),
                h.len() as f64 / self.seconds,
                stats::line(h),
                if errors > 0 {
                    format!("  {errors} errors")
                } else {
                    String::new()
                }
            );
        }
        out
    }
}

pub async fn run(config: &Config, target: &Target, args: AppArgs) -> anyhow::Result<Outcome> {
    let budget = args.common.duration()?;
    let max_users = bounded("max-users", args.max_users, 2, 30_000)?;
    let start_users = bounded("start", args.start, 1, max_users)?;
    let step_users = bounded("step", args.step, 1, max_users)?;
    let step_secs = bounded("step-secs", args.step_secs as usize, 2, 120)? as u64;
    let per_user = bounded("chats-per-user", args.chats_per_user, 2, 200)?;
    if per_user % 2 == 1 || per_user >= max_users {
        anyhow::bail!("--chats-per-user must be even and below --max-users");
    }
    let messages_per_visit = bounded("messages-per-visit", args.messages_per_visit, 0, 20)?;
    let p99_ms = bounded("p99-ms", args.p99_ms as usize, 1, 10_000)? as u64;
    let pid = net::server_pid(args.common.pid, target);

    // Fixtures: users on a ring, each in a chat with its `per_user / 2` neighbours on either
    // side, each chat with one message (the home screen shows a last message everywhere).
    let mut fx = Fixtures::open(config, args.common.run_id()).await?;
    let users: Vec<BenchUser> = fx.users(max_users).await?;
    fixtures::preflight(target, &users[0]).await?;
    let minted = Instant::now();
    let mut pairs = Vec::with_capacity(max_users * per_user / 2);
    for i in 0..max_users {
        for d in 1..=per_user / 2 {
            pairs.push((users[i].id, users[(i + d) % max_users].id));
        }
    }
    let chat_ids = fx.many_pair_chats(&pairs).await?;
    if chat_ids.len() != pairs.len() {
        anyhow::bail!("expected {} new chats, created {}", pairs.len(), chat_ids.len());
    }
    let mut chats_of: Vec<Vec<ChatId>> = vec![Vec::with_capacity(per_user); max_users];
    let mut firsts = Vec::with_capacity(pairs.len());
    for (n, chat) in chat_ids.iter().enumerate() {
        let (i, d) = (n / (per_user / 2), n % (per_user / 2) + 1);
        chats_of[i].push(*chat);
        chats_of[(i + d) % max_users].push(*chat);
        firsts.push((*chat, if n % 2 == 0 { pairs[n].0 } else { pairs[n].1 }));
    }
    fx.one_message_each(&firsts).await?;
    fx.seeded().await?;

    let lifetime = Duration::from_secs(config.access_token_lifetime_secs);
    let shared = Arc::new(Shared {
        target: target.clone(),
        window: Mutex::new(Window::new()),
        token_lifetime: lifetime,
        open_every: args.open_every as f64,
        search_every: args.search_every as f64,
        messages_per_visit,
        users: max_users,
        started: AtomicUsize::new(0),
    });
    let mut waiting: Vec<AppUser> = users
        .into_iter()
        .zip(chats_of)
        .enumerate()
        .map(|(index, (user, chats))| AppUser {
            index,
            id: user.id,
            token: user.token,
            refresh: user.refresh,
            // Tokens were all minted at once: spread their refreshes over the lifetime.
            refresh_at: minted + lifetime.mul_f64(rand::thread_rng().gen_range(0.2..0.9)),
            chats,
        })
        .rev()
        .collect();

    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let began = Instant::now();
    let mut active = 0;
    eprintln!(
        "bench: ramp from {start_users} users by {step_users} every {} s, up to {max_users} users or {} s",
        step_secs + 1,
        budget.as_secs()
    );
    loop {
        let want = if steps.is_empty() {
            start_users
        } else {
            (active + step_users).min(max_users)
        };
        while active < want {
            let user = waiting.pop().expect("created max_users users");
            tasks.push(tokio::spawn(user.live(shared.clone(), stop_rx.clone())));
            active += 1;
        }
        // New users make their first request within a second, and each first poll reads the
        // list from storage (nothing of theirs is kept yet): measure once every user has had
        // its first answer (at most SETTLE_MAX later) and one more second has passed, so that a
        // step measures the load of that many users, not their arrival all at once.
        let settling = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        while shared.started.load(Ordering::Relaxed) < active && settling.elapsed() < SETTLE_MAX {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let settled = settling.elapsed().as_secs_f64();
        *shared.window.lock() = Window::new();
        let cpu = net::CpuMeter::start(pid);
        let measured = Instant::now();
        tokio::time::sleep(Duration::from_secs(step_secs)).await;
        let window = std::mem::replace(&mut *shared.window.lock(), Window::new());
        let step = Step {
            users: active,
            seconds: measured.elapsed().as_secs_f64(),
            settled,
            window,
            cpu: cpu.finish(),
            rss_kib: pid.and_then(net::rss_kib),
        };
        eprint!("{}", step.lines(p99_ms));
        let failed = step.failure(p99_ms).is_some();
        steps.push(step);
        let out_of_time = began.elapsed() + Duration::from_secs(step_secs + 1) > budget;
        if (failed && !args.keep_going) || active >= max_users || out_of_time {
            break;
        }
    }
    let _ = stop.send(true);
    let stopping = Instant::now();
    for task in tasks {
        let left = Duration::from_secs(15).saturating_sub(stopping.elapsed());
        let _ = tokio::time::timeout(left, task).await;
    }

    let best = steps
        .iter()
        .filter(|s| s.failure(p99_ms).is_none())
        .map(|s| s.users)
        .max()
        .unwrap_or(0);
    let report = json!({
        "scenario": "app",
        "run_id": fx.run_id,
        "database": if fx.db.is_postgres() { "postgres" } else { "sqlite" },
        "app_users_per_box": best,
        "p99_limit_ms": p99_ms,
        "chats_per_user": per_user,
        "open_every_secs": args.open_every,
        "search_every_secs": args.search_every,
        "messages_per_visit": messages_per_visit,
        "access_token_lifetime_secs": lifetime.as_secs(),
        "requests": KINDS.iter().map(|k| (k.name(), k.what())).collect::<BTreeMap<_, _>>(),
        "steps": steps.iter().map(|s| s.json(p99_ms)).collect::<Vec<_>>(),
    });
    let mut human = format!(
        "app: {best} app users per box (most users of a step with p99 <= {p99_ms} ms for every request and no error; {})\n  \
         each user: GET /api/chat/ every second, a chat visit every ~{} s (history page 1, socket, {messages_per_visit} messages, \
         updateMessagesStatus), a search every ~{} s, token refresh every {:.0} s; {per_user} chats each\n",
        if fx.db.is_postgres() { "PostgreSQL" } else { "SQLite" },
        args.open_every,
        args.search_every,
        lifetime.as_secs_f64() * 0.9,
    );
    for step in &steps {
        human += &step.lines(p99_ms);
    }
    Ok((report, human))
}
