//! The dashboard: the figures an operator looks at first. Each area contributes its figures in
//! [`figures`]; the template only lists them.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::error::AdminResult;
use super::html::{self, render, Layout};
use super::service::{Admin, Staff};

/// One figure on the dashboard, with where to look closer.
pub(crate) struct Figure {
    pub label: &'static str,
    pub value: String,
    pub note: &'static str,
    pub href: Option<&'static str>,
}

/// Every area's figures, in order. An area added later appends its own here.
async fn figures(admin: &Admin) -> AdminResult<Vec<Figure>> {
    let mut figures = vec![
        Figure {
            label: "Users",
            value: admin.accounts().count_users().await?.to_string(),
            note: "accounts, active or not",
            href: Some("/admin/users/"),
        },
        Figure {
            label: "Chats",
            value: admin.chats().count_all_chats().await?.to_string(),
            note: "two-person chats and groups",
            href: Some("/admin/chats/"),
        },
        Figure {
            label: "Messages today",
            value: admin
                .chats()
                .count_messages_since(Admin::today_start())
                .await?
                .to_string(),
            note: "since midnight UTC",
            href: Some("/admin/messages/"),
        },
        Figure {
            label: "Open sockets",
            value: admin.realtime().open_sockets().to_string(),
            note: "on this instance",
            href: None,
        },
    ];
    let (attachments, stored) = admin.media().totals().await?;
    figures.push(Figure {
        label: "Push outbox",
        value: admin.push().outbox_depth().await?.to_string(),
        note: if admin.push().enabled() {
            "pushes waiting to be sent"
        } else {
            "push is off on this server"
        },
        href: Some("/admin/devices/"),
    });
    figures.push(Figure {
        label: "Attachments",
        value: attachments.to_string(),
        note: "files stored",
        href: Some("/admin/attachments/"),
    });
    figures.push(Figure {
        label: "Bytes stored",
        value: html::bytes(stored),
        note: "attachments and thumbnails",
        href: Some("/admin/attachments/"),
    });
    if admin.realtime().fanout().uses_redis() {
        figures.push(Figure {
            label: "Instances",
            value: match admin.realtime().live_instances().await {
                Some(count) => count.to_string(),
                None => "Redis does not answer".into(),
            },
            note: "live, sharing this Redis",
            href: None,
        });
    }
    Ok(figures)
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    figures: Vec<Figure>,
}

pub(crate) async fn show(State(admin): State<Admin>, staff: Staff) -> AdminResult<Response> {
    Ok(render(
        StatusCode::OK,
        &DashboardPage {
            layout: Layout::new(&staff, "dashboard", "Dashboard"),
            figures: figures(&admin).await?,
        },
    ))
}
