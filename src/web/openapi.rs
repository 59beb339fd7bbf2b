//! The OpenAPI 3.1 document (`/api/schema/`).
//!
//! Every REST operation comes from its handler's `#[utoipa::path]` and the `ToSchema` types of
//! its body, parameters and answers, registered together with the route itself
//! (`utoipa_axum::OpenApiRouter`, see `app::documented_routes`), so a route and its description
//! cannot part. This module holds what the handlers share: the document's frame (`base`), the
//! answers every route of a kind gives (`complete`), and the WebSocket handshakes, which are
//! upgrades rather than REST handlers (`sockets`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi as _, PartialSchema};

use crate::error::{Detail, FieldErrorsBody};
use crate::ids::ChatId;

/// The name of the bearer scheme in `components.securitySchemes`.
const BEARER: &str = "jwtAuth";
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Causerie",
        description = "A chat backend serving the API of a Django Channels + DRF + djoser + SimpleJWT \
                       stack. Lists paginate as `{count, next, previous, results}`; errors are \
                       `{\"detail\": …}` or `{\"field\": [messages]}`.",
        license(name = "MIT")
    ),
    tags(
        (name = "accounts", description = "djoser's user routes"),
        (name = "tokens", description = "SimpleJWT's token routes"),
        (name = "users", description = "The app's user records"),
        (name = "chats", description = "Two-person chats"),
        (name = "messages", description = "Chat messages"),
        (name = "groups", description = "Group chats"),
        (name = "attachments", description = "Uploads and private downloads (docs/media.md)"),
        (name = "realtime", description = "WebSocket"),
        (name = "devices", description = "Push devices (fcm-django), docs/push.md"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    ),
    components(schemas(Detail, FieldErrorsBody)),
    modifiers(&BearerScheme)
)]
struct Frame;

/// The document before any route is added: information, tags, the bearer scheme, the error
/// bodies.
pub(crate) fn base() -> OpenApi {
    Frame::openapi()
}

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, document: &mut OpenApi) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /auth/jwt/create/: `Authorization: Bearer <access>`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The finished document: the answers shared by every route of a kind, operation ids that stay
/// unique where one handler serves several methods, and the WebSocket handshakes.
pub(crate) fn complete(mut document: OpenApi) -> OpenApi {
    for item in document.paths.paths.values_mut() {
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (_, operation) in operations(item) {
            shared_answers(operation);
            if let Some(id) = &operation.operation_id {
                *ids.entry(id.clone()).or_default() += 1;
            }
        }
        // One handler for PUT and PATCH is one operation under two methods: each copy's id
        // gets its method, so ids stay unique.
        for (method, operation) in operations(item) {
            if let Some(id) = operation.operation_id.as_mut().filter(|id| ids[id.as_str()] > 1) {
                id.push('_');
                id.push_str(method);
            }
        }
    }
    sockets(&mut document);
    document
}

/// Each operation of a path, with its method's name.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    Ref::from_schema_name(name).into()
}

fn detail_answer(description: &str) -> ResponseBuilder {
    answer(description, schema_ref("Detail"))
}

fn answer(description: &str, schema: RefOr<Schema>) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(JSON, Content::new(Some(schema)))
}

/// What every operation of a kind answers, where its handler does not say more:
/// - one that reads a body (`http::Form`) takes it as JSON or form data, and answers 400 for
///   invalid fields or a body that is not an object, 413 for one over `max_body_bytes`, 415 for
///   another media type;
/// - one that needs a bearer token answers 401 without a valid one;
/// - one that reads storage answers 503 while the database is away.
fn shared_answers(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, response: ResponseBuilder| {
        responses.entry(status.to_string()).or_insert(response.build().into());
    };
    if let Some(body) = operation.request_body.as_mut() {
        if let Some(content) = body.content.get(FORM).cloned() {
            body.content.insert(JSON.to_string(), content);
        }
        add(
            "400",
            answer(
                "Validation errors, or a body that is not a JSON object",
                OneOfBuilder::new()
                    .item(schema_ref("FieldErrors"))
                    .item(schema_ref("Detail"))
                    .into(),
            ),
        );
        add("413", detail_answer("Request body is too large"));
        add("415", detail_answer("Unsupported media type"));
    }
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        add(
            "401",
            detail_answer("Credentials missing, or the token is invalid, expired or not an access token"),
        );
    }
    let operations_tag = operation.tags.iter().flatten().any(|tag| tag == "operations");
    if !operations_tag {
        add("503", detail_answer("The database is unavailable"));
    }
}

