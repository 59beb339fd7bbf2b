//! Devices and push: every user's push devices (search by owner, filters), turning one off or
//! on, a user's push log (outbox jobs and each send's answer) and the "send test push" button,
//! which sends as `causerie push test` does.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::error::{AdminError, AdminResult};
use super::html::{self, render, Layout, Pager};
use super::service::{Admin, Staff};
use super::session::{safe_next, Confirm, Posted};
use crate::ids::UserId;
use crate::limits::RateLimits;
use crate::push::routes::KINDS;
use crate::push::Outcome;
use crate::store::devices::{DeviceFilter, DeviceRow};
use crate::store::users::UserRow;

/// Entries of each kind the push log shows.
const LOG_LENGTH: i64 = 100;

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Admin: FromRef<S>,
    RateLimits: FromRef<S>,
{
    Router::new()
        .route("/admin/devices/", get(list))
        .route("/admin/devices/{id}/deactivate/", post(deactivate))
        .route("/admin/devices/{id}/activate/", post(activate))
        .route("/admin/users/{id}/push/", get(push_log))
        .route("/admin/users/{id}/push/test/", post(test_push))
}

/// A device as the pages show it.
pub(crate) struct DeviceView {
    pub id: i64,
    pub user_id: String,
    pub owner: String,
    pub name: String,
    pub kind: String,
    /// The token's start (a Web Push subscription is a long JSON text).
    pub token: String,
    pub active: bool,
    pub created: String,
}

impl DeviceView {
    pub(crate) fn of(device: &DeviceRow, owners: &HashMap<UserId, UserRow>) -> DeviceView {
        let token: String = device.registration_id.chars().take(24).collect();
        DeviceView {
            id: device.id,
            user_id: device.user_id.to_string(),
            owner: owners
                .get(&device.user_id)
                .map(|u| u.email.clone())
                .unwrap_or_else(|| device.user_id.to_string()),
            name: device.name.clone().unwrap_or_default(),
            kind: device.kind.clone(),
            token: if token.len() < device.registration_id.len() {
                format!("{token}…")
            } else {
                token
            },
            active: device.active,
            created: html::when(device.date_created),
        }
    }

    /// Views of these devices, their owners read in one go.
    pub(crate) async fn many(admin: &Admin, devices: &[DeviceRow]) -> AdminResult<Vec<DeviceView>> {
        let ids: Vec<UserId> = devices.iter().map(|d| d.user_id).collect();
        let owners = admin.accounts().users_by_id(&ids).await?;
        Ok(devices.iter().map(|d| DeviceView::of(d, &owners)).collect())
    }
}

#[derive(Template)]
#[template(path = "devices.html")]
struct ListPage {
    layout: Layout,
    q: String,
    active: String,
    kind: String,
    kinds: &'static [&'static str],
    push_enabled: bool,
    errors: Vec<String>,
    devices: Vec<DeviceView>,
    pager: Pager,
    here: String,
}

