//! The outbox workers: owned tasks of the server's push stage. Each loop claims the due jobs of
//! a few users (all of a user's pending jobs at once: one push for them), decides, sends with
//! bounded concurrency, and records what came of it. Shutdown stops claiming; a push under way
//! is finished; unclaimed jobs stay for the next start or another instance.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::notification::Shown;
use super::{Notification, Outcome, Push, PushSettings, Source};
use crate::accounts::Accounts;
use crate::chats::Chats;
use crate::ids::UserId;
use crate::realtime::Realtime;
use crate::store::devices;
use crate::store::outbox::{self, Final, JobRow};
use crate::store::push_log;
use crate::store::{now, Db};

/// Users one claim takes at most.
const USERS_PER_CLAIM: i64 = 32;
/// Users pushed to at once.
const CONCURRENCY: usize = 8;
/// How long a claim holds its jobs: a worker that dies mid-send leaves them for this long.
const LEASE: Duration = Duration::from_secs(60);
/// Longest sleep between two looks at the outbox (jobs written by other instances).
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Backoff of retries: `BACKOFF_BASE * 2^(attempt-1)`, at most `BACKOFF_MAX`.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Finished jobs and push log entries are kept this many days, then purged.
const KEEP_FINISHED_DAYS: i64 = 7;
/// The push log keeps at most this many entries, however recent.
const KEEP_ATTEMPTS: i64 = 100_000;

#[derive(Clone)]
pub(crate) struct Worker {
    db: Db,
    push: Push,
    chats: Chats,
    accounts: Accounts,
    realtime: Realtime,
    settings: PushSettings,
    wake: Arc<Notify>,
}

impl Worker {
    pub(crate) fn new(db: Db, push: Push, realtime: Realtime, settings: PushSettings, wake: Arc<Notify>) -> Worker {
        Worker {
            db,
            push,
            chats: realtime.chats().clone(),
            accounts: realtime.accounts().clone(),
            realtime,
            settings,
            wake,
        }
    }

