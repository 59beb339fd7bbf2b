//! `/api/attachments/`: uploads (multipart, field `file`, optional `chat`), an attachment's
//! description, and private downloads of its file and thumbnail. A download is allowed by a
//! signed URL (`?exp=…&sig=…`, what message JSON carries, usable as `<img src>`), or by a
//! Bearer token of the uploader or of a member of the chat it was posted in.

use std::ops::Range;

use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, RANGE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Chats;
use crate::accounts::{Accounts, CurrentUser};
use crate::error::{ApiError, ApiResult};
use crate::http::answers::NotFound;
use crate::http::Ids;
use crate::ids::{AttachmentId, ChatId};
use crate::media::view::AttachmentView;
use crate::media::{Media, MediaError, Variant};
use crate::store::attachments::AttachmentRow;

/// Room for the multipart framing around the file (boundaries, headers, the `chat` field).
const MULTIPART_SLACK: u64 = 64 * 1024;

/// How attachment failures look to an HTTP client.
impl From<MediaError> for ApiError {
    fn from(err: MediaError) -> ApiError {
        match err {
            MediaError::NotFound => ApiError::NotFound,
            MediaError::TooLarge { .. } => ApiError::PayloadTooLarge,
            MediaError::TypeRefused(kind) => ApiError::UnsupportedMediaType(kind),
            MediaError::QuotaExceeded { retry_after } => ApiError::Throttled(retry_after),
            MediaError::BadImage => ApiError::field(
                "file",
                "Upload a valid image. The file you uploaded was either not an image or a corrupted image.",
            ),
            MediaError::TooManyPixels { max } => {
                ApiError::field("file", format!("Ensure this image has no more than {max} pixels."))
            }
            MediaError::NotYours(id) => {
                ApiError::field("attachments", format!("Invalid pk \"{id}\" - object does not exist."))
            }
            MediaError::Unavailable => ApiError::Unavailable,
            other => ApiError::Internal(anyhow::Error::new(other).context("attachments")),
        }
    }
}

pub(crate) fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Chats: FromRef<S>,
    Media: FromRef<S>,
    Accounts: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(describe))
        .routes(routes!(download_file))
        .routes(routes!(download_thumbnail))
}

/// The multipart body of an upload (documentation only: it is read as a stream).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The file; its type is sniffed from its bytes.
    #[schema(format = Binary)]
    file: String,
    /// The chat the file is meant for: it can then be posted there only.
    chat: Option<ChatId>,
}

/// Upload a file.
///
/// Multipart form data with the file under `file` and optionally the `chat` it is meant for.
/// The type is sniffed from the bytes and must be one of `media_allowed_types` (else 415); a
/// file over `media_max_bytes` is refused (413) while it is read, and nothing is stored; a user
/// past `media_quota_bytes_per_day` gets 429. Images are re-encoded without their metadata
/// (EXIF, GPS) and get a thumbnail. An upload no message carries within 24 hours is removed.
#[utoipa::path(
    post,
    path = "/api/attachments/",
    tag = "attachments",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("jwtAuth" = [])),
    responses(
        (status = CREATED, description = "The stored attachment", body = AttachmentView),
        (status = PAYLOAD_TOO_LARGE, description = "Larger than `media_max_bytes`"),
        (status = UNSUPPORTED_MEDIA_TYPE, description = "A type outside `media_allowed_types`"),
        (status = TOO_MANY_REQUESTS, description = "Daily quota used up"),
    )
)]
async fn upload(
    State(chats): State<Chats>,
    State(media): State<Media>,
    user: CurrentUser,
    req: Request,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    let form = match read_upload(&media, req).await {
        Ok(form) => form,
        Err(err) => {
            if matches!(err, ApiError::PayloadTooLarge) {
                Media::count_refusal(&MediaError::TooLarge { max: media.max_bytes() });
            }
            return Err(err);
        }
    };
    let chat = match form.chat.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(text) => {
            let id: ChatId = text
                .parse()
                .map_err(|_| ApiError::field("chat", "Must be a valid UUID."))?;
            if !chats.is_member(id, user.id()).await? {
                return Err(ApiError::field(
                    "chat",
                    format!("Invalid pk \"{id}\" - object does not exist."),
                ));
            }
            Some(id)
        }
    };
    let Some((name, bytes)) = form.file else {
        return Err(ApiError::field("file", "No file was submitted."));
    };
    let row = media.store(user.id(), chat, &name, bytes).await?;
    Ok((StatusCode::CREATED, Json(media.view(&row))))
}

/// What an upload form carries: the file (its name and bytes) and the `chat` field's text.
pub(crate) struct UploadParts {
    pub(crate) file: Option<(String, Vec<u8>)>,
    pub(crate) chat: Option<String>,
}

/// Reads the multipart body, refusing (413) as soon as more than `media_max_bytes` of file
/// arrive, or when the declared length already says so.
async fn read_upload(media: &Media, req: Request) -> Result<UploadParts, ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    read_form(&content_type, declared, req.into_body(), media.max_bytes()).await
}

