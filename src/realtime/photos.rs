//! The finished app's photos: a v1 frame of type 2 whose `extraData` is a base64 `data:` URL.
//! The photo is taken out of the frame before the frame is read (it may be far larger than
//! `extraData` may be), then `Chats::submit_photo` stores it as an attachment, and the message
//! carries that instead: the app renders the signed URL it gets back as it rendered the data URL.

use serde_json::Value;

use crate::chats::{is_data_url, DATA_URL_STAND_IN};
use crate::wire::parse::Object;

/// Takes the `data:` URL out of a photo frame, leaving a short stand-in.
pub(crate) fn take_data_url(frame: &mut Object) -> Option<String> {
    if frame.get("type").and_then(Value::as_i64) != Some(2) {
        return None;
    }
    match frame.get_mut("extraData")? {
        Value::String(url) if is_data_url(url) => Some(std::mem::replace(url, DATA_URL_STAND_IN.into())),
        _ => None,
    }
}
