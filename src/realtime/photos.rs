//! The finished app's photos: a v1 frame of type 2 whose `extraData` is a base64 `data:` URL.
//! The photo is taken out of the frame before the frame is read (it may be far larger than
//! `extraData` may be), then stored as an attachment, and the message carries that instead:
//! the app renders the signed URL it gets back as it rendered the data URL.

use serde_json::Value;

use crate::chats::Draft;
use crate::wire::parse::Object;

/// What stands in for the photo while the rest of the frame is checked.
const STAND_IN: &str = "data:";

/// A photo taken out of a frame.
pub(crate) struct DataUrlPhoto(String);

impl DataUrlPhoto {
    /// The frame's draft with the photo back in, for `Chats::submit_photo`.
    pub(crate) fn into_draft(self, draft: Draft) -> Draft {
        Draft {
            extra_data: Some(self.0),
            ..draft
        }
    }
}

/// Takes the `data:` URL out of a photo frame, leaving a short stand-in.
pub(crate) fn take_data_url(frame: &mut Object) -> Option<DataUrlPhoto> {
    if frame.get("type").and_then(Value::as_i64) != Some(2) {
        return None;
    }
    let extra = frame.get_mut("extraData")?;
    match extra {
        Value::String(url) if url.trim_start().starts_with("data:") => {
            let url = std::mem::replace(url, STAND_IN.into());
            Some(DataUrlPhoto(url))
        }
        _ => None,
    }
}