/// The WebSocket handshakes: a GET that upgrades (101) or is refused before any upgrade (403).
fn sockets(document: &mut OpenApi) {
    let refusal = ObjectBuilder::new()
        .property("detail", String::schema())
        .property(
            "reason",
            ObjectBuilder::new().schema_type(Type::String).enum_values(Some([
                "missing_token",
                "invalid_token",
                "inactive_user",
                "unknown_user",
                "unknown_chat",
                "not_a_member",
            ])),
        )
        .required("detail")
        .required("reason");
    let error_frame = ObjectBuilder::new()
        .property(
            "error",
            ObjectBuilder::new()
                .property("code", String::schema())
                .property("detail", String::schema())
                .required("code")
                .required("detail"),
        )
        .required("error");
    let components = document.components.get_or_insert_with(Default::default);
    components.schemas.insert("WsRefusal".into(), refusal.into());
    components.schemas.insert("WsErrorFrame".into(), error_frame.into());

    let token = |description: &str| param("token", ParameterIn::Query, true, description, String::schema());
    let upgraded = || ResponseBuilder::new().description("Switching Protocols: the socket is open");
    let chat_socket = OperationBuilder::new()
        .tag("realtime")
        .operation_id(Some("chat_socket"))
        .summary(Some("Open a chat's WebSocket"))
        .description(Some(
            "A WebSocket upgrade (`Connection: Upgrade`, `Upgrade: websocket`). The access token \
             travels in `?token=`. Inbound frames: `{\"message\":\"hi\",\"refChat\":\"<chat id>\",\
             \"author\":\"<user id>\",\"type\":0,\"extraData\":\"\"}` (`type` and `extraData` \
             optional). Every stored message goes to every socket of the chat, the sender's \
             included: with `format=text` as `{\"message\":\"hi\",\"id\":…, …}`, with \
             `format=object` as `{\"message\":{…Message…}}`. Errors are \
             `{\"error\":{\"code\",\"detail\"}}` frames; a frame over the size limit closes the \
             socket with 1009 (see the `WsErrorFrame` schema). Offering the subprotocol \
             `causerie.v2` (`Sec-WebSocket-Protocol`) selects the v2 event protocol instead, \
             resuming after `afterSeq`.",
        ))
        .parameter(param(
            "chat_id",
            ParameterIn::Path,
            true,
            "The chat's id",
            ChatId::schema(),
        ))
        .parameter(token("An access JWT of one of the chat's participants"))
        .parameter(param(
            "format",
            ParameterIn::Query,
            false,
            "The shape of outbound message frames (v1)",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["text", "object"]))
                .default(Some(json!("text")))
                .into(),
        ))
        .parameter(param(
            "afterSeq",
            ParameterIn::Query,
            false,
            "With `causerie.v2`: first replay the chat's messages after this sequence number",
            i64::schema(),
        ))
        .response("101", upgraded())
        .response(
            "400",
            detail_answer("`format` is neither text nor object, or `afterSeq` is not an integer"),
        )
        .response(
            "403",
            answer(
                "Refused before any upgrade: a missing, invalid, expired or refresh token, an \
                 inactive user, an unknown chat, or a caller who is not a participant",
                schema_ref("WsRefusal"),
            ),
        )
        .response("503", detail_answer("The database is unavailable"));
    let user_socket = OperationBuilder::new()
        .tag("realtime")
        .operation_id(Some("user_socket"))
        .summary(Some("Open a v2 WebSocket for all the caller's chats"))
        .description(Some(
            "A WebSocket upgrade speaking the `causerie.v2` subprotocol (`Sec-WebSocket-Protocol: \
             causerie.v2`); the client subscribes to its chats over the socket. The access token \
             travels in `?token=`.",
        ))
        .parameter(token("An access JWT"))
        .response("101", upgraded())
        .response(
            "403",
            answer(
                "Refused before any upgrade: a missing, invalid, expired or refresh token, or an \
                 inactive user",
                schema_ref("WsRefusal"),
            ),
        )
        .response("503", detail_answer("The database is unavailable"));
    let paths = &mut document.paths.paths;
    paths.insert(
        "/ws/chat/{chat_id}/".into(),
        PathItem::new(HttpMethod::Get, chat_socket),
    );
    paths.insert("/ws/".into(), PathItem::new(HttpMethod::Get, user_socket));
}

fn param(name: &str, place: ParameterIn, required: bool, description: &str, schema: RefOr<Schema>) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(if required { Required::True } else { Required::False })
        .description(Some(description))
        .schema(Some(schema))
}

/// The document as served: serialized once, at start.
#[derive(Clone)]
pub(crate) struct Served(Bytes);

impl Served {
    pub(crate) fn new(document: &OpenApi) -> Served {
        // Serializing plain data (strings, maps, numbers) into a buffer cannot fail.
        let text = serde_json::to_vec(document).unwrap_or_default();
        Served(Bytes::from(text))
    }

    pub(crate) fn response(&self) -> Response {
        ([(CONTENT_TYPE, HeaderValue::from_static(JSON))], self.0.clone()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> serde_json::Value {
        serde_json::to_value(crate::app::openapi()).expect("serializes")
    }

    #[test]
    fn is_openapi_31_with_bearer_scheme() {
        let value = document();
        assert!(value["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(value["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
        assert!(value["paths"]["/ws/chat/{chat_id}/"]["get"]["responses"]["101"].is_object());
    }

    #[test]
    fn every_reference_resolves() {
        let value = document();
        let text = value.to_string();
        let schemas = value["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref to {name}");
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let value = document();
        let mut seen = std::collections::HashSet::new();
        for (_, item) in value["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                    assert!(seen.insert(id.to_string()), "duplicate operationId {id}");
                }
            }
        }
    }

    #[test]
    fn bodies_are_json_or_form_and_answer_their_errors() {
        let value = document();
        let body = &value["paths"]["/api/message/"]["post"];
        let content = body["requestBody"]["content"].as_object().unwrap();
        assert!(content.contains_key(JSON) && content.contains_key(FORM));
        for status in ["201", "400", "401", "413", "415", "503"] {
            assert!(
                body["responses"][status].is_object(),
                "POST /api/message/ answers {status}"
            );
        }
        let login = &value["paths"]["/auth/jwt/create/"]["post"];
        assert!(login.get("security").is_none());
        assert_eq!(
            login["responses"]["401"]["description"],
            "No active account found with the given credentials"
        );
    }
}
