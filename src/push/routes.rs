//! `/devices/`: fcm-django 0.3.7's `FCMDeviceAuthorizedViewSet`, looked up by
//! `registration_id`, owner only (contract section 4).

use axum::extract::{FromRef, FromRequestParts, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::webpush::Subscription;
use super::{Push, PushError};
use crate::accounts::{Accounts, CurrentUser};
use crate::error::{ApiError, ApiResult};
use crate::http::answers::{InvalidPage, NotFound};
use crate::http::{micros, Fields, Form, FromBody, Page, PageLink, PageRequest, Query};
use crate::store::devices::{DeviceFields, DeviceRow};
use crate::validation::REQUIRED;

/// fcm-django's field sizes.
const NAME_MAX: usize = 255;
const DEVICE_ID_MAX: usize = 150;
/// Longest registration id taken (FCM tokens are ~160 characters, subscriptions ~400).
const REGISTRATION_MAX: usize = 4096;
pub(crate) const KINDS: [&str; 3] = ["ios", "android", "web"];
const UNIQUE: &str = "This field must be unique.";

impl From<PushError> for ApiError {
    fn from(err: PushError) -> ApiError {
        match err {
            PushError::NotFound => ApiError::NotFound,
            PushError::Duplicate => ApiError::field("registration_id", UNIQUE),
            PushError::Unavailable => ApiError::Unavailable,
            PushError::Store(err) => ApiError::Internal(anyhow::Error::new(err).context("device storage")),
        }
    }
}

pub(crate) fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Push: FromRef<S>,
    Accounts: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(device_list, device_create))
        .routes(routes!(device_detail, device_replace, device_update, device_delete))
        .routes(routes!(vapid_key))
}

/// `GET /api/push/vapid/`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VapidKey {
    /// The VAPID public key (an uncompressed P-256 point, base64url without padding), to pass
    /// as `applicationServerKey` to `pushManager.subscribe`.
    #[serde(rename = "publicKey")]
    #[schema(rename = "publicKey")]
    pub public_key: String,
}

/// The key a browser subscribes to Web Push with (404 when Web Push is not configured).
#[utoipa::path(
    get,
    path = "/api/push/vapid/",
    tag = "devices",
    security(("jwtAuth" = [])),
    responses((status = OK, description = "The VAPID public key", body = VapidKey), NotFound)
)]
async fn vapid_key(State(push): State<Push>, _user: CurrentUser) -> ApiResult<Json<VapidKey>> {
    let key = push.vapid_public_key().ok_or(ApiError::NotFound)?;
    Ok(Json(VapidKey {
        public_key: key.to_string(),
    }))
}

/// A device as fcm-django's `FCMDeviceSerializer` renders it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Device)]
pub(crate) struct DeviceView {
    pub id: i64,
    #[schema(required = true)]
    pub name: Option<String>,
    /// The FCM token, or (`web`) the browser's Push API subscription as JSON.
    pub registration_id: String,
    #[schema(required = true)]
    pub device_id: Option<String>,
    /// Inactive devices are not pushed to (the provider said the token is gone).
    pub active: bool,
    #[serde(with = "micros")]
    pub date_created: DateTime<Utc>,
    /// `ios`, `android` or `web`.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
}

impl DeviceView {
    fn of(row: DeviceRow) -> DeviceView {
        DeviceView {
            id: row.id,
            name: row.name,
            registration_id: row.registration_id,
            device_id: row.device_id,
            active: row.active,
            date_created: row.date_created,
            kind: row.kind,
        }
    }
}

type DevicePage = Page<DeviceView>;

/// What a device is: `ios`, `android` or `web`.
// Only the document uses this type: bodies keep `type` as text, so that another value gets DRF's
// "is not a valid choice." rather than a parse error.
#[derive(ToSchema)]
#[allow(dead_code, non_camel_case_types)]
pub(crate) enum DeviceKind {
    ios,
    android,
    web,
}

