//! Request bodies the way DRF's parsers treat them: JSON or form data, clear 4xx otherwise.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The request body as a JSON object (an empty body is an empty object, as DRF sees it). Its
/// size is capped by the router's `DefaultBodyLimit` (setting `max_body_bytes`).
pub(crate) struct Body(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        match content_type.as_deref() {
            Some("application/json") => parse_json(&bytes),
            Some(ct) if ct.starts_with("application/") && ct.ends_with("+json") => parse_json(&bytes),
            Some("application/x-www-form-urlencoded") => {
                let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&bytes).into_owned().collect();
                Ok(Body(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
            }
            Some(other) => Err(ApiError::UnsupportedMediaType(other.to_string())),
            None => Err(ApiError::UnsupportedMediaType(String::new())),
        }
    }
}

fn parse_json(bytes: &[u8]) -> Result<Body, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Body(map)),
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
