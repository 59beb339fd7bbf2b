//! `bench connections`: opens N authenticated v2 sockets, holds them idle, and reports how many
//! held and what they cost the server in memory. When the machine's limits stop it first
//! (open files of either process, local ports, a server that no longer accepts), it reports the
//! ceiling it reached instead of failing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use super::fixtures::{self, Fixtures};
use super::net::{self, ConnectError, Target, Ws};
use super::{bounded, stats, Common, Outcome};
use crate::config::Config;

#[derive(Args, Debug)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sockets to open (`--duration` bounds the time spent opening them).
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Seconds to hold them all open before measuring.
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// Handshakes in flight.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Sockets per user (1: every socket is another user).
    #[arg(long, default_value_t = 1)]
    pub sockets_per_user: usize,
}

/// Consecutive failed handshakes that mean the server takes no more.
const CEILING_FAILURES: usize = 64;

/// Reads an idle socket (answering pings) until told to stop; `Some(reason)` if it ended first.
pub(super) async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>) -> Option<String> {
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return None;
            }
            item = ws.next() => match item {
                Some(Ok(Message::Close(frame))) => {
                    return Some(frame.map(|f| format!("close {}", u16::from(f.code))).unwrap_or_else(|| "close".into()))
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Some(format!("error: {err}")),
                None => return Some("eof".into()),
            }
        }
    }
}

