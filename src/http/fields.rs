//! Reading fields out of a body with DRF's exact error messages, collecting every field's
//! errors before answering (as a DRF serializer does).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::validation::{FieldErrors, REQUIRED};

pub(crate) struct Fields<'a> {
    body: &'a Map<String, Value>,
    /// The body was form data: a key sent more than once is an array of its strings, read as
    /// a list by the list readers and as its last value by the others (Django's `QueryDict`),
    /// and an empty value of a nullable field is null (DRF's rule for HTML input).
    form: bool,
    errors: FieldErrors,
    /// Every field name a reader asked for, so tests can hold a body type's documented
    /// properties against what it really reads.
    #[cfg(test)]
    pub(crate) asked: Vec<String>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(body: &'a Map<String, Value>) -> Fields<'a> {
        Fields::with_origin(body, false)
    }

    /// The fields of a form body (see `form`).
    pub(crate) fn from_form(body: &'a Map<String, Value>) -> Fields<'a> {
        Fields::with_origin(body, true)
    }

    fn with_origin(body: &'a Map<String, Value>, form: bool) -> Fields<'a> {
        Fields {
            body,
            form,
            errors: FieldErrors::new(),
            #[cfg(test)]
            asked: Vec::new(),
        }
    }

    /// The raw value of a field as a list reader sees it; every reader goes through here.
    fn list_value(&mut self, field: &str) -> Option<&'a Value> {
        #[cfg(test)]
        self.asked.push(field.to_string());
        self.body.get(field)
    }

    /// The raw value of a single-valued field: a repeated form key gives its last value.
    fn value(&mut self, field: &str) -> Option<&'a Value> {
        match self.list_value(field)? {
            Value::Array(items) if self.form => items.last(),
            value => Some(value),
        }
    }

    /// Like `value`, for a field that may be null: in form data an empty value is null.
    fn nullable_value(&mut self, field: &str) -> Option<&'a Value> {
        match self.value(field)? {
            Value::String(s) if self.form && s.is_empty() => Some(&Value::Null),
            value => Some(value),
        }
    }

    #[cfg(test)]
    pub(crate) fn errors(&self) -> &FieldErrors {
        &self.errors
    }

    pub(crate) fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.entry(field.to_string()).or_default().push(message.into());
    }

    pub(crate) fn present(&mut self, field: &str) -> bool {
        self.value(field).is_some()
    }

    /// A required string: trimmed, non-blank, at most `max` characters.
    pub(crate) fn required_str(&mut self, field: &str, max: usize) -> Option<String> {
        match self.value(field) {
            None => {
                self.error(field, REQUIRED);
                None
            }
            Some(_) => {
                let value = self.optional_str(field, max)?;
                if value.is_empty() {
                    self.error(field, "This field may not be blank.");
                    return None;
                }
                Some(value)
            }
        }
    }

    /// An optional string (absent → None); null is refused; blank allowed; trimmed.
    pub(crate) fn optional_str(&mut self, field: &str, max: usize) -> Option<String> {
        self.str_inner(field, max, true)
    }

    /// Like `optional_str` but keeps surrounding whitespace (passwords, message text).
    pub(crate) fn optional_raw_str(&mut self, field: &str, max: usize) -> Option<String> {
        self.str_inner(field, max, false)
    }

    fn str_inner(&mut self, field: &str, max: usize, trim: bool) -> Option<String> {
        let value = match self.value(field)? {
            Value::Null => {
                self.error(field, "This field may not be null.");
                return None;
            }
            Value::String(s) => s.clone(),
            // DRF's CharField accepts numbers and renders them as text.
            Value::Number(n) => n.to_string(),
            _ => {
                self.error(field, "Not a valid string.");
                return None;
            }
        };
        // DRF's ProhibitNullCharactersValidator; PostgreSQL cannot store NUL in text either.
        if value.contains('\0') {
            self.error(field, "Null characters are not allowed.");
            return None;
        }
        let value = if trim { value.trim().to_string() } else { value };
        if value.chars().count() > max {
            self.error(field, format!("Ensure this field has no more than {max} characters."));
            return None;
        }
        Some(value)
    }

    /// A required string that may be blank (e.g. a password checked elsewhere).
    pub(crate) fn required_raw_str(&mut self, field: &str, max: usize) -> Option<String> {
        if !self.present(field) {
            self.error(field, REQUIRED);
            return None;
        }
        let value = self.optional_raw_str(field, max)?;
        if value.is_empty() {
            self.error(field, "This field may not be blank.");
            return None;
        }
        Some(value)
    }

    pub(crate) fn optional_nullable_str(&mut self, field: &str, max: usize) -> Option<Option<String>> {
        match self.value(field)? {
            Value::Null => Some(None),
            _ => self.optional_str(field, max).map(Some),
        }
    }

    pub(crate) fn optional_bool(&mut self, field: &str) -> Option<bool> {
        let parsed = match self.value(field)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) if n.as_i64() == Some(1) => Some(true),
            Value::Number(n) if n.as_i64() == Some(0) => Some(false),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
                "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if parsed.is_none() {
            self.error(field, "Must be a valid boolean.");
        }
        parsed
    }

    /// An integer as DRF's `IntegerField` reads one: a number or a string, where a decimal
    /// part of zeros is dropped (`2`, `2.0`, `"2.00"`), nothing else.
    pub(crate) fn optional_int(&mut self, field: &str) -> Option<i64> {
        let text = match self.value(field)? {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        let parsed = text.and_then(|text| {
            let text = text.trim_end();
            let whole = match text.rfind('.') {
                Some(dot) if text[dot + 1..].bytes().all(|b| b == b'0') => &text[..dot],
                _ => text,
            };
            whole.trim().parse().ok()
        });
        if parsed.is_none() {
            self.error(field, "A valid integer is required.");
        }
        parsed
    }

    pub(crate) fn optional_uuid(&mut self, field: &str) -> Option<Uuid> {
        let parsed = match self.value(field)? {
            Value::String(s) => Uuid::parse_str(s.trim()).ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.error(field, "Must be a valid UUID.");
        }
        parsed
    }

    pub(crate) fn required_uuid(&mut self, field: &str) -> Option<Uuid> {
        if !self.present(field) || self.value(field) == Some(&Value::Null) {
            self.error(field, REQUIRED);
            return None;
        }
        self.optional_uuid(field)
    }

    /// A required id of one of the id types (`UserId`, `ChatId`, `MessageId`).
    pub(crate) fn required_id<T: From<Uuid>>(&mut self, field: &str) -> Option<T> {
        self.required_uuid(field).map(T::from)
    }

    /// An optional list of ids (absent or null → empty) of at most `max` items; anything else
    /// is refused with `message`.
    pub(crate) fn optional_id_list<T: From<Uuid>>(&mut self, field: &str, max: usize, message: &str) -> Option<Vec<T>> {
        let parsed = match self.list_value(field) {
            None | Some(Value::Null) => return Some(Vec::new()),
            Some(value) => self.id_list(value, max),
        };
        if parsed.is_none() {
            self.error(field, message);
        }
        parsed
    }

    /// A list of ids read without refusing anything: `None` when the field is absent or is not
    /// a list of at most `max` uuids.
    pub(crate) fn lenient_id_list<T: From<Uuid>>(&mut self, field: &str, max: usize) -> Option<Vec<T>> {
        let value = self.list_value(field)?;
        self.id_list(value, max)
    }

    /// `id_list`, where a form key sent once is a list of one.
    fn id_list<T: From<Uuid>>(&self, value: &Value, max: usize) -> Option<Vec<T>> {
        match value {
            Value::String(one) if self.form => id_list(&Value::Array(vec![Value::String(one.clone())]), max),
            _ => id_list(value, max),
        }
    }

    /// Turns a value already read into a richer type; `parse` refusing it is the error
    /// `message` on `field` (e.g. a string that is not an email address).
    pub(crate) fn refine<T, U>(
        &mut self,
        field: &str,
        value: Option<T>,
        parse: impl FnOnce(T) -> Option<U>,
        message: &str,
    ) -> Option<U> {
        let refined = parse(value?);
        if refined.is_none() {
            self.error(field, message);
        }
        refined
    }

    /// An optional, nullable ISO 8601 date-time.
    pub(crate) fn optional_datetime(&mut self, field: &str) -> Option<Option<DateTime<Utc>>> {
        match self.nullable_value(field)? {
            Value::Null => Some(None),
            Value::String(s) => match DateTime::parse_from_rfc3339(s.trim()) {
                Ok(t) => Some(Some(crate::store::truncate(t.with_timezone(&Utc)))),
                Err(_) => {
                    self.error(
                        field,
                        "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
                    );
                    None
                }
            },
            _ => {
                self.error(
                    field,
                    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
                );
                None
            }
        }
    }

    /// Ends reading: every collected error at once, or Ok.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }

    /// Ends reading a whole request: every collected error at once, else the value built from
    /// the fields. A reader that built nothing without saying why is a defect, answered as an
    /// internal error rather than a panic.
    pub(crate) fn finish_with<T>(self, value: Option<T>) -> Result<T, ApiError> {
        self.finish()?;
        value.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a body reader refused a body without an error")))
    }
}

