//! The admin site's sections, in menu order: the one list the menu is drawn from. An area
//! added later adds its entry here, merges its routes in `admin::router` and, for the
//! dashboard, adds its figures in `dashboard::figures`.

pub(crate) struct Section {
    /// What pages of the section name as their `section` (the menu highlights it).
    pub key: &'static str,
    pub label: &'static str,
    pub href: &'static str,
}

pub(crate) const SECTIONS: &[Section] = &[
    Section {
        key: "dashboard",
        label: "Dashboard",
        href: "/admin/",
    },
    Section {
        key: "users",
        label: "Users",
        href: "/admin/users/",
    },
    Section {
        key: "chats",
        label: "Chats",
        href: "/admin/chats/",
    },
    Section {
        key: "messages",
        label: "Messages",
        href: "/admin/messages/",
    },
    Section {
        key: "devices",
        label: "Devices",
        href: "/admin/devices/",
    },
    Section {
        key: "attachments",
        label: "Attachments",
        href: "/admin/attachments/",
    },
    Section {
        key: "audit",
        label: "Audit log",
        href: "/admin/audit/",
    },
];

/// Short confirmations shown after a redirect (`?notice=KEY`). Only these fixed texts can be
/// shown, so a crafted link cannot put words on the page.
pub(crate) fn notice(key: &str) -> Option<&'static str> {
    Some(match key {
        "user_created" => "The user was created.",
        "user_saved" => "The changes were saved.",
        "user_deactivated" => "The user was deactivated: their sockets were closed and their tokens no longer work.",
        "user_activated" => "The user was reactivated.",
        "password_set" => "The password was changed.",
        "user_deleted" => "The user was deleted.",
        "chat_created" => "The chat was created.",
        "chat_existing" => "These two users already had a chat: here it is.",
        "group_created" => "The group was created.",
        "message_deleted" => "The message was deleted.",
        "device_deactivated" => "The device was deactivated: nothing is pushed to it any more.",
        "device_activated" => "The device was reactivated.",
        "attachment_deleted" => "The attachment was deleted and removed from the messages that carried it.",
        "signed_out" => "You are signed out.",
        _ => return None,
    })
}