fn server_files_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub async fn run(config: &Config, target: &Target, args: ConnectionsArgs, own_files: u64) -> anyhow::Result<Outcome> {
    let duration = args.common.duration()?;
    let count = bounded("count", args.count, 1, 60_000)?;
    let hold_for = Duration::from_secs(bounded("hold", args.hold as usize, 1, 60)? as u64);
    let concurrency = bounded("concurrency", args.concurrency, 1, 1024)?;
    let per_user = bounded("sockets-per-user", args.sockets_per_user, 1, 1000)?;
    let pid = net::server_pid(args.common.pid, target);
    let mut fx = Fixtures::open(config, args.common.run_id()).await?;
    let users = fx.users(count.div_ceil(per_user)).await?;
    fixtures::preflight(target, &users[0]).await?;
    fx.seeded().await?;
    let users = Arc::new(users);

    let rss_before = pid.and_then(net::rss_kib);
    let files_before = pid.and_then(net::open_files);
    let server_limit = pid.and_then(server_files_limit);
    eprintln!(
        "bench: opening {count} sockets ({concurrency} handshakes in flight, at most {} s)",
        duration.as_secs()
    );

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let gate = Arc::new(Semaphore::new(concurrency));
    let stopped = Arc::new(AtomicBool::new(false));
    let ceiling: Arc<Mutex<Option<String>>> = Arc::default();
    let consecutive = Arc::new(AtomicUsize::new(0));
    let failures: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let held: Arc<Mutex<Vec<tokio::task::JoinHandle<Option<String>>>>> = Arc::default();
    let handshakes = Arc::new(Mutex::new(stats::histogram()));
    let (stop, stop_rx) = watch::channel(false);
    let opened = Arc::new(AtomicUsize::new(0));
    let mut attempted = 0;
    let cpu = net::CpuMeter::start(pid);
    for i in 0..count {
        if stopped.load(Ordering::Relaxed) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            *ceiling.lock() = Some(format!("--duration ({} s) over while opening", duration.as_secs()));
            break;
        }
        let permit = gate.clone().acquire_owned().await?;
        attempted += 1;
        let (users, stopped, ceiling, consecutive, failures, held, handshakes, stop_rx, opened) = (
            users.clone(),
            stopped.clone(),
            ceiling.clone(),
            consecutive.clone(),
            failures.clone(),
            held.clone(),
            handshakes.clone(),
            stop_rx.clone(),
            opened.clone(),
        );
        let target = target.clone();
        tokio::spawn(async move {
            let at = Instant::now();
            let token = &users[i / per_user].token;
            match net::connect_v2(&target, token, i, 4096, Duration::from_secs(10)).await {
                Ok(ws) => {
                    handshakes.lock().saturating_record(at.elapsed().as_micros() as u64);
                    consecutive.store(0, Ordering::Relaxed);
                    held.lock().push(tokio::spawn(hold(ws, stop_rx)));
                    let n = opened.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % 1000 == 0 {
                        eprintln!("bench: {n} sockets open");
                    }
                }
                Err(err) => {
                    *failures.lock().entry(err.kind().to_string()).or_default() += 1;
                    let fatal = matches!(err, ConnectError::OpenFiles | ConnectError::Ports);
                    let streak = consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                    if fatal || streak >= CEILING_FAILURES {
                        let mut ceiling = ceiling.lock();
                        if ceiling.is_none() {
                            *ceiling = Some(if fatal {
                                err.to_string()
                            } else {
                                format!("{streak} handshakes in a row failed (last: {err})")
                            });
                        }
                        stopped.store(true, Ordering::Relaxed);
                    }
                }
            }
            drop(permit);
        });
    }
    // Wait for the handshakes still in flight.
    let _all = gate.acquire_many(concurrency as u32).await?;
    let open_seconds = started.elapsed().as_secs_f64();
    let opened = opened.load(Ordering::Relaxed);
    let connect_cpu = cpu.finish();
    eprintln!(
        "bench: {opened} sockets open after {open_seconds:.1} s; holding {} s",
        hold_for.as_secs()
    );

    tokio::time::sleep(hold_for).await;
    let holders = std::mem::take(&mut *held.lock());
    let alive = holders.iter().filter(|h| !h.is_finished()).count();
    let rss_held = pid.and_then(net::rss_kib);
    let files_held = pid.and_then(net::open_files);
    let _ = stop.send(true);
    let mut closed_early: BTreeMap<String, u64> = BTreeMap::new();
    for holder in holders {
        if let Ok(Some(why)) = holder.await {
            *closed_early.entry(why).or_default() += 1;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_closed = pid.and_then(net::rss_kib);

    let per_conn = match (rss_before, rss_held) {
        (Some(b), Some(h)) if alive > 0 => Some((h.saturating_sub(b)) as f64 / alive as f64),
        _ => None,
    };
    let ceiling = ceiling.lock().clone();
    let failures = failures.lock().clone();
    let handshakes = handshakes.lock().clone();
    let report = json!({
        "scenario": "connections",
        "run_id": fx.run_id,
        "database": if fx.db.is_postgres() { "postgres" } else { "sqlite" },
        "requested": count,
        "attempted": attempted,
        "opened": opened,
        "held_after_hold": alive,
        "sockets_per_user": per_user,
        "ceiling": ceiling,
        "failures": failures,
        "closed_during_hold": closed_early,
        "open_seconds": (open_seconds * 10.0).round() / 10.0,
        "handshakes_per_sec": (opened as f64 / open_seconds.max(1e-6)).round(),
        "handshake_latency_ms": stats::summary(&handshakes),
        "server_rss_kib": {
            "before": rss_before,
            "held": rss_held,
            "after_close": rss_closed,
            "per_connection": per_conn.map(|k| (k * 100.0).round() / 100.0),
        },
        "server_open_files": { "before": files_before, "held": files_held, "limit": server_limit },
        "bench_open_files_limit": own_files,
        "cpu_while_opening": connect_cpu,
    });
    let mut human = format!(
        "connections: {opened} of {count} opened in {open_seconds:.1} s ({:.0} handshakes/s), {alive} still open after {} s hold\n  \
         handshake latency: {}\n",
        opened as f64 / open_seconds.max(1e-6),
        hold_for.as_secs(),
        stats::line(&handshakes)
    );
    if let Some(ceiling) = &ceiling {
        human += &format!("  ceiling reached: {ceiling}\n");
    }
    if !failures.is_empty() {
        human += &format!("  failed handshakes: {failures:?}\n");
    }
    if !closed_early.is_empty() {
        human += &format!("  closed by the server during the hold: {closed_early:?}\n");
    }
    let kib = |v: Option<u64>| v.map(|v| format!("{v} KiB")).unwrap_or_else(|| "?".into());
    human += &format!(
        "  server RSS: before {}, holding {}, after closing {}; per held connection {}\n  \
         server open files: before {:?}, holding {:?}, limit {:?}; this process's limit {own_files}\n  \
         while opening: server CPU {}%, bench CPU {}%, load average {}\n",
        kib(rss_before),
        kib(rss_held),
        kib(rss_closed),
        per_conn.map(|k| format!("{k:.2} KiB")).unwrap_or_else(|| "?".into()),
        files_before,
        files_held,
        server_limit,
        report["cpu_while_opening"]["server_cpu_percent"],
        report["cpu_while_opening"]["bench_cpu_percent"],
        report["cpu_while_opening"]["loadavg"].as_str().unwrap_or("?"),
    );
    Ok((report, human))
}
