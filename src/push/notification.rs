//! What a push shows: built once per coalesced push, then shaped by each provider.

use std::collections::BTreeMap;

use crate::ids::ChatId;

/// A notification as every provider sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Notification {
    pub title: String,
    pub body: String,
    /// The recipient's unread total.
    pub badge: i64,
    /// Notifications with one key replace each other on the device (one per chat).
    pub collapse_key: String,
    /// String pairs the app reads (`chat`, `message`, `count`).
    pub data: BTreeMap<String, String>,
}

/// One message of a push, as its job found it.
pub(crate) struct Shown<'a> {
    pub chat: ChatId,
    pub message: String,
    pub sender: &'a str,
    pub group_title: Option<&'a str>,
    pub kind: i32,
    pub text: &'a str,
}

/// The body of a single message: its text (when previews are on), or a label.
fn body_of(shown: &Shown<'_>, preview: bool) -> String {
    match shown.kind {
        1 => "📍 Location".into(),
        2 => "📷 Photo".into(),
        _ if !preview => "New message".into(),
        _ => {
            let text: String = shown.text.chars().take(200).collect();
            if text.trim().is_empty() {
                "New message".into()
            } else {
                text
            }
        }
    }
}

impl Notification {
    /// The push for `messages` (oldest first, at least one) to a user with `badge` unread.
    pub(crate) fn for_messages(messages: &[Shown<'_>], badge: i64, preview: bool) -> Option<Notification> {
        let last = messages.last()?;
        let one_chat = messages.iter().all(|m| m.chat == last.chat);
        let title = match (one_chat, last.group_title) {
            (true, Some(group)) => group.to_string(),
            (true, None) => last.sender.to_string(),
            (false, _) => "Causerie".to_string(),
        };
        let body = match (messages.len(), last.group_title) {
            (1, Some(_)) => format!("{}: {}", last.sender, body_of(last, preview)),
            (1, None) => body_of(last, preview),
            (n, _) => format!("{n} new messages"),
        };
        let mut data = BTreeMap::new();
        data.insert("chat".to_string(), last.chat.to_string());
        data.insert("message".to_string(), last.message.clone());
        data.insert("count".to_string(), messages.len().to_string());
        Some(Notification {
            title,
            body,
            badge,
            collapse_key: last.chat.to_string(),
            data,
        })
    }

    /// `causerie push test`'s notification.
    pub(crate) fn test() -> Notification {
        Notification {
            title: "Causerie".into(),
            body: "This is a test notification.".into(),
            badge: 0,
            collapse_key: "causerie-test".into(),
            data: BTreeMap::from([("test".to_string(), "true".to_string())]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown<'a>(chat: ChatId, text: &'a str, kind: i32, group: Option<&'a str>) -> Shown<'a> {
        Shown {
            chat,
            message: "m".into(),
            sender: "Alice Martin",
            group_title: group,
            kind,
            text,
        }
    }

    #[test]
    fn one_message_shows_its_sender_and_text_or_a_label() {
        let chat = ChatId::new();
        let n = Notification::for_messages(&[shown(chat, "hello", 0, None)], 3, true).unwrap();
        assert_eq!(
            (n.title.as_str(), n.body.as_str(), n.badge),
            ("Alice Martin", "hello", 3)
        );
        assert_eq!(n.collapse_key, chat.to_string());
        let hidden = Notification::for_messages(&[shown(chat, "hello", 0, None)], 1, false).unwrap();
        assert_eq!(hidden.body, "New message");
        let photo = Notification::for_messages(&[shown(chat, "", 2, None)], 1, true).unwrap();
        assert_eq!(photo.body, "📷 Photo");
        let group = Notification::for_messages(&[shown(chat, "hi all", 0, Some("Team"))], 1, true).unwrap();
        assert_eq!(
            (group.title.as_str(), group.body.as_str()),
            ("Team", "Alice Martin: hi all")
        );
    }

    #[test]
    fn several_messages_become_one_count() {
        let chat = ChatId::new();
        let batch = [
            shown(chat, "a", 0, None),
            shown(chat, "b", 0, None),
            shown(chat, "c", 0, None),
        ];
        let n = Notification::for_messages(&batch, 7, true).unwrap();
        assert_eq!((n.title.as_str(), n.body.as_str()), ("Alice Martin", "3 new messages"));
        assert_eq!(n.data["count"], "3");
        let mixed = [shown(chat, "a", 0, None), shown(ChatId::new(), "b", 0, None)];
        assert_eq!(Notification::for_messages(&mixed, 2, true).unwrap().title, "Causerie");
        assert!(Notification::for_messages(&[], 0, true).is_none());
    }
}
