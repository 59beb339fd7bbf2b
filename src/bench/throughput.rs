//! `bench throughput` (two-person chats, everyone sending, optionally under a login storm) and
//! `bench fanout` (one group, one sender).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::engine::{Load, LoadOpts, LoadResult, SocketPlan};
use super::fixtures::{self, Fixtures};
use super::net::{self, Target};
use super::{bounded, stats, Common, Outcome};
use crate::config::Config;

#[derive(Args, Debug)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub common: Common,
    /// Two-person chats (two sockets each, both sending).
    #[arg(long, default_value_t = 100)]
    pub chats: usize,
    /// Offered messages per second, in total; 0 sends as fast as the window allows.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Concurrent logins (POST /auth/jwt/create/) during a second phase of the same length.
    #[arg(long, default_value_t = 0)]
    pub login_storm: usize,
}

#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Members of the group chat, all connected and subscribed.
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Messages per second from the one sender; 0 sends as fast as the window allows.
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Most unanswered sends per socket.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Bytes of filler in each message text (after the timestamp).
    #[arg(long, default_value_t = 64)]
    pub message_bytes: usize,
    /// Seconds allowed after sending stops for the last answers and deliveries (the drain ends
    /// as soon as everything has arrived; a saturated server may need seconds to answer its queue).
    #[arg(long, default_value_t = 15)]
    pub drain: u64,
    /// WebSocket handshakes in flight while connecting.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

impl LoadArgs {
    fn opts(&self, rate: u64, phase: Duration, phases: usize) -> anyhow::Result<LoadOpts> {
        Ok(LoadOpts {
            rate: bounded("rate", rate as usize, 0, 1_000_000)? as u64,
            window: bounded("window", self.window, 1, 1024)?,
            message_bytes: bounded("message-bytes", self.message_bytes, 0, 8192)?,
            drain: Duration::from_secs(bounded("drain", self.drain as usize, 1, 60)? as u64),
            concurrency: bounded("concurrency", self.concurrency, 1, 1024)?,
            phase,
            phases,
        })
    }
}

/// A note when the offered per-socket frame rate is above the server's per-socket limit.
fn frame_limit_note(config: &Config, per_socket: f64) -> Option<String> {
    (per_socket > config.ws_frames_per_second as f64).then(|| {
        format!(
            "offered {per_socket:.1} frames/s per socket, above ws_frames_per_second = {} in this \
             configuration: expect rate_limited refusals (they are resent)",
            config.ws_frames_per_second
        )
    })
}

