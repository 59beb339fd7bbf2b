//! The first step of reading an inbound frame, and the field readers the second step shares:
//! each refusal carries the protocol's code and the detail docs/protocol.md promises.

use std::str::FromStr;

use serde_json::{Map, Value};

use super::ErrorBody;
use crate::chats::Draft;
use crate::http::Fields;

/// An inbound frame once it is known to be a JSON object.
pub(crate) type Object = Map<String, Value>;

/// Reads a text frame as a JSON object: `invalid_json`, or `invalid_frame` for any other value.
pub(crate) fn parse_object(text: &str) -> Result<Object, ErrorBody> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ErrorBody::new("invalid_frame", "A frame must be a JSON object.")),
        Err(err) => Err(ErrorBody::new("invalid_json", format!("JSON parse error - {err}"))),
    }
}

/// A required id (`chat`, `id`, `user`, `messageId`): absent or null is `missing_field`,
/// anything but a uuid string `invalid_field`.
pub(crate) fn required_id<T: FromStr>(frame: &Object, field: &'static str) -> Result<T, ErrorBody> {
    match frame.get(field) {
        None | Some(Value::Null) => Err(missing(field)),
        Some(value) => value
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ErrorBody::new("invalid_field", format!("\"{field}\" must be a uuid."))),
    }
}

/// An optional sequence number: absent or null is None, anything but an integer `invalid_field`.
pub(crate) fn optional_seq(frame: &Object, field: &'static str) -> Result<Option<i64>, ErrorBody> {
    match frame.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| ErrorBody::new("invalid_field", format!("\"{field}\" must be an integer."))),
    }
}

/// True when the frame has `field` with a value other than null.
pub(crate) fn has_value(frame: &Object, field: &str) -> bool {
    frame.get(field).is_some_and(|value| !value.is_null())
}

pub(crate) fn missing(field: &str) -> ErrorBody {
    ErrorBody::new("missing_field", format!("\"{field}\" is required."))
}

/// A message's fields (`message`, `type`, `extraData`, `clientId`) read as REST bodies read
/// them, every field's errors at once in one `invalid_frame`. The rules that give a message
/// refusal its own code (`empty_message`, `message_too_long`, …) are the chat service's
/// (`Draft::check`), applied after.
pub(crate) fn read_draft(frame: &Object, max_extra: usize) -> Result<Draft, ErrorBody> {
    let mut fields = Fields::new(frame);
    let draft = Draft::read(&mut fields, max_extra);
    fields
        .finish()
        .map_err(|err| ErrorBody::new("invalid_frame", field_errors_text(err)))?;
    Ok(draft)
}

/// Field errors as one line for an error frame's detail.
pub(crate) fn field_errors_text(err: crate::error::ApiError) -> String {
    match err {
        crate::error::ApiError::Validation(errors) => crate::validation::describe(&errors),
        other => other.to_string(),
    }
}

/// A message with the fields a frame left out at their defaults: type 0 (text) and, as in the
/// seed, `extraData` `""`.
pub(crate) fn draft(
    text: String,
    kind: Option<i32>,
    extra_data: Option<Option<String>>,
    client_id: Option<String>,
) -> Draft {
    Draft {
        text,
        kind: kind.unwrap_or_default(),
        extra_data: extra_data.unwrap_or_else(|| Some(String::new())),
        client_id,
        ..Draft::default()
    }
}
