//! The message rules: what a client may submit as a message, before anything is stored. REST
//! bodies, v1 frames and v2 `send` frames all end up as a [`Draft`] checked here.

use crate::http::Fields;
use crate::ids::AttachmentId;
use crate::validation::BLANK;

pub(crate) const TEXT: i32 = 0;
pub(crate) const PHOTO: i32 = 2;
/// Longest message text, in characters.
pub(crate) const MESSAGE_MAX_CHARS: usize = 10_000;
/// Longest `clientId` a client may choose.
pub(crate) const CLIENT_ID_MAX: usize = 64;
/// Most attachments one message carries.
pub(crate) const ATTACHMENTS_MAX: usize = 10;
/// What stands in for a photo's `data:` URL while the rest of its message is checked.
pub(crate) const DATA_URL_STAND_IN: &str = "data:";

/// True for what the finished app sends as a photo's `extraData`: the picture as a `data:` URL.
pub(crate) fn is_data_url(extra: &str) -> bool {
    extra.trim_start().starts_with("data:")
}

/// Why a message was refused, with a stable code for WebSocket error frames and the field a
/// REST client sees it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: &'static str,
    pub field: &'static str,
    pub detail: String,
}

impl Refusal {
    fn new(code: &'static str, field: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal {
            code,
            field,
            detail: detail.into(),
        }
    }
}

/// A message as a client submitted it, before the rules ran. The schema names the body fields
/// [`Draft::read`] reads.
#[derive(Debug, Clone, Default, utoipa::ToSchema)]
pub(crate) struct Draft {
    /// The text; may be blank for a location or photo that carries `extraData`.
    #[schema(rename = "message", max_length = 10_000)]
    pub text: String,
    /// 0 text (the default), 1 geolocation, 2 photo.
    #[schema(rename = "type", required = false, minimum = 0, maximum = 2)]
    pub kind: i32,
    /// Coordinates `lat,lon` or an attachment; `""` when left out.
    #[schema(rename = "extraData")]
    pub extra_data: Option<String>,
    /// The client's own id for the message: a retry with the same id is not stored twice.
    #[schema(rename = "clientId", min_length = 1, max_length = 64, nullable = false)]
    pub client_id: Option<String>,
    /// Ids of the caller's uploads (`POST /api/attachments/`) the message carries; the message
    /// is then a photo (type 2) whose `extraData` is the first one's URL.
    #[schema(rename = "attachments", max_items = 10, required = false)]
    pub attachments: Vec<AttachmentId>,
    /// What `extraData` is stored as once the attachments are checked (`Chats::attach`): only
    /// the server sets this.
    #[schema(ignore)]
    pub linked: Option<String>,
}

impl Draft {
    /// Applies the message rules: known type, non-blank text (or, for a location or photo, its
    /// data), bounded sizes.
    pub(crate) fn check(&self, max_extra: usize) -> Result<(), Refusal> {
        if !(TEXT..=PHOTO).contains(&self.kind) {
            return Err(Refusal::new(
                "invalid_type",
                "type",
                format!("\"{}\" is not a valid choice.", self.kind),
            ));
        }
        if self.text.chars().count() > MESSAGE_MAX_CHARS {
            return Err(Refusal::new(
                "message_too_long",
                "message",
                format!("Ensure this field has no more than {MESSAGE_MAX_CHARS} characters."),
            ));
        }
        if self.extra_data.as_deref().is_some_and(crate::media::refs::is_marked) {
            return Err(Refusal::new(
                "invalid_extra_data",
                "extraData",
                "This value is reserved; send attachment ids in \"attachments\".",
            ));
        }
        if !self.attachments.is_empty() && !(self.kind == TEXT || self.kind == PHOTO) {
            return Err(Refusal::new(
                "invalid_attachments",
                "attachments",
                "Only a text or photo message can carry attachments.",
            ));
        }
        if self.attachments.len() > ATTACHMENTS_MAX {
            return Err(Refusal::new(
                "invalid_attachments",
                "attachments",
                format!("Ensure this field has no more than {ATTACHMENTS_MAX} elements."),
            ));
        }
        let has_extra = self.extra_data.as_deref().is_some_and(|e| !e.trim().is_empty())
            || self.linked.is_some()
            || !self.attachments.is_empty();
        if self.kind == TEXT && self.text.trim().is_empty() && self.attachments.is_empty() {
            return Err(Refusal::new("empty_message", "message", BLANK));
        }
        if self.kind != TEXT && !has_extra && self.text.trim().is_empty() {
            return Err(Refusal::new("empty_message", "extraData", BLANK));
        }
        if self.extra_data.as_deref().is_some_and(|e| e.len() > max_extra) {
            return Err(Refusal::new(
                "extra_data_too_long",
                "extraData",
                "Ensure this field is not too long.",
            ));
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.chars().count() > CLIENT_ID_MAX {
                return Err(Refusal::new(
                    "invalid_client_id",
                    "clientId",
                    format!("Ensure this field has 1 to {CLIENT_ID_MAX} characters."),
                ));
            }
        }
        Ok(())
    }

