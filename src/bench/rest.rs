//! `bench rest`: one authenticated request, repeated by N closed-loop clients (each its own
//! kept-alive connection) for the measured phase: requests/s, latency percentiles, errors.
//!
//! The caller has `--chats` two-person chats, each with one message (the home screen the app
//! polls); `--messages` more fill the first of them (a long history). In `--path`, `{chat}`
//! stands for that first chat and `{user}` for the caller.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::time::Instant;

use super::fixtures::{self, Fixtures};
use super::http::Http;
use super::net::{self, Target};
use super::throughput::resources_line;
use super::{bounded, stats, Common, Outcome};
use crate::config::Config;

#[derive(Args, Debug)]
pub struct RestArgs {
    #[command(flatten)]
    pub common: Common,
    /// The request's path and query; `{chat}` is the caller's first chat, `{user}` the caller.
    #[arg(long, default_value = "/api/chat/")]
    pub path: String,
    /// Clients, each with its own connection, each sending its next request on the answer.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Two-person chats of the caller, each with one message.
    #[arg(long, default_value_t = 20)]
    pub chats: usize,
    /// Further messages in the first chat (for history pages).
    #[arg(long, default_value_t = 0)]
    pub messages: usize,
}

pub async fn run(config: &Config, target: &Target, args: RestArgs) -> anyhow::Result<Outcome> {
    let duration = args.common.duration()?;
    let concurrency = bounded("concurrency", args.concurrency, 1, 4096)?;
    let chat_count = bounded("chats", args.chats, 1, 10_000)?;
    let extra = bounded("messages", args.messages, 0, 1_000_000)?;
    if !args.path.starts_with('/') {
        anyhow::bail!("--path must start with / (e.g. /api/chat/)");
    }
    let pid = net::server_pid(args.common.pid, target);
    let mut fx = Fixtures::open(config, args.common.run_id()).await?;
    let users = fx.users(chat_count + 1).await?;
    let me = &users[0];
    fixtures::preflight(target, me).await?;
    let pairs: Vec<_> = users[1..].iter().map(|other| (me.id, other.id)).collect();
    let chats = fx.many_pair_chats(&pairs).await?;
    // Every chat's last message comes from the other person: unread for the caller.
    let firsts: Vec<_> = chats.iter().zip(&users[1..]).map(|(c, u)| (*c, u.id)).collect();
    if extra > 0 {
        fx.prefill(chats[0], [me.id, users[1].id], extra).await?;
    }
    fx.one_message_each(&firsts).await?;
    fx.seeded().await?;
    let path = args
        .path
        .replace("{chat}", &chats[0].to_string())
        .replace("{user}", &me.id.to_string());

    // One request first, so that a wrong path fails loudly instead of measuring 404s.
    let mut probe = Http::new(target, 0);
    let request = probe.request("GET", &path, Some(&me.token), None);
    let first = probe.send(&request).await?;
    if !(200..300).contains(&first.status) {
        anyhow::bail!(
            "GET {path} answered {}: {}",
            first.status,
            String::from_utf8_lossy(&first.body)
        );
    }
    let body_bytes = first.body.len();
    drop(probe);

    let rss_before = pid.and_then(net::rss_kib);
    let start = Instant::now() + Duration::from_millis(300);
    let end = start + duration;
    let mut handles = Vec::new();
    for w in 0..concurrency {
        let mut http = Http::new(target, w);
        let request = request.clone();
        handles.push(tokio::spawn(async move {
            let mut latency = stats::histogram();
            let mut statuses = BTreeMap::<String, u64>::new();
            // Connect before the measured phase.
            let _ = http.send(&request).await;
            tokio::time::sleep_until(start).await;
            while Instant::now() < end {
                let sent = std::time::Instant::now();
                let status = match http.send(&request).await {
                    Ok(reply) => {
                        if (200..300).contains(&reply.status) {
                            latency.saturating_record(sent.elapsed().as_micros() as u64);
                        }
                        reply.status.to_string()
                    }
                    Err(err) => err.kind(),
                };
                *statuses.entry(status).or_default() += 1;
            }
            (latency, statuses)
        }));
    }
    tokio::time::sleep_until(start).await;
    let cpu = net::CpuMeter::start(pid);
    let mut latency = stats::histogram();
    let mut statuses = BTreeMap::<String, u64>::new();
    for handle in handles {
        let (l, s) = handle.await?;
        stats::merge(&mut latency, &l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu.finish();
    let total: u64 = statuses.values().sum();
    let ok = latency.len();
    let report = json!({
        "scenario": "rest",
        "run_id": fx.run_id,
        "database": if fx.db.is_postgres() { "postgres" } else { "sqlite" },
        "path": args.path,
        "concurrency": concurrency,
        "chats": chat_count,
        "messages_in_first_chat": extra + 1,
        "response_bytes": body_bytes,
        "requests_per_sec": (ok as f64 / elapsed).round(),
        "errors": total - ok,
        "statuses": statuses,
        "latency_ms": stats::summary(&latency),
        "server_rss_kib": { "before": rss_before, "after": pid.and_then(net::rss_kib) },
        "cpu": cpu,
    });
    let human = format!(
        "rest: GET {} by {concurrency} clients for {} s ({}; {chat_count} chats, {} messages in the first; {body_bytes}-byte answer)\n  \
         {:.0} requests/s, {} errors {:?}\n  latency: {}\n{}",
        args.path,
        duration.as_secs(),
        if fx.db.is_postgres() { "PostgreSQL" } else { "SQLite" },
        extra + 1,
        ok as f64 / elapsed,
        total - ok,
        statuses,
        stats::line(&latency),
        resources_line(&report),
    );
    Ok((report, human))
}
