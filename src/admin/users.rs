//! Users: the list (search, filters), creation, the detail page with its edit, password,
//! (de)activation and delete forms.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::devices::DeviceView;
use super::error::{AdminError, AdminResult};
use super::html::{self, render, FormErrors, Layout, Pager};
use super::service::{Admin, NewAccount, Staff};
use super::session::{Confirm, Posted};
use crate::ids::UserId;
use crate::limits::RateLimits;
use crate::store::users::{AccountChange, UserFilter, UserRow};
use crate::validation::FieldErrors;

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Admin: FromRef<S>,
    RateLimits: FromRef<S>,
{
    Router::new()
        .route("/admin/users/", get(list))
        .route("/admin/users/new/", get(new_form).post(create))
        .route("/admin/users/{id}/", get(detail).post(edit))
        .route("/admin/users/{id}/password/", post(set_password))
        .route("/admin/users/{id}/deactivate/", post(deactivate))
        .route("/admin/users/{id}/activate/", post(activate))
        .route("/admin/users/{id}/delete/", get(confirm_delete).post(delete))
}

/// A user as the pages show them.
pub(crate) struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub online: bool,
    pub joined: String,
    pub last_login: String,
    pub last_seen: String,
}

impl UserView {
    pub(crate) fn of(user: &UserRow) -> UserView {
        UserView {
            id: user.id.to_string(),
            email: user.email.clone(),
            name: format!("{} {}", user.first_name, user.last_name).trim().to_string(),
            is_active: user.is_active,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            online: user.online,
            joined: html::when(user.date_joined),
            last_login: html::when_opt(user.last_login),
            last_seen: html::when_opt(user.last_connexion_date),
        }
    }
}

fn user_id(raw: &str) -> AdminResult<UserId> {
    raw.parse().map_err(|_| AdminError::NotFound)
}

#[derive(Template)]
#[template(path = "users.html")]
struct ListPage {
    layout: Layout,
    q: String,
    active: String,
    staff: String,
    online: String,
    users: Vec<UserView>,
    pager: Pager,
}

async fn list(
    State(admin): State<Admin>,
    staff: Staff,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult<Response> {
    let get = |key| html::param(&query, key);
    let (q, active, staff_flag, online) = (get("q"), get("active"), get("staff"), get("online"));
    let filter = UserFilter {
        terms: q.split_whitespace().map(str::to_string).collect(),
        active: html::yes_no(query.get("active")),
        staff: html::yes_no(query.get("staff")),
        online: html::yes_no(query.get("online")),
    };
    let page = html::page_number(query.get("page"));
    let found = admin
        .accounts()
        .find_users(&filter, html::PAGE_SIZE, html::offset(page))
        .await?;
    let pager = Pager::new(
        "/admin/users/",
        &[
            ("q", &q),
            ("active", &active),
            ("staff", &staff_flag),
            ("online", &online),
        ],
        page,
        found.total,
    );
    Ok(render(
        StatusCode::OK,
        &ListPage {
            layout: Layout::new(&staff, "users", "Users").notice(query.get("notice").map(String::as_str)),
            users: found.users.iter().map(UserView::of).collect(),
            q,
            active,
            staff: staff_flag,
            online,
            pager,
        },
    ))
}

#[derive(Template)]
#[template(path = "user_new.html")]
struct NewPage {
    layout: Layout,
    may_grant_superuser: bool,
    form: CreateForm,
    errors: FormErrors,
}

#[derive(Deserialize, Default)]
struct CreateForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm_password: String,
    #[serde(default)]
    is_staff: Option<String>,
    #[serde(default)]
    is_superuser: Option<String>,
}

fn new_page(staff: &Staff, form: CreateForm, errors: FieldErrors) -> NewPage {
    NewPage {
        layout: Layout::new(staff, "users", "New user"),
        may_grant_superuser: staff.user.is_superuser,
        // Passwords are never sent back.
        form: CreateForm {
            password: String::new(),
            confirm_password: String::new(),
            ..form
        },
        errors: FormErrors::from_fields(errors),
    }
}

async fn new_form(staff: Staff) -> Response {
    render(
        StatusCode::OK,
        &new_page(&staff, CreateForm::default(), FieldErrors::new()),
    )
}

async fn create(State(admin): State<Admin>, Posted { staff, form }: Posted<CreateForm>) -> AdminResult<Response> {
    if form.password != form.confirm_password {
        let errors = crate::validation::field_error("confirm_password", "The two password fields didn’t match.");
        return Ok(render(StatusCode::BAD_REQUEST, &new_page(&staff, form, errors)));
    }
    let new = NewAccount {
        email: form.email.clone(),
        password: form.password.clone(),
        first_name: form.first_name.clone(),
        last_name: form.last_name.clone(),
        is_staff: form.is_staff.is_some(),
        is_superuser: form.is_superuser.is_some(),
    };
    match admin.create_user(&staff, new).await {
        Ok(user) => Ok(Redirect::to(&format!("/admin/users/{}/?notice=user_created", user.id)).into_response()),
        Err(AdminError::Invalid(errors)) => Ok(render(StatusCode::BAD_REQUEST, &new_page(&staff, form, errors))),
        Err(other) => Err(other),
    }
}

#[derive(Template)]
#[template(path = "user.html")]
struct DetailPage {
    layout: Layout,
    user: UserView,
    /// The signed-in staff member may change this account at all.
    may_manage: bool,
    may_grant_superuser: bool,
    is_self: bool,
    /// The names shown in the edit form (what was submitted, after an error).
    first_name: String,
    last_name: String,
    errors: FormErrors,
    password_errors: FormErrors,
    /// Their push devices (the first page), the forms' way back, and their id for the test
    /// push form.
    devices: Vec<DeviceView>,
    device_total: i64,
    here: String,
    user_id: String,
}

