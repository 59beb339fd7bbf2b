//! Field-level refusals as DRF's serializers report them (`{"field": ["message", …]}`): shared
//! by the domain services that decide and the HTTP layer that renders.

use indexmap::IndexMap;

/// Field name → messages, in the order the fields were read: a DRF serializer reports its
/// errors in its fields' order.
pub(crate) type FieldErrors = IndexMap<String, Vec<String>>;

pub(crate) const REQUIRED: &str = "This field is required.";
pub(crate) const BLANK: &str = "This field may not be blank.";

/// One field, one message.
pub(crate) fn field_error(field: &str, message: impl Into<String>) -> FieldErrors {
    FieldErrors::from([(field.to_string(), vec![message.into()])])
}

/// The errors as one line, for a terminal or a WebSocket error frame.
pub(crate) fn describe(errors: &FieldErrors) -> String {
    errors
        .iter()
        .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}