/// A JSON array of uuid strings of at most `max` items; `None` when the value is not one.
pub(crate) fn id_list<T: From<Uuid>>(value: &Value, max: usize) -> Option<Vec<T>> {
    let items = value.as_array().filter(|items| items.len() <= max)?;
    items
        .iter()
        .map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()).map(T::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn integers_read_as_drf_reads_them() {
        let body = map(json!({ "a": 2.0, "b": "2.00", "c": " 7 ", "d": 2.5, "e": "2.0.0", "f": true, "g": 3 }));
        let mut f = Fields::new(&body);
        assert_eq!(f.optional_int("a"), Some(2));
        assert_eq!(f.optional_int("b"), Some(2));
        assert_eq!(f.optional_int("c"), Some(7));
        assert_eq!(f.optional_int("g"), Some(3));
        assert_eq!(f.optional_int("d"), None);
        assert_eq!(f.optional_int("e"), None);
        assert_eq!(f.optional_int("f"), None);
        assert_eq!(f.errors().len(), 3);
    }

    #[test]
    fn form_lists_take_every_value_and_scalars_the_last() {
        let one = "e3e70682-c209-1cac-a29f-6fbed82c07cd";
        let two = "01a234c4-fad5-7007-a451-bc52c18f906d";
        let body = map(json!({ "members": [one, two], "solo": one, "title": ["first", "last"] }));
        let mut f = Fields::from_form(&body);
        let members: Option<Vec<Uuid>> = f.optional_id_list("members", 10, "bad");
        assert_eq!(members.unwrap().len(), 2);
        let solo: Option<Vec<Uuid>> = f.optional_id_list("solo", 10, "bad");
        assert_eq!(solo.unwrap(), vec![Uuid::parse_str(one).unwrap()]);
        assert_eq!(f.optional_str("title", 100).as_deref(), Some("last"));
        assert!(f.errors().is_empty());
    }

    #[test]
    fn a_json_string_is_not_a_list() {
        let body = map(json!({ "members": "e3e70682-c209-1cac-a29f-6fbed82c07cd" }));
        let mut f = Fields::new(&body);
        let members: Option<Vec<Uuid>> = f.optional_id_list("members", 10, "bad");
        assert!(members.is_none());
        assert_eq!(f.errors().len(), 1);
    }

    #[test]
    fn an_empty_form_value_of_a_nullable_field_is_null() {
        let body = map(json!({ "when": "" }));
        assert_eq!(Fields::from_form(&body).optional_datetime("when"), Some(None));
        let mut json = Fields::new(&body);
        assert_eq!(json.optional_datetime("when"), None);
        assert_eq!(json.errors().len(), 1);
    }
}