    /// Takes the `data:` URL out of a photo (the finished app's), leaving a stand-in: the
    /// photo is stored as an attachment (`Chats::submit_photo`) and the message carries that.
    pub(crate) fn take_data_url(&mut self) -> Option<String> {
        if self.kind != PHOTO || !self.attachments.is_empty() || self.linked.is_some() {
            return None;
        }
        match &mut self.extra_data {
            Some(extra) if is_data_url(extra) => Some(std::mem::replace(extra, DATA_URL_STAND_IN.into())),
            _ => None,
        }
    }

    /// Reads a draft from a body or a frame (REST and v1 frames share the field names); field
    /// errors stay in `f` for the caller to report.
    pub(crate) fn read(f: &mut Fields<'_>, max_extra: usize) -> Draft {
        // The length is checked by `check`, whose refusal carries the stable code
        // `message_too_long` that socket clients get (a cap here would turn it into `invalid_frame`).
        let text = f.optional_raw_str("message", usize::MAX).unwrap_or_default();
        let kind = f.optional_int("type").unwrap_or(0);
        // Absent means "" as in the seed; an explicit null stays null.
        let extra_data = match f.optional_nullable_str("extraData", max_extra) {
            None => Some(String::new()),
            Some(value) => value,
        };
        let client_id = f.optional_str("clientId", CLIENT_ID_MAX);
        let attachments = f
            .optional_id_list(
                "attachments",
                ATTACHMENTS_MAX,
                "Expected a list of at most 10 attachment ids.",
            )
            .unwrap_or_default();
        Draft {
            text,
            kind: kind.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            extra_data,
            client_id,
            attachments,
            linked: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(extra: &str) -> Draft {
        Draft {
            kind: PHOTO,
            extra_data: Some(extra.into()),
            ..Draft::default()
        }
    }

    #[test]
    fn only_a_photo_gives_up_its_data_url() {
        let mut draft = photo("data:image/png;base64,aGk=");
        assert_eq!(draft.take_data_url().as_deref(), Some("data:image/png;base64,aGk="));
        assert_eq!(draft.extra_data.as_deref(), Some(DATA_URL_STAND_IN));
        assert!(draft.check(100).is_ok(), "the stand-in passes the rules");

        let mut text = Draft {
            kind: TEXT,
            ..photo("data:image/png;base64,aGk=")
        };
        assert_eq!(text.take_data_url(), None);
        let mut linked = photo("https://chat.example/api/attachments/x/file/");
        assert_eq!(linked.take_data_url(), None);
        let mut named = Draft {
            attachments: vec![AttachmentId::new()],
            ..photo("data:image/png;base64,aGk=")
        };
        assert_eq!(
            named.take_data_url(),
            None,
            "attachments named: the extra is left alone"
        );
    }
}