/// `POST /devices/` and `PUT /devices/{registration_id}/`. `user` in the body is ignored: the
/// owner is the caller.
#[derive(Debug, ToSchema)]
#[schema(as = DeviceBody)]
pub(crate) struct DeviceBody {
    #[schema(max_length = 255, value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// The FCM token, or (`web`) the browser's Push API subscription as JSON, with `endpoint`
    /// and `keys` (`p256dh`, `auth`).
    #[schema(max_length = 4096, pattern = r"\S", required = true)]
    pub registration_id: Option<String>,
    #[schema(max_length = 150, value_type = Option<String>)]
    pub device_id: Option<Option<String>>,
    /// Default true.
    #[schema(nullable = false)]
    pub active: Option<bool>,
    #[schema(rename = "type", nullable = false, required = true, value_type = DeviceKind)]
    pub kind: Option<String>,
}

/// `PATCH /devices/{registration_id}/`: only the fields given change.
#[derive(Debug, ToSchema)]
#[schema(as = DevicePatch)]
pub(crate) struct DevicePatch {
    #[schema(max_length = 255, value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[schema(max_length = 4096, pattern = r"\S", nullable = false)]
    pub registration_id: Option<String>,
    #[schema(max_length = 150, value_type = Option<String>)]
    pub device_id: Option<Option<String>>,
    #[schema(nullable = false)]
    pub active: Option<bool>,
    #[schema(rename = "type", nullable = false, value_type = Option<DeviceKind>)]
    pub kind: Option<String>,
}

fn read_body(f: &mut Fields<'_>, partial: bool) -> DeviceBody {
    let body = DeviceBody {
        name: f.optional_nullable_str("name", NAME_MAX),
        registration_id: f.optional_raw_str("registration_id", REGISTRATION_MAX),
        device_id: f.optional_nullable_str("device_id", DEVICE_ID_MAX),
        active: f.optional_bool("active"),
        kind: f.optional_str("type", 16),
    };
    if !partial {
        for (field, given) in [
            ("registration_id", f.present("registration_id")),
            ("type", f.present("type")),
        ] {
            if !given {
                f.error(field, REQUIRED);
            }
        }
    }
    if body.registration_id.as_deref().is_some_and(|r| r.trim().is_empty()) {
        f.error("registration_id", "This field may not be blank.");
    }
    if let Some(kind) = &body.kind {
        if !KINDS.contains(&kind.as_str()) {
            f.error("type", format!("\"{kind}\" is not a valid choice."));
        }
    }
    body
}

impl FromBody for DeviceBody {
    fn from_fields(f: &mut Fields<'_>) -> Option<DeviceBody> {
        Some(read_body(f, false))
    }
}

impl FromBody for DevicePatch {
    fn from_fields(f: &mut Fields<'_>) -> Option<DevicePatch> {
        let body = read_body(f, true);
        Some(DevicePatch {
            name: body.name,
            registration_id: body.registration_id,
            device_id: body.device_id,
            active: body.active,
            kind: body.kind,
        })
    }
}

impl From<DevicePatch> for DeviceBody {
    fn from(patch: DevicePatch) -> DeviceBody {
        DeviceBody {
            name: patch.name,
            registration_id: patch.registration_id,
            device_id: patch.device_id,
            active: patch.active,
            kind: patch.kind,
        }
    }
}

/// The fields to store: the body over `current` (a patch), checked as a whole (a `web`
/// device's registration id must be a Push API subscription).
fn merge(body: DeviceBody, current: Option<&DeviceRow>) -> ApiResult<DeviceFields> {
    let fields = DeviceFields {
        name: body.name.unwrap_or_else(|| current.and_then(|c| c.name.clone())),
        registration_id: body
            .registration_id
            .or_else(|| current.map(|c| c.registration_id.clone()))
            .unwrap_or_default(),
        device_id: body
            .device_id
            .unwrap_or_else(|| current.and_then(|c| c.device_id.clone())),
        active: body.active.or(current.map(|c| c.active)).unwrap_or(true),
        kind: body
            .kind
            .or_else(|| current.map(|c| c.kind.clone()))
            .unwrap_or_default(),
    };
    if fields.kind == "web" && Subscription::parse(&fields.registration_id).is_none() {
        return Err(ApiError::field(
            "registration_id",
            "Enter a Push API subscription: JSON with \"endpoint\" and \"keys\" (\"p256dh\", \"auth\").",
        ));
    }
    Ok(fields)
}

/// The device named by the path's registration id, the caller's or "not found".
struct OwnDevice(DeviceRow);