async fn detail_page(admin: &Admin, staff: &Staff, user: &UserRow, notice: Option<&str>) -> AdminResult<DetailPage> {
    let device_total = admin.push().count_devices(user.id).await?;
    let devices = admin.push().devices(user.id, html::PAGE_SIZE, 0).await?;
    let owners = HashMap::from([(user.id, user.clone())]);
    Ok(DetailPage {
        layout: Layout::new(staff, "users", user.email.clone()).notice(notice),
        user: UserView::of(user),
        may_manage: !user.is_superuser || staff.user.is_superuser,
        may_grant_superuser: staff.user.is_superuser,
        is_self: user.id == staff.user.id,
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        errors: FormErrors::default(),
        password_errors: FormErrors::default(),
        devices: devices.iter().map(|d| DeviceView::of(d, &owners)).collect(),
        device_total,
        here: format!("/admin/users/{}/", user.id),
        user_id: user.id.to_string(),
    })
}

async fn load(admin: &Admin, id: &str) -> AdminResult<UserRow> {
    admin.accounts().user(user_id(id)?).await?.ok_or(AdminError::NotFound)
}

async fn detail(
    State(admin): State<Admin>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult<Response> {
    let user = load(&admin, &id).await?;
    Ok(render(
        StatusCode::OK,
        &detail_page(&admin, &staff, &user, query.get("notice").map(String::as_str)).await?,
    ))
}

/// The edit form. A flag's checkbox is only sent when it may be changed: its `set_*` companion
/// says it was on the form, so an absent checkbox then means "off" rather than "not shown".
#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    set_active: Option<String>,
    #[serde(default)]
    is_active: Option<String>,
    #[serde(default)]
    set_staff: Option<String>,
    #[serde(default)]
    is_staff: Option<String>,
    #[serde(default)]
    set_superuser: Option<String>,
    #[serde(default)]
    is_superuser: Option<String>,
}

async fn edit(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Posted { staff, form }: Posted<EditForm>,
) -> AdminResult<Response> {
    let user = load(&admin, &id).await?;
    let flag = |shown: &Option<String>, checked: &Option<String>, current: bool| {
        if shown.is_some() {
            checked.is_some()
        } else {
            current
        }
    };
    let change = AccountChange {
        first_name: form.first_name.clone(),
        last_name: form.last_name.clone(),
        is_active: flag(&form.set_active, &form.is_active, user.is_active),
        is_staff: flag(&form.set_staff, &form.is_staff, user.is_staff),
        is_superuser: flag(&form.set_superuser, &form.is_superuser, user.is_superuser),
    };
    match admin.change_user(&staff, user.id, change).await {
        Ok(changed) => {
            let notice = if user.is_active && !changed.is_active {
                "user_deactivated"
            } else {
                "user_saved"
            };
            Ok(Redirect::to(&format!("/admin/users/{}/?notice={notice}", user.id)).into_response())
        }
        Err(AdminError::Invalid(errors)) => {
            let mut page = detail_page(&admin, &staff, &user, None).await?;
            page.first_name = form.first_name;
            page.last_name = form.last_name;
            page.errors = FormErrors::from_fields(errors);
            Ok(render(StatusCode::BAD_REQUEST, &page))
        }
        Err(other) => Err(other),
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

async fn set_password(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Posted { staff, form }: Posted<PasswordForm>,
) -> AdminResult<Response> {
    let user = load(&admin, &id).await?;
    let result = if form.new_password != form.confirm_password {
        Err(AdminError::field(
            "confirm_password",
            "The two password fields didn’t match.",
        ))
    } else {
        admin.set_password(&staff, user.id, form.new_password).await
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/admin/users/{}/?notice=password_set", user.id)).into_response()),
        Err(AdminError::Invalid(errors)) => {
            let mut page = detail_page(&admin, &staff, &user, None).await?;
            page.password_errors = FormErrors::from_fields(errors);
            Ok(render(StatusCode::BAD_REQUEST, &page))
        }
        Err(other) => Err(other),
    }
}

async fn deactivate(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Posted { staff, .. }: Posted<Confirm>,
) -> AdminResult<Response> {
    let id = user_id(&id)?;
    admin.set_active(&staff, id, false).await?;
    Ok(Redirect::to(&format!("/admin/users/{id}/?notice=user_deactivated")).into_response())
}

async fn activate(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Posted { staff, .. }: Posted<Confirm>,
) -> AdminResult<Response> {
    let id = user_id(&id)?;
    admin.set_active(&staff, id, true).await?;
    Ok(Redirect::to(&format!("/admin/users/{id}/?notice=user_activated")).into_response())
}

#[derive(Template)]
#[template(path = "user_delete.html")]
struct DeletePage {
    layout: Layout,
    user: UserView,
}

async fn confirm_delete(State(admin): State<Admin>, staff: Staff, Path(id): Path<String>) -> AdminResult<Response> {
    let user = load(&admin, &id).await?;
    Ok(render(
        StatusCode::OK,
        &DeletePage {
            layout: Layout::new(&staff, "users", format!("Delete {}", user.email)),
            user: UserView::of(&user),
        },
    ))
}

async fn delete(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Posted { staff, .. }: Posted<Confirm>,
) -> AdminResult<Response> {
    admin.delete_user(&staff, user_id(&id)?).await?;
    Ok(Redirect::to("/admin/users/?notice=user_deleted").into_response())
}
