//! Request bodies the way DRF's parsers treat them: JSON or form data, clear 4xx otherwise.

use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Map, Value};

use super::Fields;
use crate::error::ApiError;

/// The largest body a route accepts, put in each request's extensions by the router
/// (`max_body_bytes`; routes that take uploads set their own).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimit(pub usize);

/// A request body type: how it is read out of the body's fields, with DRF's messages.
///
/// An implementation reads *every* field first (each reader records its own errors in `f`) and
/// only then assembles the value with `?` on the required parts, so one 400 lists every field's
/// problems, as a DRF serializer's does. Cross-field rules (a password checked against the
/// email) go between the two steps, adding their errors to `f`.
pub(crate) trait FromBody: Sized {
    fn from_fields(f: &mut Fields<'_>) -> Option<Self>;
}

/// A request body read as `T`: JSON or form data, parsed by `T`'s [`FromBody`] rules. A
/// handler taking `Form<T>` gets a checked value or never runs.
///
/// Named `Form` because that is the name utoipa's axum support reads a handler's request body
/// type from (`Form<T>` → a `T` body); the document then lists JSON beside form data for every
/// such body (`web::openapi`), since both are accepted.
pub(crate) struct Form<T>(pub T);

impl<S: Send + Sync, T: FromBody> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Body::from_request(req, state).await?.read().map(Form)
    }
}

/// The request body as a JSON object (an empty body is an empty object, as DRF sees it), of
/// at most the route's [`BodyLimit`].
pub(crate) struct Body {
    pub(crate) fields: Map<String, Value>,
    /// Form data: each value a string, a key sent more than once an array of them (read with
    /// `Fields::from_form`).
    pub(crate) form: bool,
}

/// Reads a whole body of at most the route's [`BodyLimit`]. A declared `Content-Length` above
/// it is refused before any of the body is read; a body that stops arriving ends with 408 (the
/// router's body timeout).
pub(crate) async fn read_limited(req: Request) -> Result<axum::body::Bytes, ApiError> {
    let limit = req.extensions().get::<BodyLimit>().map(|l| l.0).unwrap_or(usize::MAX);
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|err| {
        let timed_out = std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| e.source())
            .any(|e| e.is::<tower_http::timeout::TimeoutError>());
        if timed_out {
            ApiError::BodyTimeout
        } else {
            ApiError::PayloadTooLarge
        }
    })
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        let bytes = read_limited(req).await?;
        Body::parse(content_type.as_deref(), &bytes)
    }
}

impl Body {
    /// A whole body as DRF's parsers read it, by its media type (lower-case, without parameters).
    pub(crate) fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Body, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body {
                fields: Map::new(),
                form: false,
            });
        }
        match content_type {
            Some("application/json") => parse_json(bytes),
            Some(ct) if ct.starts_with("application/") && ct.ends_with("+json") => parse_json(bytes),
            Some("application/x-www-form-urlencoded") => {
                let mut fields = Map::new();
                for (key, value) in url::form_urlencoded::parse(bytes).into_owned() {
                    match fields.get_mut(&key) {
                        None => {
                            fields.insert(key, Value::String(value));
                        }
                        Some(Value::Array(values)) => values.push(Value::String(value)),
                        Some(first) => *first = Value::Array(vec![first.take(), Value::String(value)]),
                    }
                }
                Ok(Body { fields, form: true })
            }
            Some(other) => Err(ApiError::UnsupportedMediaType(other.to_string())),
            None => Err(ApiError::UnsupportedMediaType(String::new())),
        }
    }

    /// The body read as `T` with `T`'s rules: a value, or every field's errors at once.
    pub(crate) fn read<T: FromBody>(&self) -> Result<T, ApiError> {
        let mut f = if self.form {
            Fields::from_form(&self.fields)
        } else {
            Fields::new(&self.fields)
        };
        let value = T::from_fields(&mut f);
        f.finish_with(value)
    }
}

fn parse_json(bytes: &[u8]) -> Result<Body, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(fields)) => Ok(Body { fields, form: false }),
        Ok(other) => Err(ApiError::field(
            "non_field_errors",
            format!("Invalid data. Expected a dictionary, but got {}.", json_kind(&other)),
        )),
        Err(err) => Err(ApiError::JsonParse(err.to_string())),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
    }
}
