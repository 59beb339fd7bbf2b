//! How a stored message refers to its attachments. Attachments never change once stored, so a
//! message keeps what its JSON shows of them in its own `extra_data`, behind a marker:
//! rendering a message (REST, sockets, the chat list) then needs no query, and the signed URLs
//! are made at that moment, so none is ever stored to expire in a row. A client never gets
//! the marker: its URLs replace it, and a client's own `extraData` that starts with it is
//! refused (`chats`), so nobody can name an attachment they may not read.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::error::{MediaError, MediaResult};
use crate::ids::AttachmentId;
use crate::store::attachments::AttachmentRow;

pub(crate) const MARKER: &str = "causerie:attachments:";

/// What a message keeps of one attachment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct AttachmentRef {
    pub id: AttachmentId,
    #[serde(rename = "type")]
    pub content_type: String,
    pub name: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h: Option<i32>,
    #[serde(default)]
    pub thumb: bool,
}

impl From<&AttachmentRow> for AttachmentRef {
    fn from(row: &AttachmentRow) -> AttachmentRef {
        AttachmentRef {
            id: row.id,
            content_type: row.content_type.clone(),
            name: row.name.clone(),
            size: row.size,
            w: row.width,
            h: row.height,
            thumb: row.thumb_size.is_some(),
        }
    }
}

/// The `extra_data` a message carrying `rows` is stored with.
pub(crate) fn encode(rows: &[AttachmentRow]) -> String {
    let refs: Vec<AttachmentRef> = rows.iter().map(AttachmentRef::from).collect();
    encode_refs(&refs)
}

/// The `extra_data` of a message carrying `refs`.
pub(crate) fn encode_refs(refs: &[AttachmentRef]) -> String {
    format!(
        "{MARKER}{}",
        serde_json::to_string(&refs).unwrap_or_else(|_| "[]".into())
    )
}

pub(crate) fn is_marked(extra: &str) -> bool {
    extra.starts_with(MARKER)
}

/// The attachments a stored `extra_data` refers to (None: it refers to none).
pub(crate) fn decode(extra: &str) -> Option<Vec<AttachmentRef>> {
    serde_json::from_str(extra.strip_prefix(MARKER)?).ok()
}

/// The bytes of a base64 `data:` URL, refused (413) when they would exceed `max` bytes, before
/// they are decoded.
pub(crate) fn decode_data_url(url: &str, max: u64) -> MediaResult<Vec<u8>> {
    let rest = url.trim().strip_prefix("data:").ok_or(MediaError::BadImage)?;
    let (meta, data) = rest.split_once(',').ok_or(MediaError::BadImage)?;
    if !meta.split(';').any(|part| part.trim().eq_ignore_ascii_case("base64")) {
        return Err(MediaError::BadImage);
    }
    if (data.len() as u64 / 4).saturating_mul(3) > max.saturating_add(3) {
        return Err(MediaError::TooLarge { max });
    }
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.trim_end_matches('=').as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.trim_end_matches('=')))
        .map_err(|_| MediaError::BadImage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_decode() {
        assert_eq!(decode_data_url("data:image/png;base64,aGk=", 10).unwrap(), b"hi");
        assert_eq!(decode_data_url("data:image/png;base64,aGk", 10).unwrap(), b"hi");
        assert!(matches!(
            decode_data_url("data:image/png,hi", 10),
            Err(MediaError::BadImage)
        ));
        assert!(matches!(
            decode_data_url("http://x/y.png", 10),
            Err(MediaError::BadImage)
        ));
        assert!(matches!(
            decode_data_url("data:image/png;base64,aGVsbG8gd29ybGQgaGVsbG8=", 4),
            Err(MediaError::TooLarge { max: 4 })
        ));
    }

    #[test]
    fn markers_round_trip() {
        let r = AttachmentRef {
            id: AttachmentId::new(),
            content_type: "image/png".into(),
            name: "a.png".into(),
            size: 3,
            w: Some(1),
            h: Some(2),
            thumb: true,
        };
        let text = format!("{MARKER}{}", serde_json::to_string(&[r.clone()]).unwrap());
        assert!(is_marked(&text));
        assert_eq!(decode(&text), Some(vec![r]));
        assert_eq!(decode("data:image/png;base64,aGk="), None);
    }
}