/// The multipart reading of an upload, apart from the request so that the fuzz target
/// (`testing::fuzz::multipart`) runs exactly what the server runs: `content_type` and
/// `declared` (Content-Length) as the client sent them, `max` the largest file accepted.
pub(crate) async fn read_form(
    content_type: &str,
    declared: Option<u64>,
    body: Body,
    max: u64,
) -> Result<UploadParts, ApiError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| ApiError::UnsupportedMediaType(content_type.split(';').next().unwrap_or("").trim().to_string()))?;
    if declared.is_some_and(|length| length > max.saturating_add(MULTIPART_SLACK)) {
        return Err(ApiError::PayloadTooLarge);
    }
    let limits = multer::SizeLimit::new()
        .whole_stream(max.saturating_add(MULTIPART_SLACK))
        .per_field(max);
    let mut multipart = multer::Multipart::with_constraints(
        body.into_data_stream(),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let mut parts = UploadParts { file: None, chat: None };
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().map(str::to_owned);
        match name.as_deref() {
            Some("file") if parts.file.is_none() => {
                let name = field.file_name().unwrap_or("").to_string();
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if (bytes.len() + chunk.len()) as u64 > max {
                        return Err(ApiError::PayloadTooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                parts.file = Some((name, bytes));
            }
            Some("chat") => parts.chat = Some(field.text().await.map_err(multipart_error)?),
            _ => while field.chunk().await.map_err(multipart_error)?.is_some() {},
        }
    }
    Ok(parts)
}

fn multipart_error(err: multer::Error) -> ApiError {
    match err {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => ApiError::PayloadTooLarge,
        other => {
            let timed_out = std::iter::successors(Some(&other as &(dyn std::error::Error + 'static)), |e| e.source())
                .any(|e| e.is::<tower_http::timeout::TimeoutError>());
            if timed_out {
                ApiError::BodyTimeout
            } else {
                ApiError::BadRequest(format!("Multipart form parse error - {other}"))
            }
        }
    }
}

/// An attachment, with fresh signed URLs.
///
/// For the uploader, and once it is posted, for the members of its chat; how a client renews
/// URLs that expired.
#[utoipa::path(
    get,
    path = "/api/attachments/{id}/",
    tag = "attachments",
    params(("id" = AttachmentId, Path, description = "The attachment's id")),
    security(("jwtAuth" = [])),
    responses(
        (status = OK, description = "The attachment", body = AttachmentView),
        NotFound,
    )
)]
async fn describe(
    State(chats): State<Chats>,
    user: CurrentUser,
    Ids(id): Ids<AttachmentId>,
) -> ApiResult<Json<AttachmentView>> {
    let row = chats.attachment_for(user.id(), id).await?;
    Ok(Json(chats.media().view(&row)))
}

/// Download an attachment.
///
/// With the signed URL's `exp` and `sig` (no token needed), or a Bearer token of the uploader
/// or of a member of the chat it was posted in. Served with its sniffed type,
/// `X-Content-Type-Options: nosniff`, `Content-Disposition`, an `ETag`, and single `Range`
/// requests (206).
#[utoipa::path(
    get,
    path = "/api/attachments/{id}/file/",
    tag = "attachments",
    params(
        ("id" = AttachmentId, Path, description = "The attachment's id"),
        ("exp" = Option<i64>, Query, description = "Signed URL: expiry (unix seconds)"),
        ("sig" = Option<String>, Query, description = "Signed URL: signature"),
    ),
    security((), ("jwtAuth" = [])),
    responses(
        (status = OK, description = "The file, with the type sniffed at upload", content_type = "*/*"),
        (status = PARTIAL_CONTENT, description = "The requested range"),
        (status = FORBIDDEN, description = "A signed URL that is expired or not valid"),
        NotFound,
    )
)]
async fn download_file(
    State(chats): State<Chats>,
    Ids(id): Ids<AttachmentId>,
    access: Access,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(&chats, id, Variant::Original, access, &headers).await
}

/// Download an image's thumbnail.
///
/// As the file itself; 404 for attachments that are not images.
#[utoipa::path(
    get,
    path = "/api/attachments/{id}/thumbnail/",
    tag = "attachments",
    params(
        ("id" = AttachmentId, Path, description = "The attachment's id"),
        ("exp" = Option<i64>, Query, description = "Signed URL: expiry (unix seconds)"),
        ("sig" = Option<String>, Query, description = "Signed URL: signature"),
    ),
    security((), ("jwtAuth" = [])),
    responses(
        (status = OK, description = "The thumbnail (JPEG, or PNG for images with transparency)", content_type = "image/*"),
        (status = FORBIDDEN, description = "A signed URL that is expired or not valid"),
        NotFound,
    )
)]
async fn download_thumbnail(
    State(chats): State<Chats>,
    Ids(id): Ids<AttachmentId>,
    access: Access,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(&chats, id, Variant::Thumbnail, access, &headers).await
}

/// What allows a download: a signed URL's query, or the Bearer token's user.
enum Access {
    Signed { expires: i64, sig: String },
    User(CurrentUser),
}