    /// Claims and sends until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut last_gauges: Option<tokio::time::Instant> = None;
        let mut last_purge = tokio::time::Instant::now();
        while !stop.is_cancelled() {
            if last_gauges.is_none_or(|at| at.elapsed() >= Duration::from_secs(2)) {
                self.update_gauges().await;
                last_gauges = Some(tokio::time::Instant::now());
            }
            if last_purge.elapsed() >= Duration::from_secs(3600) {
                let before = now() - chrono::Duration::days(KEEP_FINISHED_DAYS);
                if let Err(err) = outbox::purge_finished(&self.db, before).await {
                    tracing::warn!(error = %err, "purging finished push jobs failed");
                }
                if let Err(err) = push_log::prune(&self.db, before, KEEP_ATTEMPTS).await {
                    tracing::warn!(error = %err, "pruning the push log failed");
                }
                last_purge = tokio::time::Instant::now();
            }
            match outbox::claim(&self.db, USERS_PER_CLAIM, LEASE).await {
                Ok(jobs) if !jobs.is_empty() => {
                    self.deliver(jobs).await;
                    continue;
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "claiming push jobs failed"),
            }
            let idle = match outbox::next_due(&self.db).await {
                Ok(Some(due)) => (due - now()).to_std().unwrap_or(Duration::ZERO).min(MAX_IDLE),
                _ => MAX_IDLE,
            };
            let idle = idle.max(Duration::from_millis(10));
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    async fn update_gauges(&self) {
        if let Ok((depth, oldest)) = outbox::depth(&self.db).await {
            metrics::gauge!("causerie_push_outbox_depth").set(depth as f64);
            let age = oldest.map(|at| (now() - at).num_milliseconds().max(0) as f64 / 1000.0);
            metrics::gauge!("causerie_push_outbox_oldest_age_seconds").set(age.unwrap_or(0.0));
        }
    }

    /// One push per user for the claimed jobs, a few users at a time.
    async fn deliver(&self, jobs: Vec<JobRow>) {
        let mut per_user: BTreeMap<UserId, Vec<JobRow>> = BTreeMap::new();
        for job in jobs {
            per_user.entry(job.user_id).or_default().push(job);
        }
        futures_util::stream::iter(per_user)
            .for_each_concurrent(CONCURRENCY, |(user, jobs)| async move {
                if let Err(err) = self.deliver_to(user, jobs).await {
                    // The lease runs out and the jobs are claimed again.
                    tracing::warn!(%user, error = %err, "a push failed before its outcome was stored");
                }
            })
            .await;
    }

    async fn deliver_to(&self, user: UserId, jobs: Vec<JobRow>) -> anyhow::Result<()> {
        // Muted since, no longer a member, or the message deleted: not pushed.
        let (live, gone): (Vec<JobRow>, Vec<JobRow>) =
            jobs.into_iter().partition(|j| j.muted == Some(false) && !j.deleted);
        if !gone.is_empty() {
            self.finish(&gone, Final::Dropped, "muted, left or deleted").await?;
        }
        if live.is_empty() {
            return Ok(());
        }
        if self.realtime.is_online(user).await {
            return self.finish(&live, Final::Dropped, "recipient online").await;
        }
        let done: HashSet<i64> = live
            .iter()
            .flat_map(|j| j.done_devices.split(',').filter_map(|d| d.parse().ok()))
            .collect();
        let targets: Vec<_> = devices::active_for_user(&self.db, user)
            .await?
            .into_iter()
            .filter(|d| !done.contains(&d.id))
            .collect();
        if targets.is_empty() {
            let state = if done.is_empty() { Final::Dropped } else { Final::Sent };
            return self.finish(&live, state, "no active device left").await;
        }
        let notification = self.notification(user, &live).await?;
        let mut reached = done.clone();
        let mut retry_after: Option<Duration> = None;
        let mut retry_reason = String::new();
        let mut failures = Vec::new();
        for device in &targets {
            match self.push.send_to(device, &notification, Source::Message).await {
                None => {}
                Some(Outcome::Sent) => {
                    metrics::counter!("causerie_push_sent_total").increment(1);
                    reached.insert(device.id);
                }
                Some(Outcome::Gone(why)) => failures.push(why),
                Some(Outcome::Retry { after, reason }) => {
                    let wait = after.unwrap_or(Duration::ZERO);
                    retry_after = Some(retry_after.map_or(wait, |w| w.max(wait)));
                    retry_reason = reason;
                }
                Some(Outcome::Failed(why)) => {
                    metrics::counter!("causerie_push_failed_total").increment(1);
                    failures.push(why);
                }
            }
        }
        let attempts = live.iter().map(|j| j.attempts).max().unwrap_or(1).max(1) as u32;
        if let Some(after) = retry_after {
            if attempts < self.settings.max_attempts {
                let backoff = BACKOFF_BASE
                    .saturating_mul(2u32.saturating_pow(attempts - 1))
                    .min(BACKOFF_MAX);
                let due = now() + chrono::Duration::from_std(backoff.max(after)).unwrap_or(chrono::Duration::zero());
                let reached: Vec<String> = reached.iter().map(i64::to_string).collect();
                metrics::counter!("causerie_push_retried_total").increment(1);
                let ids: Vec<i64> = live.iter().map(|j| j.id).collect();
                outbox::retry(&self.db, &ids, due, &reached.join(","), &retry_reason).await?;
                return Ok(());
            }
            metrics::counter!("causerie_push_failed_total").increment(1);
            failures.push(format!("gave up after {attempts} attempts: {retry_reason}"));
        }
        if !reached.is_empty() {
            let error = (!failures.is_empty()).then(|| failures.join("; "));
            self.finish_with(&live, Final::Sent, error.as_deref()).await
        } else if failures.is_empty() {
            self.finish(&live, Final::Dropped, "no provider configured for the user's devices")
                .await
        } else {
            self.finish_with(&live, Final::Failed, Some(&failures.join("; "))).await
        }
    }

    /// The notification for a user's jobs (oldest first), with their unread total as badge.
    async fn notification(&self, user: UserId, jobs: &[JobRow]) -> anyhow::Result<Notification> {
        let authors: Vec<UserId> = jobs.iter().filter_map(|j| j.author).collect();
        let people = self.accounts.users_by_id(&authors).await?;
        let names: Vec<String> = jobs
            .iter()
            .map(|j| {
                j.author
                    .and_then(|a| people.get(&a))
                    .map(|u| {
                        let full = format!("{} {}", u.first_name, u.last_name);
                        if full.trim().is_empty() {
                            u.email.clone()
                        } else {
                            full.trim().to_string()
                        }
                    })
                    .unwrap_or_else(|| "Someone".into())
            })
            .collect();
        let shown: Vec<Shown<'_>> = jobs
            .iter()
            .zip(&names)
            .map(|(j, name)| Shown {
                chat: j.chat_id,
                message: j.message_id.to_string(),
                sender: name,
                group_title: j.is_group.then(|| j.title.as_deref().unwrap_or("Group")),
                kind: j.kind,
                text: &j.body,
            })
            .collect();
        let badge = self.chats.unread_total(user).await?;
        Notification::for_messages(&shown, badge, self.settings.preview)
            .ok_or_else(|| anyhow::anyhow!("no message to show"))
    }

    async fn finish(&self, jobs: &[JobRow], state: Final, why: &str) -> anyhow::Result<()> {
        if state == Final::Dropped {
            metrics::counter!("causerie_push_dropped_total").increment(jobs.len() as u64);
        }
        self.finish_with(jobs, state, Some(why)).await
    }

    async fn finish_with(&self, jobs: &[JobRow], state: Final, note: Option<&str>) -> anyhow::Result<()> {
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        outbox::finish(&self.db, &ids, state, note).await?;
        Ok(())
    }
}