impl<S> FromRequestParts<S> for OwnDevice
where
    S: Send + Sync,
    Push: FromRef<S>,
    Accounts: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<OwnDevice, ApiError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let registration_id = params
            .iter()
            .next()
            .map(|(_, v)| v.to_string())
            .ok_or(ApiError::NotFound)?;
        let push = Push::from_ref(state);
        Ok(OwnDevice(push.device(user.id(), &registration_id).await?))
    }
}

/// The caller's devices.
#[utoipa::path(
    get,
    path = "/devices/",
    tag = "devices",
    params(PageRequest),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "A page of the caller's devices", body = DevicePage),
        InvalidPage,
    )
)]
async fn device_list(
    State(push): State<Push>,
    user: CurrentUser,
    Query(page): Query<PageRequest>,
    link: PageLink,
) -> ApiResult<Json<Page<DeviceView>>> {
    let total = push.count_devices(user.id()).await?;
    let page = page.resolve(total);
    let rows = push.devices(user.id(), page.limit(), page.offset()).await?;
    Ok(Json(page.render(
        total,
        rows.into_iter().map(DeviceView::of).collect(),
        &link,
    )?))
}

/// Register a push token (an FCM token, or a browser's Push API subscription for `web`).
///
/// The caller is the owner. A token another user held moves to the caller; the caller's own
/// active token again is refused.
#[utoipa::path(
    post,
    path = "/devices/",
    tag = "devices",
    security(("jwtAuth" = [])),
    responses(
        (status = CREATED, description = "The device", body = DeviceView),
    )
)]
async fn device_create(
    State(push): State<Push>,
    user: CurrentUser,
    Form(body): Form<DeviceBody>,
) -> ApiResult<(StatusCode, Json<DeviceView>)> {
    let fields = merge(body, None)?;
    let row = push.register(user.id(), &fields).await?;
    Ok((StatusCode::CREATED, Json(DeviceView::of(row))))
}

/// One of the caller's devices.
#[utoipa::path(
    get,
    path = "/devices/{registration_id}/",
    tag = "devices",
    params(("registration_id" = String, Path, description = "The device's registration id (URL-encoded)")),
    security(("jwtAuth" = [])),
    responses((status = OK, description = "The device", body = DeviceView), NotFound)
)]
async fn device_detail(OwnDevice(device): OwnDevice) -> Json<DeviceView> {
    Json(DeviceView::of(device))
}

/// Replace a device's fields.
#[utoipa::path(
    put,
    path = "/devices/{registration_id}/",
    tag = "devices",
    params(("registration_id" = String, Path, description = "The device's registration id (URL-encoded)")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The device", body = DeviceView),
        NotFound,
    )
)]
async fn device_replace(
    State(push): State<Push>,
    OwnDevice(device): OwnDevice,
    Form(body): Form<DeviceBody>,
) -> ApiResult<Json<DeviceView>> {
    let fields = merge(body, None)?;
    Ok(Json(DeviceView::of(push.update_device(&device, &fields).await?)))
}

/// Change some of a device's fields (`{"active": false}`, a new token, …).
#[utoipa::path(
    patch,
    path = "/devices/{registration_id}/",
    tag = "devices",
    params(("registration_id" = String, Path, description = "The device's registration id (URL-encoded)")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The device", body = DeviceView),
        NotFound,
    )
)]
async fn device_update(
    State(push): State<Push>,
    OwnDevice(device): OwnDevice,
    Form(patch): Form<DevicePatch>,
) -> ApiResult<Json<DeviceView>> {
    let fields = merge(patch.into(), Some(&device))?;
    Ok(Json(DeviceView::of(push.update_device(&device, &fields).await?)))
}

/// Forget a device.
#[utoipa::path(
    delete,
    path = "/devices/{registration_id}/",
    tag = "devices",
    params(("registration_id" = String, Path, description = "The device's registration id (URL-encoded)")),
    security(("jwtAuth" = [])),
    responses((status = NO_CONTENT, description = "Deleted"), NotFound)
)]
async fn device_delete(State(push): State<Push>, OwnDevice(device): OwnDevice) -> ApiResult<StatusCode> {
    push.delete_device(&device).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::schema_check::body_matches_its_schema;

    #[test]
    fn the_device_body_documents_what_it_reads() {
        body_matches_its_schema::<DeviceBody>();
        body_matches_its_schema::<DevicePatch>();
    }
}
