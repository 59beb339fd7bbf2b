//! Reading fields out of a body with DRF's exact error messages, collecting every field's
//! errors before answering (as a DRF serializer does).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::validation::{FieldErrors, REQUIRED};

pub(crate) struct Fields<'a> {
    body: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(body: &'a Map<String, Value>) -> Fields<'a> {
        Fields {
            body,
            errors: FieldErrors::new(),
        }
    }

    pub(crate) fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.entry(field.to_string()).or_default().push(message.into());
    }

    pub(crate) fn present(&self, field: &str) -> bool {
        self.body.contains_key(field)
    }

    /// A required string: trimmed, non-blank, at most `max` characters.
    pub(crate) fn required_str(&mut self, field: &str, max: usize) -> Option<String> {
        match self.body.get(field) {
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
        let value = match self.body.get(field)? {
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
        match self.body.get(field)? {
            Value::Null => Some(None),
            _ => self.optional_str(field, max).map(Some),
        }
    }

    pub(crate) fn optional_bool(&mut self, field: &str) -> Option<bool> {
        let parsed = match self.body.get(field)? {
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

    pub(crate) fn optional_int(&mut self, field: &str) -> Option<i64> {
        let parsed = match self.body.get(field)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.error(field, "A valid integer is required.");
        }
        parsed
    }

    pub(crate) fn optional_uuid(&mut self, field: &str) -> Option<Uuid> {
        let parsed = match self.body.get(field)? {
            Value::String(s) => Uuid::parse_str(s.trim()).ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.error(field, "Must be a valid UUID.");
        }
        parsed
    }

    pub(crate) fn required_uuid(&mut self, field: &str) -> Option<Uuid> {
        if !self.present(field) || self.body.get(field) == Some(&Value::Null) {
            self.error(field, REQUIRED);
            return None;
        }
        self.optional_uuid(field)
    }

    /// An optional, nullable ISO 8601 date-time.
    pub(crate) fn optional_datetime(&mut self, field: &str) -> Option<Option<DateTime<Utc>>> {
        match self.body.get(field)? {
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
}