pub async fn run_throughput(config: &Config, target: &Target, args: ThroughputArgs) -> anyhow::Result<Outcome> {
    let phase = args.common.duration()?;
    let chats = bounded("chats", args.chats, 1, 10_000)?;
    let storm = bounded("login-storm", args.login_storm, 0, 256)?;
    let phases = if storm > 0 { 2 } else { 1 };
    let opts = args.load.opts(args.rate, phase, phases)?;
    let pid = net::server_pid(args.common.pid, target);
    let mut fx = Fixtures::open(config, args.common.run_id()).await?;
    let users = fx.users(chats * 2).await?;
    fixtures::preflight(target, &users[0]).await?;
    let pairs: Vec<_> = users.chunks(2).map(|p| (p[0].id, p[1].id)).collect();
    let chat_ids = fx.pair_chats(&pairs).await?;
    fx.seeded().await?;
    let plans: Vec<SocketPlan> = users
        .iter()
        .enumerate()
        .map(|(i, u)| SocketPlan {
            user: u.id,
            token: u.token.clone(),
            chat: chat_ids[i / 2],
            sends: true,
        })
        .collect();
    let note = (opts.rate > 0)
        .then(|| frame_limit_note(config, opts.rate as f64 / plans.len() as f64))
        .flatten();
    if let Some(note) = &note {
        eprintln!("bench: {note}");
    }
    let rss_before = pid.and_then(net::rss_kib);
    let load = Load::connect(target, plans, &opts).await?;
    eprintln!(
        "bench: {} sockets ready in {:.1} s; sending for {} s{}",
        load.sockets(),
        load.connect_seconds,
        phase.as_secs() * phases as u64,
        if storm > 0 {
            " (the second half under the login storm)"
        } else {
            ""
        }
    );
    let settled = load.settle(Duration::from_secs(60)).await;
    eprintln!("bench: quiet after {settled:.1} s");
    let start = Instant::now() + Duration::from_millis(500);
    let storm_task = (storm > 0).then(|| {
        let (target, email, password) = (target.clone(), users[0].email.clone(), fx.password.clone());
        tokio::spawn(login_storm(
            target,
            email,
            password,
            storm,
            start + phase,
            start + phase * 2,
        ))
    });
    let server_cpu = net::CpuMeter::start(pid);
    let result = load.run(&fx, &opts, start).await?;
    let server_cpu = server_cpu.finish();
    let storm = match storm_task {
        Some(task) => Some(task.await?),
        None => None,
    };
    let rss_after = pid.and_then(net::rss_kib);

    let mut report = json!({
        "scenario": "throughput",
        "run_id": fx.run_id,
        "database": if fx.db.is_postgres() { "postgres" } else { "sqlite" },
        "chats": chats,
        "sockets": result.sockets,
        "offered_rate": opts.rate,
        "window": opts.window,
        "message_bytes": opts.message_bytes,
        "connect_seconds": (result.connect_seconds * 10.0).round() / 10.0,
        "baseline": result.phase_json(0),
        "integrity": result.integrity_json(),
        "server_rss_kib": { "before": rss_before, "after": rss_after },
        "cpu": server_cpu,
        "timeline": result.timeline,
        "note": note,
    });
    let mut human = format!(
        "throughput: {chats} two-person chats, {} sockets, offered {}, window {}, {} s{}\n",
        result.sockets,
        rate_text(opts.rate),
        opts.window,
        phase.as_secs(),
        if fx.db.is_postgres() {
            " (PostgreSQL)"
        } else {
            " (SQLite)"
        }
    );
    human += &format!("baseline phase:\n{}", result.phase_lines(0));
    if let Some(storm) = &storm {
        report["storm"] = result.phase_json(1);
        report["storm"]["logins"] = storm.json(phase);
        let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64;
        let ratio = p99(&result.latency[1]) / p99(&result.latency[0]).max(1.0);
        report["storm"]["p99_ratio_to_baseline"] = json!((ratio * 100.0).round() / 100.0);
        human += &format!(
            "login storm phase ({} concurrent logins):\n{}  {}  end-to-end p99 under the storm / baseline p99: {ratio:.2}x\n",
            args.login_storm,
            result.phase_lines(1),
            storm.line(phase)
        );
    }
    human += &format!("integrity:\n{}", result.integrity_lines());
    human += &resources_line(&report);
    if let Some(note) = note {
        human += &format!("note: {note}\n");
    }
    Ok((report, human))
}

pub async fn run_fanout(config: &Config, target: &Target, args: FanoutArgs) -> anyhow::Result<Outcome> {
    let phase = args.common.duration()?;
    let members = bounded("members", args.members, 2, 10_000)?;
    let opts = args.load.opts(args.rate, phase, 1)?;
    let pid = net::server_pid(args.common.pid, target);
    let mut fx = Fixtures::open(config, args.common.run_id()).await?;
    let users = fx.users(members).await?;
    fixtures::preflight(target, &users[0]).await?;
    let ids: Vec<_> = users.iter().map(|u| u.id).collect();
    let chat = fx.group(ids[0], &ids).await?;
    fx.seeded().await?;
    let plans: Vec<SocketPlan> = users
        .iter()
        .enumerate()
        .map(|(i, u)| SocketPlan {
            user: u.id,
            token: u.token.clone(),
            chat,
            sends: i == 0,
        })
        .collect();
    let note = (opts.rate > 0)
        .then(|| frame_limit_note(config, opts.rate as f64))
        .flatten();
    if let Some(note) = &note {
        eprintln!("bench: {note}");
    }
    let rss_before = pid.and_then(net::rss_kib);
    let load = Load::connect(target, plans, &opts).await?;
    eprintln!(
        "bench: {} members connected and subscribed in {:.1} s; sending for {} s",
        load.sockets(),
        load.connect_seconds,
        phase.as_secs()
    );
    let settled = load.settle(Duration::from_secs(60)).await;
    eprintln!("bench: quiet after {settled:.1} s");
    let start = Instant::now() + Duration::from_millis(500);
    let server_cpu = net::CpuMeter::start(pid);
    let result: LoadResult = load.run(&fx, &opts, start).await?;
    let server_cpu = server_cpu.finish();
    let rss_after = pid.and_then(net::rss_kib);
    let report = json!({
        "scenario": "fanout",
        "run_id": fx.run_id,
        "database": if fx.db.is_postgres() { "postgres" } else { "sqlite" },
        "members": members,
        "offered_rate": opts.rate,
        "window": opts.window,
        "message_bytes": opts.message_bytes,
        "connect_seconds": (result.connect_seconds * 10.0).round() / 10.0,
        "result": result.phase_json(0),
        "integrity": result.integrity_json(),
        "server_rss_kib": { "before": rss_before, "after": rss_after },
        "cpu": server_cpu,
        "timeline": result.timeline,
        "note": note,
    });
    let mut human = format!(
        "fanout: one group of {members} members, one sender, offered {}, window {}, {} s ({})\n",
        rate_text(opts.rate),
        opts.window,
        phase.as_secs(),
        if fx.db.is_postgres() { "PostgreSQL" } else { "SQLite" }
    );
    human += &result.phase_lines(0);
    human += &format!("integrity:\n{}", result.integrity_lines());
    human += &resources_line(&report);
    if let Some(note) = note {
        human += &format!("note: {note}\n");
    }
    Ok((report, human))
}

