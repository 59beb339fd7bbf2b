//! Push notifications (docs/push.md): the devices a user registers (`/devices/`, fcm-django's
//! API), the outbox workers that notify a chat's offline members, and the providers they send
//! through (FCM HTTP v1, Web Push).
//!
//! The outbox rows are written by the chats' group commit in the message's own transaction
//! (`store::message_batch`); this module claims them, decides (recipient online, chat muted,
//! devices left), sends, retries and records the final state.

mod fcm;
mod notification;
pub(crate) mod routes;
mod webpush;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::ids::UserId;
use crate::store::devices::{self, Changed, DeviceFields, DeviceFilter, DeviceRow, Registered};
use crate::store::outbox::{self, JobState};
use crate::store::push_log::{self, AttemptRow, NewAttempt};
use crate::store::{is_unavailable, Db};

pub(crate) use notification::Notification;
pub(crate) use worker::Worker;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    #[error("device not found")]
    NotFound,
    /// The caller already holds this registration id (fcm-django's message).
    #[error("registration id already registered")]
    Duplicate,
    #[error("database unavailable")]
    Unavailable,
    #[error("device storage failed")]
    Store(#[source] sqlx::Error),
}

impl From<sqlx::Error> for PushError {
    fn from(err: sqlx::Error) -> PushError {
        if is_unavailable(&err) {
            PushError::Unavailable
        } else {
            PushError::Store(err)
        }
    }
}

pub(crate) type PushResult<T> = Result<T, PushError>;

/// What one send to one device came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    /// The provider no longer knows the token or subscription: the device is deactivated.
    Gone(String),
    /// Worth another try (429, 5xx, network), not before `after` when the provider said so.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Refused for good (bad credentials, a payload the provider rejects).
    Failed(String),
}

impl Outcome {
    /// The push log's word for it.
    fn word(&self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Gone(_) => "gone",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// Why a push was sent, as the push log records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// An outbox job: messages the user missed.
    Message,
    /// A test notification (`causerie push test`, the admin site's button).
    Test,
}

impl Source {
    fn word(self) -> &'static str {
        match self {
            Source::Message => "message",
            Source::Test => "test",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Sent => f.write_str("sent"),
            Outcome::Gone(why) => write!(f, "device deactivated ({why})"),
            Outcome::Retry { reason, .. } => write!(f, "temporary failure ({reason})"),
            Outcome::Failed(why) => write!(f, "failed ({why})"),
        }
    }
}

/// The configured providers; push is off when there is none.
#[derive(Clone, Default)]
pub(crate) struct Providers {
    fcm: Option<Arc<fcm::Fcm>>,
    web: Option<Arc<webpush::WebPush>>,
}

impl Providers {
    pub(crate) fn from_config(config: &Config) -> anyhow::Result<Providers> {
        let fcm = match &config.push_fcm_credentials_file {
            Some(path) => Some(Arc::new(fcm::Fcm::from_file(path, &config.push_fcm_endpoint)?)),
            None => None,
        };
        let web = match &config.push_vapid_private_key_file {
            Some(path) => Some(Arc::new(webpush::WebPush::from_file(path, &config.push_vapid_subject)?)),
            None => None,
        };
        Ok(Providers { fcm, web })
    }

    pub(crate) fn enabled(&self) -> bool {
        self.fcm.is_some() || self.web.is_some()
    }

    /// Sends `notification` to `device`; `None` when no provider serves its kind.
    pub(crate) async fn send(&self, device: &DeviceRow, notification: &Notification) -> Option<Outcome> {
        match device.kind.as_str() {
            "web" => Some(self.web.as_ref()?.send(&device.registration_id, notification).await),
            _ => Some(self.fcm.as_ref()?.send(&device.registration_id, notification).await),
        }
    }
}

/// How the workers behave.
#[derive(Clone, Debug)]
pub(crate) struct PushSettings {
    pub preview: bool,
    pub coalesce: Duration,
    pub max_attempts: u32,
}

impl PushSettings {
    pub(crate) fn from_config(config: &Config) -> PushSettings {
        PushSettings {
            preview: config.push_preview,
            coalesce: Duration::from_millis(config.push_coalesce_ms),
            max_attempts: config.push_max_attempts,
        }
    }
}

struct Inner {
    db: Db,
    providers: Providers,
}

/// The push service: devices, and sending through the providers. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Push(Arc<Inner>);

impl Push {
    pub(crate) fn new(db: Db, providers: Providers) -> Push {
        Push(Arc::new(Inner { db, providers }))
    }

    pub(crate) fn enabled(&self) -> bool {
        self.0.providers.enabled()
    }

    /// The VAPID public key browsers subscribe with; `None` when Web Push is off.
    pub(crate) fn vapid_public_key(&self) -> Option<&str> {
        self.0.providers.web.as_ref().map(|web| web.public_key())
    }

    fn db(&self) -> &Db {
        &self.0.db
    }

