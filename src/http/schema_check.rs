//! Test support: a request type's OpenAPI description held against its reader, so the
//! document says what the server reads. Each body and query type's module calls these.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::Required;
use utoipa::{IntoParams, ToSchema};

use super::{Fields, FromBody, FromQuery, QueryParams};
use crate::error::ApiError;
use crate::validation::{FieldErrors, REQUIRED};

/// The properties and the required ones of `T`'s schema, through `allOf` and `$ref`s.
fn documented<T: ToSchema>() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut components = Vec::new();
    T::schemas(&mut components);
    let components: HashMap<String, Value> = components
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).expect("a schema serializes")))
        .collect();
    let mut found = (BTreeSet::new(), BTreeSet::new());
    collect(
        &serde_json::to_value(T::schema()).expect("a schema serializes"),
        &components,
        &mut found,
    );
    found
}

fn collect(schema: &Value, components: &HashMap<String, Value>, found: &mut (BTreeSet<String>, BTreeSet<String>)) {
    if let Some(name) = schema["$ref"].as_str() {
        let name = name.trim_start_matches("#/components/schemas/");
        let target = components
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not among the schemas"));
        return collect(target, components, found);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        collect(part, components, found);
    }
    found.0.extend(
        schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone()),
    );
    found.1.extend(
        schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from)),
    );
}

/// The fields `T`'s reader reads from an empty body, and those it says are required.
fn read<T: FromBody>() -> (BTreeSet<String>, BTreeSet<String>) {
    let empty = Map::new();
    let mut f = Fields::new(&empty);
    let _ = T::from_fields(&mut f);
    (f.asked.iter().cloned().collect(), required(f.errors()))
}

/// The fields told "This field is required.".
fn required(errors: &FieldErrors) -> BTreeSet<String> {
    errors
        .iter()
        .filter(|(_, messages)| messages.iter().any(|m| m == REQUIRED))
        .map(|(field, _)| field.clone())
        .collect()
}

/// `T` documents exactly the fields it reads.
#[track_caller]
pub(crate) fn reads_what_it_documents<T: FromBody + ToSchema>() {
    assert_eq!(
        read::<T>().0,
        documented::<T>().0,
        "{}: fields read vs documented",
        T::name()
    );
}

/// `T` documents exactly the fields it reads, and as required exactly those it requires.
#[track_caller]
pub(crate) fn body_matches_its_schema<T: FromBody + ToSchema>() {
    reads_what_it_documents::<T>();
    assert_eq!(
        read::<T>().1,
        documented::<T>().1,
        "{}: required vs documented",
        T::name()
    );
}

/// `T` documents exactly the query parameters it reads, and as required exactly those an
/// empty query is told are required.
#[track_caller]
pub(crate) fn query_matches_its_params<T: FromQuery + IntoParams>() {
    let params = T::into_params(|| Some(ParameterIn::Query));
    let documented: BTreeSet<String> = params.iter().map(|p| p.name.clone()).collect();
    let documented_required: BTreeSet<String> = params
        .iter()
        .filter(|p| matches!(p.required, Required::True))
        .map(|p| p.name.clone())
        .collect();
    let query = QueryParams::of("");
    let required = match T::from_query(&query) {
        Err(ApiError::Validation(errors)) => required(&errors),
        _ => BTreeSet::new(),
    };
    let read: BTreeSet<String> = query.asked.borrow().iter().cloned().collect();
    assert_eq!(read, documented, "parameters read vs documented");
    assert_eq!(required, documented_required, "required parameters vs documented");
}