impl<S> FromRequestParts<S> for Access
where
    S: Send + Sync,
    Accounts: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let mut expires = None;
        let mut sig = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "exp" => expires = Some(value.parse::<i64>().unwrap_or(i64::MIN)),
                "sig" => sig = Some(value.into_owned()),
                _ => {}
            }
        }
        match (expires, sig) {
            (Some(expires), Some(sig)) => Ok(Access::Signed { expires, sig }),
            (None, None) => Ok(Access::User(CurrentUser::from_request_parts(parts, state).await?)),
            _ => Err(link_refused()),
        }
    }
}

fn link_refused() -> ApiError {
    ApiError::PermissionDenied
}

async fn serve(
    chats: &Chats,
    id: AttachmentId,
    variant: Variant,
    access: Access,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let media = chats.media();
    let row = match access {
        Access::Signed { expires, sig } => {
            if !media.signer().verify(id, variant, expires, &sig) {
                return Err(link_refused());
            }
            media.get(id).await?
        }
        Access::User(user) => chats.attachment_for(user.id(), id).await?,
    };
    let (total, content_type) = Media::file_of(&row, variant)?;
    let etag = format!("\"{}-{}\"", row.id.as_uuid().simple(), variant.segment());
    let mut answer = HeaderMap::new();
    answer.insert(ETAG, value(&etag));
    answer.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    answer.insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    answer.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let not_modified = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, answer).into_response());
    }
    let range = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(asked) => match byte_range(asked, total) {
            Ranged::Whole => None,
            Ranged::Part(range) => Some(range),
            Ranged::Unsatisfiable => {
                answer.insert(CONTENT_RANGE, value(&format!("bytes */{total}")));
                return Ok((StatusCode::RANGE_NOT_SATISFIABLE, answer).into_response());
            }
        },
    };
    let content_type = content_type.to_string();
    let opened = media.open(&row, variant, range.clone()).await?;
    answer.insert(CONTENT_TYPE, value(&content_type));
    answer.insert(CONTENT_DISPOSITION, value(&disposition(&row, variant)));
    let status = match &range {
        Some(range) => {
            answer.insert(
                CONTENT_RANGE,
                value(&format!("bytes {}-{}/{}", range.start, range.end - 1, opened.total)),
            );
            answer.insert(CONTENT_LENGTH, value(&(range.end - range.start).to_string()));
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            answer.insert(CONTENT_LENGTH, value(&opened.total.to_string()));
            StatusCode::OK
        }
    };
    Ok((status, answer, Body::from_stream(opened.body)).into_response())
}

/// Header values built from text this server made (ids, numbers, sanitized names, types
/// sniffed from a fixed list) are always valid; anything else falls back to empty.
fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `inline` for what a browser shows as media, `attachment` (a download) for the rest, with
/// the stored name in both the plain and the RFC 5987 form.
fn disposition(row: &AttachmentRow, variant: Variant) -> String {
    let shown = ["image/", "audio/", "video/"]
        .iter()
        .any(|p| row.content_type.starts_with(p));
    let kind = if shown || variant == Variant::Thumbnail {
        "inline"
    } else {
        "attachment"
    };
    let name = match variant {
        Variant::Original => row.name.clone(),
        Variant::Thumbnail => format!("thumbnail-{}", row.name),
    };
    disposition_as(kind, &name)
}

/// `kind` (`inline` or `attachment`) with `name` in both the plain and the RFC 5987 form.
pub(crate) fn disposition_as(kind: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[derive(Debug, PartialEq)]
enum Ranged {
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

/// A `Range` header of one byte range, against a file of `total` bytes. Several ranges, or a
/// header this does not understand, are answered with the whole file (RFC 9110 allows it).
fn byte_range(header: &str, total: u64) -> Ranged {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.parse::<u64>(), end.parse::<u64>()) {
        // `bytes=-N`: the last N bytes.
        _ if start.is_empty() => match end.parse::<u64>() {
            Ok(0) | Err(_) => return Ranged::Unsatisfiable,
            Ok(n) => total.saturating_sub(n)..total,
        },
        (Ok(first), _) if end.is_empty() => first..total,
        (Ok(first), Ok(last)) if last >= first => first..(last + 1).min(total),
        _ => return Ranged::Whole,
    };
    if range.start >= total || range.is_empty() {
        Ranged::Unsatisfiable
    } else {
        Ranged::Part(range)
    }
}

#[cfg(test)]
mod tests {
    use super::{byte_range, Ranged};

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-9", 100), Ranged::Part(0..10));
        assert_eq!(byte_range("bytes=90-", 100), Ranged::Part(90..100));
        assert_eq!(byte_range("bytes=-10", 100), Ranged::Part(90..100));
        assert_eq!(byte_range("bytes=50-1000", 100), Ranged::Part(50..100));
        assert_eq!(byte_range("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 100), Ranged::Unsatisfiable);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), Ranged::Whole);
        assert_eq!(byte_range("items=0-1", 100), Ranged::Whole);
        assert_eq!(byte_range("bytes=9-3", 100), Ranged::Whole);
    }
}