    /// Registers a token for `owner` (a token another user held moves to `owner`).
    pub(crate) async fn register(&self, owner: UserId, fields: &DeviceFields) -> PushResult<DeviceRow> {
        match devices::register(self.db(), owner, fields).await? {
            Registered::Created(row) => Ok(row),
            Registered::Duplicate => Err(PushError::Duplicate),
        }
    }

    pub(crate) async fn count_devices(&self, owner: UserId) -> PushResult<i64> {
        Ok(devices::count_for_user(self.db(), owner).await?)
    }

    pub(crate) async fn devices(&self, owner: UserId, limit: i64, offset: i64) -> PushResult<Vec<DeviceRow>> {
        Ok(devices::page_for_user(self.db(), owner, limit, offset).await?)
    }

    /// `owner`'s device with this registration id; anyone else's is "not found".
    pub(crate) async fn device(&self, owner: UserId, registration_id: &str) -> PushResult<DeviceRow> {
        devices::by_registration(self.db(), registration_id)
            .await?
            .filter(|d| d.user_id == owner)
            .ok_or(PushError::NotFound)
    }

    pub(crate) async fn update_device(&self, device: &DeviceRow, fields: &DeviceFields) -> PushResult<DeviceRow> {
        match devices::update(self.db(), device.id, device.user_id, fields).await? {
            Changed::Updated(row) => Ok(row),
            Changed::Duplicate => Err(PushError::Duplicate),
        }
    }

    pub(crate) async fn delete_device(&self, device: &DeviceRow) -> PushResult<()> {
        Ok(devices::delete(self.db(), device.id).await?)
    }

    /// Sends to one device, deactivating it when the provider no longer knows it, and records
    /// the provider's answer in the push log.
    pub(crate) async fn send_to(
        &self,
        device: &DeviceRow,
        notification: &Notification,
        source: Source,
    ) -> Option<Outcome> {
        let outcome = self.0.providers.send(device, notification).await?;
        let detail = match &outcome {
            Outcome::Sent => String::new(),
            Outcome::Gone(why) | Outcome::Failed(why) => why.clone(),
            Outcome::Retry { reason, .. } => reason.clone(),
        };
        let attempt = NewAttempt {
            user_id: device.user_id,
            device_id: device.id,
            device_kind: &device.kind,
            source: source.word(),
            outcome: outcome.word(),
            detail: &detail,
        };
        // The send happened whatever the log says: a failed write is only logged.
        if let Err(err) = push_log::insert(self.db(), &attempt).await {
            tracing::warn!(device = device.id, error = %err, "recording a push attempt failed");
        }
        if let Outcome::Gone(why) = &outcome {
            tracing::info!(device = device.id, user = %device.user_id, reason = %why, "push device deactivated");
            metrics::counter!("causerie_push_devices_deactivated_total").increment(1);
            if let Err(err) = devices::deactivate(self.db(), device.id).await {
                tracing::warn!(device = device.id, error = %err, "deactivating a push device failed");
            }
        }
        Some(outcome)
    }

    /// `causerie push test`: a test notification to each of `user`'s active devices, with
    /// each device and what its send came to.
    pub(crate) async fn send_test(&self, user: UserId) -> PushResult<Vec<(DeviceRow, Option<Outcome>)>> {
        let notification = Notification::test();
        let mut results = Vec::new();
        for device in devices::active_for_user(self.db(), user).await? {
            let outcome = self.send_to(&device, &notification, Source::Test).await;
            results.push((device, outcome));
        }
        Ok(results)
    }

    // ---- what the admin site reads and changes -------------------------------------------

    /// One page of every user's devices that `filter` selects, newest first, and the total.
    pub(crate) async fn find_devices(
        &self,
        filter: &DeviceFilter,
        limit: i64,
        offset: i64,
    ) -> PushResult<(i64, Vec<DeviceRow>)> {
        Ok(devices::filtered(self.db(), filter, limit, offset).await?)
    }

    /// Stops (or resumes) pushing to a device; its owner's other devices are untouched.
    pub(crate) async fn set_device_active(&self, id: i64, active: bool) -> PushResult<DeviceRow> {
        devices::set_active(self.db(), id, active)
            .await?
            .ok_or(PushError::NotFound)
    }

    /// The push log of `user`: their newest outbox jobs and their newest sends, newest first.
    pub(crate) async fn log_of(&self, user: UserId, limit: i64) -> PushResult<(Vec<JobState>, Vec<AttemptRow>)> {
        let jobs = outbox::newest_for_user(self.db(), user, limit).await?;
        let attempts = push_log::newest_for_user(self.db(), user, limit).await?;
        Ok((jobs, attempts))
    }

    /// Jobs waiting in the outbox (the dashboard; `/metrics` has it as a gauge).
    pub(crate) async fn outbox_depth(&self) -> PushResult<i64> {
        Ok(outbox::depth(self.db()).await?.0)
    }
}