/// The path and query of a list page, to come back to after a form.
fn here_of(path: &str, filters: &[(&str, &str)], page: i64) -> String {
    let mut pairs: Vec<(&str, String)> = filters
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    if page > 1 {
        pairs.push(("page", page.to_string()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

async fn list(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult<Response> {
    let get = |key| html::param(&query, key);
    let (q, active, kind) = (get("q"), get("active"), get("type"));
    let mut errors = Vec::new();
    let mut filter = DeviceFilter {
        active: html::yes_no(query.get("active")),
        ..DeviceFilter::default()
    };
    if !kind.is_empty() {
        if KINDS.contains(&kind.as_str()) {
            filter.kind = Some(kind.clone());
        } else {
            errors.push(format!("type: “{kind}” is not one of {}.", KINDS.join(", ")));
        }
    }
    filter.owners = admin.users_matching(&q, &mut errors).await?;
    let page = html::page_number(query.get("page"));
    let (total, devices) = if errors.is_empty() {
        let (total, rows) = admin
            .push()
            .find_devices(&filter, html::PAGE_SIZE, html::offset(page))
            .await?;
        (total, DeviceView::many(&admin, &rows).await?)
    } else {
        (0, Vec::new())
    };
    let filters = [("q", q.as_str()), ("active", active.as_str()), ("type", kind.as_str())];
    let pager = Pager::new("/admin/devices/", &filters, page, total);
    let here = here_of("/admin/devices/", &filters, page);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(render(
        status,
        &ListPage {
            layout: Layout::new(&staff, "devices", "Devices").notice(query.get("notice").map(String::as_str)),
            q,
            active,
            kind,
            kinds: &KINDS,
            push_enabled: admin.push().enabled(),
            errors,
            devices,
            pager,
            here,
        },
    ))
}

#[derive(Deserialize)]
struct DeviceForm {
    #[serde(default)]
    next: Option<String>,
}

fn device_id(raw: &str) -> AdminResult<i64> {
    raw.parse().map_err(|_| AdminError::NotFound)
}

fn back_to(next: Option<&str>, notice: &str) -> Response {
    let back = safe_next(next);
    let separator = if back.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{back}{separator}notice={notice}")).into_response()
}

async fn deactivate(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Posted { staff, form }: Posted<DeviceForm>,
) -> AdminResult<Response> {
    admin.set_device_active(&staff, device_id(&id)?, false).await?;
    Ok(back_to(form.next.as_deref(), "device_deactivated"))
}

async fn activate(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Posted { staff, form }: Posted<DeviceForm>,
) -> AdminResult<Response> {
    admin.set_device_active(&staff, device_id(&id)?, true).await?;
    Ok(back_to(form.next.as_deref(), "device_activated"))
}

/// An outbox job as the push log shows it.
struct JobView {
    id: i64,
    chat: String,
    message: String,
    status: String,
    attempts: i32,
    created: String,
    finished: String,
    note: String,
}

/// One send to one device as the push log shows it.
struct AttemptView {
    at: String,
    device_id: i64,
    device_kind: String,
    source: String,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "push_log.html")]
struct LogPage {
    layout: Layout,
    user_id: String,
    email: String,
    push_enabled: bool,
    devices: Vec<DeviceView>,
    jobs: Vec<JobView>,
    attempts: Vec<AttemptView>,
    here: String,
}

async fn push_log(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult<Response> {
    let id: UserId = id.parse().map_err(|_| AdminError::NotFound)?;
    let user = admin.accounts().user(id).await?.ok_or(AdminError::NotFound)?;
    let devices = admin.push().devices(id, html::PAGE_SIZE, 0).await?;
    let (jobs, attempts) = admin.push().log_of(id, LOG_LENGTH).await?;
    let jobs = jobs
        .into_iter()
        .map(|j| JobView {
            id: j.id,
            chat: j.chat_id.to_string(),
            message: j.message_id.to_string(),
            status: if j.status == "pending" && j.attempts > 0 {
                "pending (retrying)".into()
            } else {
                j.status
            },
            attempts: j.attempts,
            created: html::when(j.created_at),
            finished: match j.finished_at {
                Some(at) => html::when(at),
                None => format!("due {}", html::when(j.due_at)),
            },
            note: j.last_error.unwrap_or_default(),
        })
        .collect();
    let attempts = attempts
        .into_iter()
        .map(|a| AttemptView {
            at: html::when(a.at),
            device_id: a.device_id,
            device_kind: a.device_kind,
            source: a.source,
            outcome: a.outcome,
            detail: a.detail,
        })
        .collect();
    let owners = HashMap::from([(user.id, user.clone())]);
    Ok(render(
        StatusCode::OK,
        &LogPage {
            layout: Layout::new(&staff, "devices", format!("Push log of {}", user.email))
                .notice(query.get("notice").map(String::as_str)),
            user_id: user.id.to_string(),
            email: user.email.clone(),
            push_enabled: admin.push().enabled(),
            devices: devices.iter().map(|d| DeviceView::of(d, &owners)).collect(),
            jobs,
            attempts,
            here: format!("/admin/users/{}/push/", user.id),
        },
    ))
}

/// What one test send came to, as the result page shows it.
struct ResultView {
    device: DeviceView,
    outcome: &'static str,
    answer: String,
}

#[derive(Template)]
#[template(path = "push_test.html")]
struct TestPage {
    layout: Layout,
    user_id: String,
    push_enabled: bool,
    results: Vec<ResultView>,
    reached: usize,
}

async fn test_push(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Posted { staff, .. }: Posted<Confirm>,
) -> AdminResult<Response> {
    let id: UserId = id.parse().map_err(|_| AdminError::NotFound)?;
    let (user, results) = admin.test_push(&staff, id).await?;
    let owners = HashMap::from([(user.id, user.clone())]);
    let reached = results.iter().filter(|(_, o)| *o == Some(Outcome::Sent)).count();
    let results = results
        .iter()
        .map(|(device, outcome)| ResultView {
            device: DeviceView::of(device, &owners),
            outcome: match outcome {
                Some(Outcome::Sent) => "sent",
                Some(Outcome::Gone(_)) => "gone",
                Some(Outcome::Retry { .. }) => "temporary failure",
                Some(Outcome::Failed(_)) => "failed",
                None => "skipped",
            },
            answer: match outcome {
                Some(outcome) => outcome.to_string(),
                None => format!("no provider is configured for {} devices", device.kind),
            },
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &TestPage {
            layout: Layout::new(&staff, "devices", format!("Test push to {}", user.email)),
            user_id: user.id.to_string(),
            push_enabled: admin.push().enabled(),
            results,
            reached,
        },
    ))
}
