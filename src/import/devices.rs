//! `fcm_django_fcmdevice` → `devices`: read and checked in every run; written by a step of its
//! own, which waits (with a line in the report and the log) while Causerie's database has no
//! `devices` table.

use std::collections::HashMap;

use futures_util::StreamExt;

use super::chats::missing_user;
use super::report::DevicesOutcome;
use super::source::{self, DjangoDevice, Source, SourceError};
use super::{Context, ImportError};
use crate::store::import::{self as store, ImportedDevice};

const TABLE: &str = source::DEVICES_TABLE;
const KINDS: [&str; 3] = ["android", "ios", "web"];

/// Every device (fcm-django keeps no `updatedAt`, and devices are few), newest first: of two
/// rows with one registration id the newer is kept, as a token that moved to another user.
/// `None` when the Django database has no device table.
pub(super) async fn read(
    ctx: &mut Context<'_>,
    source: &mut Source,
) -> Result<Option<Vec<ImportedDevice>>, ImportError> {
    if !source.has_table(TABLE).await.map_err(SourceError::Sql)? {
        ctx.report.devices_outcome = DevicesOutcome::NoSourceTable;
        return Ok(None);
    }
    let mut accepted = Vec::new();
    let mut holders: HashMap<String, i64> = HashMap::new();
    let mut rows = source.rows(source::DEVICES, None);
    while let Some(row) = rows.next().await {
        let row = row.map_err(SourceError::Sql)?;
        ctx.report.devices.read += 1;
        let device = match DjangoDevice::decode(&row) {
            Ok(device) => device,
            Err(reason) => {
                ctx.report.refuse(TABLE, row.key("id"), reason);
                continue;
            }
        };
        match check(ctx, &device, &holders) {
            Ok(user_id) => {
                holders.insert(device.registration_id.clone(), device.id);
                ctx.report.devices.new += 1;
                accepted.push(ImportedDevice {
                    user_id,
                    name: device.name,
                    registration_id: device.registration_id,
                    device_id: device.device_id,
                    active: device.active,
                    kind: device.kind,
                    date_created: device.date_created.unwrap_or_else(crate::store::now),
                });
            }
            Err(reason) => ctx.report.refuse(TABLE, device.id.to_string(), reason),
        }
    }
    Ok(Some(accepted))
}

fn check(ctx: &Context<'_>, device: &DjangoDevice, holders: &HashMap<String, i64>) -> Result<uuid::Uuid, String> {
    let Some(user) = device.user else {
        return Err("the device has no user".into());
    };
    if !ctx.known.users.contains_key(&user) {
        return Err(missing_user(ctx, "user", user));
    }
    if device.registration_id.trim().is_empty() {
        return Err("registration_id is empty".into());
    }
    if !KINDS.contains(&device.kind.as_str()) {
        return Err(format!("type {:?} is not android, ios or web", device.kind));
    }
    if let Some(newer) = holders.get(&device.registration_id) {
        return Err(format!(
            "registration_id is also held by the newer device {newer}, which is kept"
        ));
    }
    Ok(user)
}

/// The writing step: upserts by registration id once Causerie has its `devices` table.
pub(super) async fn write(ctx: &mut Context<'_>, devices: Option<Vec<ImportedDevice>>) -> Result<(), ImportError> {
    let Some(devices) = devices else {
        return Ok(());
    };
    let Some(db) = ctx.writer() else {
        ctx.report.devices_outcome = DevicesOutcome::DryRun;
        return Ok(());
    };
    if !store::has_table(db, "devices").await.map_err(ImportError::Target)? {
        tracing::warn!(
            devices = devices.len(),
            "devices not written: Causerie's database has no devices table yet; re-run the import once it has"
        );
        ctx.report.devices_outcome = DevicesOutcome::NoTargetTable;
        return Ok(());
    }
    store::apply_devices(db, &devices)
        .await
        .map_err(|source| ImportError::Write {
            what: format!("{} devices", devices.len()),
            source,
        })?;
    ctx.report.devices_outcome = DevicesOutcome::Written(devices.len() as u64);
    Ok(())
}
