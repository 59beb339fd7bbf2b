//! How an attachment looks on the wire.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::refs::AttachmentRef;
use super::{Media, Variant};
use crate::ids::AttachmentId;
use crate::store::attachments::AttachmentRow;

/// An attachment: its signed download URLs (valid `media_url_ttl_secs`), its sniffed type and
/// size, and for images their size in pixels.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Attachment)]
pub struct AttachmentView {
    pub id: AttachmentId,
    /// The file, signed: usable as `<img src>` without a token until it expires.
    pub url: String,
    /// A thumbnail (images only), signed like `url`.
    #[schema(required = true)]
    pub thumbnail_url: Option<String>,
    /// The type sniffed from the bytes.
    pub content_type: String,
    pub name: String,
    /// Bytes of the file as served.
    pub size: i64,
    #[schema(required = true)]
    pub width: Option<i32>,
    #[schema(required = true)]
    pub height: Option<i32>,
}

impl Media {
    pub(crate) fn view(&self, row: &AttachmentRow) -> AttachmentView {
        self.view_of(&AttachmentRef::from(row))
    }

    pub(crate) fn view_of(&self, r: &AttachmentRef) -> AttachmentView {
        let signer = self.signer();
        AttachmentView {
            id: r.id,
            url: signer.url(r.id, Variant::Original),
            thumbnail_url: r.thumb.then(|| signer.url(r.id, Variant::Thumbnail)),
            content_type: r.content_type.clone(),
            name: r.name.clone(),
            size: r.size,
            width: r.w,
            height: r.h,
        }
    }
}
