//! `bench connect-storm`: N authenticated v2 sockets opened as fast as the server accepts them
//! (`--concurrency` handshakes in flight, one attempt each, no retry): handshakes/s, handshake
//! time, and every failure by kind — refused by TCP (a full listen queue), refused by HTTP, reset,
//! timed out. The sockets are held until the last attempt is over, then closed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{watch, Semaphore};

use super::connections::hold;
use super::fixtures::{self, Fixtures};
use super::net::{self, Target};
use super::{bounded, stats, Common, Outcome};
use crate::config::Config;

#[derive(Args, Debug)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sockets to open (`--duration` bounds the time spent opening them).
    #[arg(long, default_value_t = 19_000)]
    pub count: usize,
    /// Handshakes in flight.
    #[arg(long, default_value_t = 1024)]
    pub concurrency: usize,
    /// Sockets per user (1: every socket is another user).
    #[arg(long, default_value_t = 1)]
    pub sockets_per_user: usize,
    /// Seconds a handshake may take before it counts as timed out.
    #[arg(long, default_value_t = 10)]
    pub handshake_timeout: u64,
}

pub async fn run(config: &Config, target: &Target, args: StormArgs) -> anyhow::Result<Outcome> {
    let duration = args.common.duration()?;
    let count = bounded("count", args.count, 1, 60_000)?;
    let concurrency = bounded("concurrency", args.concurrency, 1, 8192)?;
    let per_user = bounded("sockets-per-user", args.sockets_per_user, 1, 1000)?;
    let timeout = Duration::from_secs(bounded("handshake-timeout", args.handshake_timeout as usize, 1, 60)? as u64);
    let pid = net::server_pid(args.common.pid, target);
    let mut fx = Fixtures::open(config, args.common.run_id()).await?;
    let users = Arc::new(fx.users(count.div_ceil(per_user)).await?);
    fixtures::preflight(target, &users[0]).await?;
    fx.seeded().await?;
    let rss_before = pid.and_then(net::rss_kib);
    eprintln!("bench: opening {count} sockets, {concurrency} handshakes in flight");

    let gate = Arc::new(Semaphore::new(concurrency));
    let failures: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let examples: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let handshakes = Arc::new(Mutex::new(stats::histogram()));
    let held = Arc::new(Mutex::new(Vec::new()));
    let opened = Arc::new(AtomicUsize::new(0));
    let last_open = Arc::new(Mutex::new(Duration::ZERO));
    let (stop, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let deadline = started + duration;
    let cpu = net::CpuMeter::start(pid);
    let mut attempted = 0;
    for i in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        let permit = gate.clone().acquire_owned().await?;
        attempted += 1;
        let (users, failures, examples, handshakes, held, opened, last_open, stop_rx, target) = (
            users.clone(),
            failures.clone(),
            examples.clone(),
            handshakes.clone(),
            held.clone(),
            opened.clone(),
            last_open.clone(),
            stop_rx.clone(),
            target.clone(),
        );
        tokio::spawn(async move {
            let at = Instant::now();
            match net::connect_v2(&target, &users[i / per_user].token, i, 4096, timeout).await {
                Ok(ws) => {
                    handshakes.lock().saturating_record(at.elapsed().as_micros() as u64);
                    held.lock().push(tokio::spawn(hold(ws, stop_rx)));
                    *last_open.lock() = started.elapsed();
                    let n = opened.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % 5000 == 0 {
                        eprintln!("bench: {n} sockets open");
                    }
                }
                Err(err) => {
                    let kind = err.kind().to_string();
                    *failures.lock().entry(kind.clone()).or_default() += 1;
                    examples.lock().entry(kind).or_insert_with(|| err.to_string());
                }
            }
            drop(permit);
        });
    }
    let _all = gate.acquire_many(concurrency as u32).await?;
    let attempts_seconds = started.elapsed().as_secs_f64();
    let open_seconds = last_open.lock().as_secs_f64();
    let cpu = cpu.finish();
    let opened = opened.load(Ordering::Relaxed);
    let holders = std::mem::take(&mut *held.lock());
    let alive = holders.iter().filter(|h| !h.is_finished()).count();
    let rss_held = pid.and_then(net::rss_kib);
    let _ = stop.send(true);
    let mut closed_early: BTreeMap<String, u64> = BTreeMap::new();
    for holder in holders {
        if let Ok(Some(why)) = holder.await {
            *closed_early.entry(why).or_default() += 1;
        }
    }
    let failures = failures.lock().clone();
    let count_of = |kind: &str| failures.get(kind).copied().unwrap_or(0);
    let refused = count_of("tcp_refused") + count_of("refused");
    let resets = count_of("reset");
    let handshakes = handshakes.lock().clone();
    let rate = opened as f64 / open_seconds.max(1e-6);
    let report = json!({
        "scenario": "connect-storm",
        "run_id": fx.run_id,
        "database": if fx.db.is_postgres() { "postgres" } else { "sqlite" },
        "requested": count,
        "attempted": attempted,
        "concurrency": concurrency,
        "opened": opened,
        "open_after_storm": alive,
        "seconds_to_last_open": (open_seconds * 100.0).round() / 100.0,
        "seconds_to_last_answer": (attempts_seconds * 100.0).round() / 100.0,
        "handshakes_per_sec": rate.round(),
        "handshake_latency_ms": stats::summary(&handshakes),
        "refused": refused,
        "resets": resets,
        "failures": failures,
        "failure_examples": examples.lock().clone(),
        "closed_during_storm": closed_early,
        "server_rss_kib": { "before": rss_before, "held": rss_held },
        "cpu": cpu,
    });
    let mut human = format!(
        "connect-storm: {opened} of {count} sockets open {open_seconds:.2} s after the first attempt ({rate:.0} handshakes/s, \
         {concurrency} in flight), {alive} still open at the end\n  \
         handshake time: {}\n  refused {refused}, reset {resets}, all failures {failures:?}\n",
        stats::line(&handshakes),
    );
    if !closed_early.is_empty() {
        human += &format!("  closed by the server meanwhile: {closed_early:?}\n");
    }
    human += &format!(
        "  server RSS {} -> {} KiB; server CPU {}%, bench CPU {}%, load average {}\n",
        report["server_rss_kib"]["before"],
        report["server_rss_kib"]["held"],
        report["cpu"]["server_cpu_percent"],
        report["cpu"]["bench_cpu_percent"],
        report["cpu"]["loadavg"].as_str().unwrap_or("?"),
    );
    Ok((report, human))
}
