//! Query strings read into typed filters, with django-filter's messages and every bad filter
//! reported at once (DRF's `DjangoFilterBackend` answers `{"filter": ["message"], …}`).

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::validation::FieldErrors;

/// A query-string type: how it is read from the request's parameters.
pub(crate) trait FromQuery: Sized {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError>;
}

/// The query string read as `T` (in place of axum's `Query`, whose serde errors are not
/// django-filter's). Each `T` also derives `IntoParams`, which the handler names in its
/// `#[utoipa::path(params(…))]`.
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: FromQuery> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let params = QueryParams::of(parts.uri.query().unwrap_or(""));
        T::from_query(&params).map(Query)
    }
}

/// The decoded parameters (a repeated name keeps its last value).
pub(crate) struct QueryParams {
    values: HashMap<String, String>,
    /// Every name a reader asked for, so tests can hold a query type's documented parameters
    /// against what it really reads.
    #[cfg(test)]
    pub(crate) asked: std::cell::RefCell<Vec<String>>,
}

impl QueryParams {
    pub(crate) fn of(query: &str) -> QueryParams {
        QueryParams {
            values: url::form_urlencoded::parse(query.as_bytes()).into_owned().collect(),
            #[cfg(test)]
            asked: Default::default(),
        }
    }

    /// The raw value, when given; every reader goes through here.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        #[cfg(test)]
        self.asked.borrow_mut().push(name.to_string());
        self.values.get(name).map(String::as_str)
    }

    /// A reader that collects each filter's error.
    pub(crate) fn filters(&self) -> Filters<'_> {
        Filters {
            params: self,
            errors: FieldErrors::new(),
        }
    }
}

/// Reads filters; a blank filter is no filter, as django-filter has it.
pub(crate) struct Filters<'a> {
    params: &'a QueryParams,
    errors: FieldErrors,
}

impl Filters<'_> {
    fn given(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    fn error(&mut self, name: &str, message: &str) {
        self.errors
            .entry(name.to_string())
            .or_default()
            .push(message.to_string());
    }

    /// The trimmed text, when the parameter is present (even blank).
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.params.get(name).map(|v| v.trim().to_string())
    }

    /// An id filter (`UserId`, `ChatId`, `MessageId`).
    pub(crate) fn id<T: FromStr>(&mut self, name: &str) -> Option<T> {
        let raw = self.given(name)?;
        let parsed = raw.parse().ok();
        if parsed.is_none() {
            self.error(name, "Enter a valid UUID.");
        }
        parsed
    }

    pub(crate) fn boolean(&mut self, name: &str) -> Option<bool> {
        let raw = self.given(name)?.to_ascii_lowercase();
        match raw.as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => {
                self.error(name, "Enter a valid boolean.");
                None
            }
        }
    }

    pub(crate) fn integer(&mut self, name: &str) -> Option<i32> {
        let parsed = self.given(name)?.parse().ok();
        if parsed.is_none() {
            self.error(name, "Enter a whole number.");
        }
        parsed
    }

    /// Every filter's error at once, else the value built from the filters.
    pub(crate) fn finish_with<T>(self, value: Option<T>) -> Result<T, ApiError> {
        if !self.errors.is_empty() {
            return Err(ApiError::Validation(self.errors));
        }
        value.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a query reader refused without an error")))
    }
}