fn rate_text(rate: u64) -> String {
    if rate == 0 {
        "as fast as possible".into()
    } else {
        format!("{rate} msg/s")
    }
}

pub fn resources_line(report: &Value) -> String {
    format!(
        "resources: server CPU {}%, bench CPU {}% (100% = one core; {} cores), load average {}; server RSS {} -> {} KiB\n",
        report["cpu"]["server_cpu_percent"],
        report["cpu"]["bench_cpu_percent"],
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        report["cpu"]["loadavg"].as_str().unwrap_or("?"),
        report["server_rss_kib"]["before"],
        report["server_rss_kib"]["after"],
    )
}

/// What the login storm saw.
pub struct StormStats {
    pub statuses: BTreeMap<String, u64>,
    pub ok_latency: Histogram<u64>,
    pub all_latency: Histogram<u64>,
}

impl StormStats {
    fn count(&self, status: &str) -> u64 {
        self.statuses.get(status).copied().unwrap_or(0)
    }

    pub fn json(&self, phase: Duration) -> Value {
        let s = phase.as_secs_f64();
        let attempts: u64 = self.statuses.values().sum();
        json!({
            "attempts_per_sec": (attempts as f64 / s).round(),
            "logins_per_sec": (self.count("200") as f64 / s * 10.0).round() / 10.0,
            "throttled_per_sec": (self.count("429") as f64 / s * 10.0).round() / 10.0,
            "statuses": self.statuses,
            "login_latency_ms": stats::summary(&self.ok_latency),
        })
    }

    pub fn line(&self, phase: Duration) -> String {
        let s = phase.as_secs_f64();
        let attempts: u64 = self.statuses.values().sum();
        format!(
            "logins: {:.1}/s succeeded, {:.1}/s throttled (429), {:.1} attempts/s, statuses {:?}\n  login latency: {}\n",
            self.count("200") as f64 / s,
            self.count("429") as f64 / s,
            attempts as f64 / s,
            self.statuses,
            stats::line(&self.ok_latency)
        )
    }
}

/// `tasks` concurrent loops of POST /auth/jwt/create/ between `start` and `end`, each request
/// from the next source address (the server limits logins per client address).
pub async fn login_storm(
    target: Target,
    email: String,
    password: String,
    tasks: usize,
    start: Instant,
    end: Instant,
) -> StormStats {
    let clients: Vec<reqwest::Client> = (0..net::SOURCE_ADDRESSES)
        .filter_map(|i| net::http_client(i).ok())
        .collect();
    let clients = Arc::new(clients);
    let shared = Arc::new(Mutex::new(StormStats {
        statuses: BTreeMap::new(),
        ok_latency: stats::histogram(),
        all_latency: stats::histogram(),
    }));
    let url = format!("{}/auth/jwt/create/", target.base);
    let body = json!({ "email": email, "password": password });
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (clients, shared, url, body) = (clients.clone(), shared.clone(), url.clone(), body.clone());
        handles.push(tokio::spawn(async move {
            tokio::time::sleep_until(start).await;
            let mut local = BTreeMap::<String, u64>::new();
            let mut ok = stats::histogram();
            let mut all = stats::histogram();
            let mut j = 0usize;
            while Instant::now() < end {
                let client = &clients[(task + j * tasks) % clients.len()];
                j += 1;
                let sent = std::time::Instant::now();
                let status = match client.post(&url).json(&body).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16().to_string();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(err) if err.is_timeout() => "timeout".into(),
                    Err(_) => "error".into(),
                };
                let us = sent.elapsed().as_micros() as u64;
                all.saturating_record(us);
                if status == "200" {
                    ok.saturating_record(us);
                }
                *local.entry(status).or_default() += 1;
            }
            let mut shared = shared.lock();
            for (k, v) in local {
                *shared.statuses.entry(k).or_default() += v;
            }
            stats::merge(&mut shared.ok_latency, &ok);
            stats::merge(&mut shared.all_latency, &all);
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
    Arc::try_unwrap(shared)
        .ok()
        .map(Mutex::into_inner)
        .expect("every storm task has finished")
}
