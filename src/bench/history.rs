//! `bench history`: concurrent `GET /api/message/?refChat=…&page=N` on a prefilled chat.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use rand::Rng;
use serde_json::json;
use tokio::time::Instant;

use super::fixtures::{self, Fixtures};
use super::net::{self, Target};
use super::throughput::resources_line;
use super::{bounded, stats, Common, Outcome};
use crate::config::Config;

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent readers, each with its own HTTP connection and source address.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Messages stored in the chat before reading.
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
    /// `page_size` of each request (the server's default is 20, its maximum 100).
    #[arg(long, default_value_t = 20)]
    pub page_size: usize,
}

pub async fn run(config: &Config, target: &Target, args: HistoryArgs) -> anyhow::Result<Outcome> {
    let duration = args.common.duration()?;
    let workers = bounded("workers", args.workers, 1, 1024)?;
    let count = bounded("messages", args.messages, 1, 1_000_000)?;
    let page_size = bounded("page-size", args.page_size, 1, 100)?;
    let pid = net::server_pid(args.common.pid, target);
    let mut fx = Fixtures::open(config, args.common.run_id()).await?;
    let users = fx.users(2).await?;
    fixtures::preflight(target, &users[0]).await?;
    let chat = fx.pair_chats(&[(users[0].id, users[1].id)]).await?[0];
    fx.prefill(chat, [users[0].id, users[1].id], count).await?;
    fx.seeded().await?;
    let pages = count.div_ceil(page_size);
    let rss_before = pid.and_then(net::rss_kib);

    let start = Instant::now() + Duration::from_millis(200);
    let end = start + duration;
    let mut handles = Vec::new();
    for w in 0..workers {
        let client = net::http_client(w)?;
        let token = users[w % 2].token.clone();
        let base = format!(
            "{}/api/message/?refChat={chat}&page_size={page_size}&page=",
            target.base
        );
        handles.push(tokio::spawn(async move {
            tokio::time::sleep_until(start).await;
            let mut latency = stats::histogram();
            let mut statuses = BTreeMap::<String, u64>::new();
            let mut bytes = 0u64;
            while Instant::now() < end {
                let page = rand::thread_rng().gen_range(1..=pages);
                let sent = std::time::Instant::now();
                let status = match client.get(format!("{base}{page}")).bearer_auth(&token).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16().to_string();
                        bytes += response.bytes().await.map(|b| b.len() as u64).unwrap_or(0);
                        status
                    }
                    Err(err) if err.is_timeout() => "timeout".into(),
                    Err(_) => "error".into(),
                };
                if status == "200" {
                    latency.saturating_record(sent.elapsed().as_micros() as u64);
                }
                *statuses.entry(status).or_default() += 1;
            }
            (latency, statuses, bytes)
        }));
    }
    tokio::time::sleep_until(start).await;
    let cpu = net::CpuMeter::start(pid);
    let mut latency = stats::histogram();
    let mut statuses = BTreeMap::<String, u64>::new();
    let mut bytes = 0u64;
    for handle in handles {
        let (l, s, b) = handle.await?;
        stats::merge(&mut latency, &l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
        bytes += b;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu.finish();
    let ok = statuses.get("200").copied().unwrap_or(0);
    let statuses_text = format!("{statuses:?}");
    let total: u64 = statuses.values().sum();
    let report = json!({
        "scenario": "history",
        "run_id": fx.run_id,
        "database": if fx.db.is_postgres() { "postgres" } else { "sqlite" },
        "workers": workers,
        "messages": count,
        "page_size": page_size,
        "requests_per_sec": (ok as f64 / elapsed).round(),
        "errors": total - ok,
        "statuses": statuses,
        "latency_ms": stats::summary(&latency),
        "mib_per_sec": (bytes as f64 / elapsed / 1048576.0 * 10.0).round() / 10.0,
        "server_rss_kib": { "before": rss_before, "after": pid.and_then(net::rss_kib) },
        "cpu": cpu,
    });
    let human = format!(
        "history: {workers} workers reading random pages (size {page_size}) of a {count}-message chat for {} s ({})\n  \
         {:.0} requests/s, {} errors {}\n  latency: {}\n{}",
        duration.as_secs(),
        if fx.db.is_postgres() { "PostgreSQL" } else { "SQLite" },
        ok as f64 / elapsed,
        total - ok,
        statuses_text,
        stats::line(&latency),
        resources_line(&report),
    );
    Ok((report, human))
}
