//! Presence: who is shown online to the people they share a chat with (`online`,
//! `lastConnexionDate` on REST, `presence` events on v2; docs/protocol.md, "Presence").
//!
//! A user is shown online from their first socket or their `PATCH online: true`, and offline
//! - when their last socket (on every instance) closes, unless they declared themselves online;
//! - at once on `PATCH online: false`, even with a socket open (until their next socket or
//!   `online: true`): the app says so when it leaves the foreground;
//! - when nothing was heard of them (no socket, no authenticated request) for
//!   `presence_timeout_secs`: the app vanished without saying so.
//!
//! Every user shown online holds a lease scored with when they were last seen
//! (`counter.rs`). Requests are noted in memory by the account service and written to the
//! leases in batches; the sweep takes the stale leases, each on one instance only, and a
//! conditional update makes each change of the stored state once. Every announcement says
//! what is stored at the time it is sent, so events and REST agree.

mod counter;

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub(crate) use counter::PresenceCounter;

use super::event::Event;
use super::Realtime;
use crate::accounts::Declared;
use crate::ids::UserId;

/// Most stale leases claimed at once (a sweep claims until none is left).
const CLAIM_BATCH: usize = 500;
/// Most claims in one sweep, so that stopping never waits on a long backlog.
const CLAIMS_PER_SWEEP: usize = 20;
/// How often users stored online are given a lease if they have none: after a Django import
/// while running, or a Redis that came back empty, they would otherwise stay online for good.
const ADOPT_EVERY: Duration = Duration::from_secs(600);

/// Call after the user's socket joined the hub.
pub(crate) async fn connected(rt: &Realtime, user: UserId) {
    rt.presence().connected(user).await;
    let lock = rt.presence().announce_lock(user);
    let _turn = lock.lock().await;
    // Closed again meanwhile: its close handles presence.
    if !rt.presence().has_local(user) {
        return;
    }
    rt.presence().renew(&[(user, counter::now_ms())]).await;
    match rt.accounts().socket_opened(user).await {
        Ok(Some(_)) => announce(rt, user).await,
        Ok(None) => {}
        Err(err) => tracing::warn!(%err, %user, "could not store presence"),
    }
}

/// Call after the user's socket left the hub.
pub(crate) async fn disconnected(rt: &Realtime, user: UserId) {
    if !rt.presence().disconnected(user).await {
        return;
    }
    let lock = rt.presence().announce_lock(user);
    let _turn = lock.lock().await;
    // Reopened meanwhile: still online.
    if rt.presence().has_local(user) {
        return;
    }
    match rt.accounts().sockets_gone(user).await {
        Ok(Some(_)) => {
            rt.presence().release(user).await;
            announce(rt, user).await;
        }
        // Declared online: from now on, only their requests keep them so.
        Ok(None) => rt.presence().renew(&[(user, counter::now_ms())]).await,
        Err(err) => tracing::warn!(%err, %user, "could not store presence"),
    }
}

/// The presence task of an instance (run by the server until `stop`): hands declarations on,
/// writes who was seen to the leases and sweeps the stale ones, every `timeout / 8` (at least
/// every 250 ms, at most every 15 s).
pub(crate) async fn run(rt: Realtime, timeout: Duration, stop: CancellationToken) {
    let every = (timeout / 8).clamp(Duration::from_millis(250), Duration::from_secs(15));
    adopt_stored(&rt).await;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut adoptions = tokio::time::interval_at(tokio::time::Instant::now() + ADOPT_EVERY, ADOPT_EVERY);
    adoptions.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = adoptions.tick() => adopt_stored(&rt).await,
            declared = rt.accounts().activity().declarations() => {
                for declaration in declared {
                    apply(&rt, declaration).await;
                }
            }
            _ = ticks.tick() => {
                write_seen(&rt).await;
                sweep(&rt, timeout).await;
            }
        }
    }
    // Another instance's sweep sees the last requests served here.
    write_seen(&rt).await;
}

/// Users stored online without a lease (a restart, an import, the seed's stuck flags, a Redis
/// that lost its data) get one seen now: one timeout to show up.
async fn adopt_stored(rt: &Realtime) {
    match rt.accounts().online_users().await {
        Ok(users) => rt.presence().adopt(&users, counter::now_ms()).await,
        Err(err) => tracing::warn!(%err, "could not read who is stored online"),
    }
}

async fn apply(rt: &Realtime, declared: Declared) {
    let user = declared.user;
    let lock = rt.presence().announce_lock(user);
    let _turn = lock.lock().await;
    if declared.online {
        rt.presence().renew(&[(user, counter::now_ms())]).await;
    } else {
        rt.presence().release(user).await;
    }
    if declared.changed.is_some() {
        announce(rt, user).await;
    }
}

async fn write_seen(rt: &Realtime) {
    let seen = rt.accounts().activity().take_seen();
    if !seen.is_empty() {
        rt.presence().extend(&seen).await;
    }
}

/// Users whose lease is older than `timeout`: offline, unless a socket is open somewhere.
async fn sweep(rt: &Realtime, timeout: Duration) {
    let cutoff_ms = counter::now_ms() - i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    let Some(cutoff) = DateTime::<Utc>::from_timestamp_millis(cutoff_ms) else {
        return;
    };
    for _ in 0..CLAIMS_PER_SWEEP {
        let stale = rt.presence().claim_stale(cutoff_ms, CLAIM_BATCH).await;
        for &user in &stale {
            expire(rt, user, cutoff).await;
        }
        if stale.len() < CLAIM_BATCH {
            return;
        }
    }
}

async fn expire(rt: &Realtime, user: UserId, cutoff: DateTime<Utc>) {
    let lock = rt.presence().announce_lock(user);
    let _turn = lock.lock().await;
    if rt.presence().is_online(user).await {
        rt.presence().renew(&[(user, counter::now_ms())]).await;
        return;
    }
    match rt.accounts().expire_presence(user, cutoff).await {
        Ok(Some(_)) => announce(rt, user).await,
        // Declared online while this sweep ran: their lease starts again.
        Ok(None) => {
            if matches!(rt.accounts().shown_presence(user).await, Ok(Some((true, _)))) {
                rt.presence().renew(&[(user, counter::now_ms())]).await;
            }
        }
        Err(err) => {
            // Not decided: try again at the next sweep.
            tracing::warn!(%err, %user, "could not store presence");
            rt.presence().adopt(&[user], cutoff.timestamp_millis()).await;
        }
    }
}

/// Tells everyone who shares a chat with `user` what is stored now (call with the user's
/// turn held, after storing a change).
async fn announce(rt: &Realtime, user: UserId) {
    let (online, at) = match rt.accounts().shown_presence(user).await {
        Ok(Some(shown)) => shown,
        Ok(None) => return,
        Err(err) => return tracing::warn!(%err, %user, "could not read presence"),
    };
    let audience = match rt.chats().contacts(user).await {
        Ok(contacts) => contacts,
        Err(err) => return tracing::warn!(%err, %user, "could not load presence audience"),
    };
    let at = at.unwrap_or_else(Utc::now);
    rt.fanout().to_users(&audience, Event::Presence { user, online, at });
}
