//! Attachments and media (docs/media.md, issue 13), black-box: uploads and their refusals,
//! private downloads (signed URLs, Bearer, Range), messages that carry attachments over REST,
//! v2 and the finished app's v1 data-URL photos, deletion and the sweeper; on every configured
//! backend, and on S3 when `CAUSERIE_TEST_S3_ENDPOINT` names an S3-compatible server.

#[macro_use]
mod common;

use std::io::Cursor;

use causerie::ids::ChatId;
use causerie::wire::v2::{Command, SendMessage, ServerFrame};
use common::ws::{self, WsClient};
use common::{Backend, Reply, TestServer, TestUser, PASSWORD};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// Where a test server keeps its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    /// `media_root`, a directory of the test's own.
    Local,
    /// A fresh bucket on the S3-compatible server named by `CAUSERIE_TEST_S3_ENDPOINT`.
    S3,
}

/// Each test on SQLite and PostgreSQL (when configured), each with local files and, when
/// `CAUSERIE_TEST_S3_ENDPOINT` is set (CI sets it), in an S3 bucket: the S3 suite is the same
/// tests.
macro_rules! media_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::common::Backend;
                use super::Storage;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(Backend::Sqlite, Storage::Local).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if super::skipped(Backend::Postgres, Storage::Local, stringify!($name)) {
                        return;
                    }
                    super::$name(Backend::Postgres, Storage::Local).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_s3() {
                    if super::skipped(Backend::Sqlite, Storage::S3, stringify!($name)) {
                        return;
                    }
                    super::$name(Backend::Sqlite, Storage::S3).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_s3() {
                    if super::skipped(Backend::Postgres, Storage::S3, stringify!($name)) {
                        return;
                    }
                    super::$name(Backend::Postgres, Storage::S3).await;
                }
            }
        )*
    };
}

media_tests!(
    upload_send_download,
    downloads_are_private,
    refused_uploads_store_nothing,
    daily_quota,
    exif_is_stripped,
    range_requests,
    messages_name_attachments,
    app_photo_frames_become_urls,
    rest_photos_become_urls,
    photo_frames_over_the_limit_are_refused,
    large_frames_share_the_budget,
    deleting_and_sweeping,
    stored_photos_are_converted,
    avatars,
    avatar_refusals,
);

/// True (with a note) when a run's database or S3 server is not configured.
fn skipped(backend: Backend, storage: Storage, test: &str) -> bool {
    if !backend.is_available() {
        eprintln!(
            "note: {} not set; skipping the PostgreSQL run of {test}",
            common::POSTGRES_ENV
        );
        return true;
    }
    if storage == Storage::S3 && s3_endpoint().is_none() {
        eprintln!("note: {S3_ENV} not set; skipping the S3 run of {test}");
        return true;
    }
    false
}

fn s3_endpoint() -> Option<String> {
    std::env::var(S3_ENV).ok().filter(|v| !v.is_empty())
}

/// The variable naming the S3-compatible server of the S3 suite (e.g. moto's, started by
/// `.ci/run`); `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` must be set beside it.
const S3_ENV: &str = "CAUSERIE_TEST_S3_ENDPOINT";
/// What the test servers' `public_url` is (the default): signed URLs start with it.
const PUBLIC: &str = "http://127.0.0.1:8000";

// ---- fixtures --------------------------------------------------------------------------------

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A PNG of noise, which does not compress: about `3 × width × height` bytes.
fn noise_png(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let image = image::RgbImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// What the EXIF block of [`jpeg_with_exif`] carries, to be looked for in what is served.
const GPS_SECRET: &[u8] = b"GPS 48.8566N 2.3522E SECRET";

/// A JPEG with an EXIF block (APP1) holding an orientation tag and a GPS-looking text.
fn jpeg_with_exif(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, _| image::Rgb([(x * 3) as u8, 120, 200]));
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90)
        .encode_image(&image)
        .unwrap();
    // TIFF header, one IFD entry (Orientation = 1), no next IFD, then the text.
    let mut tiff = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x01\0\0\0\0\0\0\0".to_vec();
    tiff.extend_from_slice(GPS_SECRET);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let length = (app1.len() + 2) as u16;
    let mut out = plain[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---- helpers ---------------------------------------------------------------------------------

/// A server whose attachments live in the test's own directory, or in a bucket of its own on
/// the S3 server.
async fn server(backend: Backend, storage: Storage, tweak: impl FnOnce(&mut causerie::Config)) -> TestServer {
    let bucket = match storage {
        Storage::Local => None,
        Storage::S3 => Some(new_bucket().await),
    };
    TestServer::start_with(backend, |c| {
        if let Some((endpoint, bucket)) = bucket {
            c.media_s3_bucket = Some(bucket);
            c.media_s3_endpoint = Some(endpoint);
            c.media_s3_region = Some("us-east-1".into());
        }
        tweak(c);
    })
    .await
}

/// Creates a bucket on the S3 server; its endpoint and name.
async fn new_bucket() -> (String, String) {
    let endpoint = s3_endpoint().unwrap_or_else(|| panic!("{S3_ENV} is not set"));
    let bucket = format!("causerie-test-{}", Uuid::new_v4().simple());
    let created = reqwest::Client::new()
        .put(format!("{}/{bucket}", endpoint.trim_end_matches('/')))
        .send()
        .await
        .expect("S3 server answers");
    assert!(created.status().is_success(), "creating bucket: {}", created.status());
    (endpoint, bucket)
}

async fn user(srv: &TestServer, name: &str) -> TestUser {
    srv.quick_user_named(&format!("{name}@example.com"), PASSWORD, name, "Tester")
        .await
}

async fn trio(srv: &TestServer) -> (TestUser, TestUser, TestUser, String) {
    let alice = user(srv, "alice").await;
    let bob = user(srv, "bob").await;
    let carol = user(srv, "carol").await;
    let chat = srv.open_chat(&alice, &bob).await["id"].as_str().unwrap().to_string();
    (alice, bob, carol, chat)
}

/// A multipart body with the given `(name, filename, bytes)` parts, and its content type.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = format!("----causerie{}", Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(filename) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => {
                body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes())
            }
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload_as(srv: &TestServer, who: &TestUser, name: &str, bytes: &[u8], chat: Option<&str>) -> Reply {
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = vec![("file", Some(name), bytes)];
    if let Some(chat) = chat {
        parts.push(("chat", None, chat.as_bytes()));
    }
    let (content_type, body) = multipart(&parts);
    let auth = format!("Bearer {}", who.access);
    srv.request_raw(
        reqwest::Method::POST,
        "/api/attachments/",
        Some(&content_type),
        body,
        &[("Authorization", &auth)],
    )
    .await
}

/// Uploads and expects 201; the attachment JSON.
async fn upload(srv: &TestServer, who: &TestUser, name: &str, bytes: &[u8]) -> Value {
    let reply = upload_as(srv, who, name, bytes, None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "upload: {}", reply.text);
    reply.body
}

/// A signed URL as a path on the test server.
fn local(url: &Value) -> String {
    let url = url.as_str().unwrap_or_else(|| panic!("not a URL: {url}"));
    url.strip_prefix(PUBLIC)
        .unwrap_or_else(|| panic!("{url} does not start with the public URL"))
        .to_string()
}

struct Download {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

async fn fetch(srv: &TestServer, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Download {
    let mut req = srv.client.get(srv.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = req.send().await.expect("download request");
    Download {
        status: response.status(),
        headers: response.headers().clone(),
        bytes: response.bytes().await.expect("download body").to_vec(),
    }
}

/// Files the server's media store holds (its directory or its bucket).
async fn stored_files(srv: &TestServer) -> usize {
    srv.state.stored_objects().await
}

/// Files under the server's local media directory.
fn local_files(srv: &TestServer) -> usize {
    let Some(root) = &srv.config.media_root else {
        return 0;
    };
    walk(root)
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                1
            }
        })
        .sum()
}

async fn history(srv: &TestServer, who: &TestUser, chat: &str) -> Vec<Value> {
    let reply = srv
        .get_auth(&format!("/api/message/?refChat={chat}"), &who.access)
        .await;
    reply.expect_status(200);
    reply.body["results"].as_array().unwrap().clone()
}

// ---- the tests -------------------------------------------------------------------------------

/// Upload → send (v2, `attachments`) → the other member downloads the original and the
/// thumbnail through the URLs in the message. On S3 nothing touches the local disk.
async fn upload_send_download(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |_| {}).await;
    the_round_trip(&srv).await;
    assert_eq!(stored_files(&srv).await, 2, "the file and its thumbnail");
    if storage == Storage::S3 {
        assert_eq!(local_files(&srv), 0, "nothing on the local disk");
    }
    srv.finish().await;
}

async fn the_round_trip(srv: &TestServer) {
    let (alice, bob, _carol, chat) = trio(srv).await;
    let picture = png(640, 480);
    let reply = upload_as(srv, &alice, "holiday.png", &picture, None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "upload: {}", reply.text);
    // The keys, in its order.
    let keys = [
        "id",
        "url",
        "thumbnailUrl",
        "contentType",
        "name",
        "size",
        "width",
        "height",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            reply
                .text
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {}", reply.text))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "key order: {}", reply.text);
    assert_eq!(reply.body.as_object().unwrap().len(), keys.len());
    let attachment = reply.body.clone();
    assert_eq!(attachment["contentType"], "image/png");
    assert_eq!(attachment["name"], "holiday.png");
    assert_eq!(
        (attachment["width"].as_i64(), attachment["height"].as_i64()),
        (Some(640), Some(480))
    );

    let mut ws = ws::connect(
        &srv.ws_url(&format!("/ws/?token={}", alice.access)),
        Some("causerie.v2"),
    )
    .await;
    let chat_id: ChatId = chat.parse().unwrap();
    ws.send_frame(&Command::Send(SendMessage {
        chat: chat_id,
        client_id: "photo-1".into(),
        message: "look".into(),
        message_type: None,
        extra_data: None,
        attachments: vec![attachment["id"].as_str().unwrap().parse().unwrap()],
    }))
    .await;
    let ack = ws.recv_until(|f| matches!(f, ServerFrame::Ack(_))).await;
    let ack = frame_of!(ack, ServerFrame::Ack);
    assert_eq!(ack.message.kind, 2, "a message with attachments is a photo");
    assert_eq!(ack.message.attachments.len(), 1);
    assert_eq!(
        ack.message.extra_data.as_deref(),
        Some(ack.message.attachments[0].url.as_str())
    );
    ws.close().await;

    // Bob reads it from the history and downloads both files, without a token.
    let listed = history(srv, &bob, &chat).await;
    let message = &listed[0];
    assert_eq!(message["type"], 2);
    assert_eq!(message["attachments"][0]["id"], attachment["id"]);
    let original = fetch(srv, &local(&message["extraData"]), None, &[]).await;
    assert_eq!(original.status, 200);
    assert_eq!(original.headers["content-type"], "image/png");
    assert_eq!(original.headers["x-content-type-options"], "nosniff");
    assert!(original.headers.contains_key("etag"));
    assert!(original.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline; filename=\"holiday.png\""));
    let decoded = image::load_from_memory(&original.bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (640, 480));
    let thumb = fetch(srv, &local(&message["attachments"][0]["thumbnailUrl"]), None, &[]).await;
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.headers["content-type"], "image/jpeg");
    let small = image::load_from_memory(&thumb.bytes).unwrap();
    assert_eq!((small.width(), small.height()), (320, 240));

    // An unchanged copy is not sent again.
    let etag = original.headers["etag"].to_str().unwrap().to_string();
    let again = fetch(srv, &local(&message["extraData"]), None, &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);
}

/// Only the uploader, and once posted the chat's members, may read; signed URLs expire and
/// cannot be altered.
async fn downloads_are_private(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |_| {}).await;
    let (alice, bob, carol, chat) = trio(&srv).await;
    let attachment = upload(&srv, &alice, "a.png", &png(20, 20)).await;
    let id = attachment["id"].as_str().unwrap().to_string();
    let by_bearer = format!("/api/attachments/{id}/file/");

    assert_eq!(
        fetch(&srv, &by_bearer, Some(&alice.access), &[]).await.status,
        200,
        "uploader"
    );
    assert_eq!(
        fetch(&srv, &by_bearer, Some(&bob.access), &[]).await.status,
        404,
        "not posted yet"
    );
    srv.get_auth(&format!("/api/attachments/{id}/"), &bob.access)
        .await
        .expect(404, json!({ "detail": "Not found." }));
    srv.get(&by_bearer).await.expect(
        401,
        json!({ "detail": "Authentication credentials were not provided." }),
    );

    srv.post_json_auth(
        "/api/message/",
        &alice.access,
        &json!({ "refChat": chat, "message": "", "type": 2, "extraData": attachment["url"] }),
    )
    .await
    .expect_status(201);
    assert_eq!(
        fetch(&srv, &by_bearer, Some(&bob.access), &[]).await.status,
        200,
        "member"
    );
    assert_eq!(
        fetch(&srv, &by_bearer, Some(&carol.access), &[]).await.status,
        404,
        "outsider"
    );
    let described = srv.get_auth(&format!("/api/attachments/{id}/"), &bob.access).await;
    described.expect_status(200);
    assert_eq!(described.body["id"], attachment["id"]);

    // Signed URLs: as issued they work for anyone holding them; altered or expired they don't.
    let signed = local(&attachment["url"]);
    assert_eq!(fetch(&srv, &signed, None, &[]).await.status, 200);
    let tampered = format!("{}x", signed.trim_end_matches(|c: char| c != '='));
    let refused = srv.get(&tampered).await;
    refused.expect(
        403,
        json!({ "detail": "You do not have permission to perform this action." }),
    );
    let other_file = signed.replace("/file/", "/thumbnail/");
    srv.get(&other_file).await.expect_status(403);
    let moved = signed.replace("exp=", "exp=9");
    srv.get(&moved).await.expect_status(403);
    let long_ago = chrono::Utc::now().timestamp() - 10 * srv.config.media_url_ttl_secs as i64;
    let expired = srv.state.attachment_url_signed_at(id.parse().unwrap(), false, long_ago);
    srv.get(&local(&json!(expired))).await.expect_status(403);
    srv.finish().await;
}

/// Wrong type (415), oversize (413, while reading), broken images and decompression bombs
/// (400): nothing stored.
async fn refused_uploads_store_nothing(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |c| {
        c.media_max_bytes = 50_000;
        c.media_max_pixels = 1_000;
    })
    .await;
    let alice = user(&srv, "alice").await;

    let script = upload_as(&srv, &alice, "notes.txt", b"just some text, no magic number", None).await;
    script.expect(
        415,
        json!({ "detail": "Unsupported media type \"application/octet-stream\" in request." }),
    );
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    elf.resize(200, 0);
    let program = upload_as(&srv, &alice, "photo.jpg", &elf, None).await;
    assert_eq!(program.status, 415, "a program named .jpg: {}", program.text);

    // Refused from its declared length, and (a length within the slack for the multipart
    // framing) while it is read.
    let big = vec![0xAB_u8; 120_000];
    let reply = upload_as(&srv, &alice, "big.bin", &big, None).await;
    reply.expect(413, json!({ "detail": "Request body is too large." }));
    let mut file = png(10, 10);
    file.extend(std::iter::repeat_n(0xCD_u8, 60_000));
    // Refused while the client is still sending: the server answers 413 and closes, and the
    // kernel may reset the connection before the client reads the answer (unread bytes at
    // close). Either way nothing may be stored (checked below).
    let (content_type, body) = multipart(&[("file", Some("big.png"), &file)]);
    let sent = reqwest::Client::new()
        .post(format!("{}/api/attachments/", srv.base_url()))
        .header("Content-Type", content_type)
        .header("Authorization", format!("Bearer {}", alice.access))
        .body(body)
        .send()
        .await;
    if let Ok(reply) = sent {
        assert_eq!(reply.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    let bomb = upload_as(&srv, &alice, "wide.png", &png(50, 50), None).await;
    bomb.expect(
        400,
        json!({ "file": ["Ensure this image has no more than 1000 pixels."] }),
    );

    let mut broken = png(20, 20);
    broken.truncate(60);
    let reply = upload_as(&srv, &alice, "broken.png", &broken, None).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.body["file"].is_array(), "{}", reply.text);

    let (content_type, body) = multipart(&[("other", None, b"x")]);
    let auth = format!("Bearer {}", alice.access);
    srv.request_raw(
        reqwest::Method::POST,
        "/api/attachments/",
        Some(&content_type),
        body,
        &[("Authorization", &auth)],
    )
    .await
    .expect(400, json!({ "file": ["No file was submitted."] }));
    let not_member = upload_as(&srv, &alice, "a.png", &png(4, 4), Some(&Uuid::new_v4().to_string())).await;
    assert_eq!(not_member.status, 400);
    assert!(not_member.body["chat"].is_array());

    assert_eq!(srv.state.attachment_count().await, 0, "no row");
    assert_eq!(stored_files(&srv).await, 0, "no file");

    let metrics = srv.get("/metrics").await.text;
    for cause in ["type", "size", "image"] {
        assert!(
            metrics.contains(&format!("causerie_media_uploads_refused_total{{cause=\"{cause}\"}}")),
            "refusals by {cause} counted"
        );
    }
    srv.finish().await;
}

/// Past `media_quota_bytes_per_day` an upload is refused with 429 and a `Retry-After`.
async fn daily_quota(backend: Backend, storage: Storage) {
    let picture = png(30, 30);
    let quota = picture.len() as u64 + 10;
    let srv = server(backend, storage, |c| c.media_quota_bytes_per_day = quota).await;
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    upload(&srv, &alice, "one.png", &picture).await;
    let reply = upload_as(&srv, &alice, "two.png", &picture, None).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    assert!(reply.header("retry-after").is_some());
    upload(&srv, &bob, "bobs.png", &picture).await;
    assert_eq!(srv.state.attachment_count().await, 2);
    srv.finish().await;
}

/// What is served of a JPEG has no EXIF block (and none of its GPS data) left.
async fn exif_is_stripped(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |_| {}).await;
    let alice = user(&srv, "alice").await;
    let original = jpeg_with_exif(64, 48);
    assert!(contains(&original, b"Exif\0\0") && contains(&original, GPS_SECRET));
    let attachment = upload(&srv, &alice, "gps.jpg", &original).await;
    assert_eq!(attachment["contentType"], "image/jpeg");
    for url in [&attachment["url"], &attachment["thumbnailUrl"]] {
        let served = fetch(&srv, &local(url), None, &[]).await;
        assert_eq!(served.status, 200);
        assert!(!contains(&served.bytes, b"Exif"), "EXIF gone");
        assert!(!contains(&served.bytes, GPS_SECRET), "GPS gone");
        image::load_from_memory(&served.bytes).expect("still a picture");
    }
    srv.finish().await;
}

/// Single byte ranges are served as 206 (audio and video seek), beyond the end as 416.
async fn range_requests(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |_| {}).await;
    let alice = user(&srv, "alice").await;
    let attachment = upload(&srv, &alice, "r.png", &png(100, 100)).await;
    let path = local(&attachment["url"]);
    let whole = fetch(&srv, &path, None, &[]).await;
    let size = whole.bytes.len();
    assert_eq!(size as i64, attachment["size"].as_i64().unwrap());
    assert_eq!(whole.headers["accept-ranges"], "bytes");

    let part = fetch(&srv, &path, None, &[("Range", "bytes=10-19")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.headers["content-range"], format!("bytes 10-19/{size}").as_str());
    assert_eq!(part.bytes, whole.bytes[10..20]);
    let tail = fetch(&srv, &path, None, &[("Range", "bytes=-7")]).await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.bytes, whole.bytes[size - 7..]);
    let beyond = fetch(&srv, &path, None, &[("Range", &format!("bytes={size}-"))]).await;
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.headers["content-range"], format!("bytes */{size}").as_str());
    srv.finish().await;
}

/// A message may only carry its author's own uploads for that chat, and no client may pass
/// off the server's stored reference as its `extraData`.
async fn messages_name_attachments(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |_| {}).await;
    let (alice, bob, carol, chat) = trio(&srv).await;
    let bobs = upload(&srv, &bob, "b.png", &png(8, 8)).await;
    let reply = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "", "type": 2, "attachments": [bobs["id"]] }),
        )
        .await;
    reply.expect(
        400,
        json!({ "attachments": [format!("Invalid pk \"{}\" - object does not exist.", bobs["id"].as_str().unwrap())] }),
    );
    let forged = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "", "type": 2,
                     "extraData": format!("causerie:attachments:[{{\"id\":{},\"type\":\"image/png\",\"name\":\"b.png\",\"size\":1,\"thumb\":true}}]", bobs["id"]) }),
        )
        .await;
    assert_eq!(forged.status, 400, "{}", forged.text);
    assert!(forged.body["extraData"].is_array());

    // An upload meant for one chat cannot be posted in another.
    let carol_chat = srv.open_chat(&alice, &carol).await["id"].as_str().unwrap().to_string();
    let meant = upload_as(&srv, &alice, "m.png", &png(8, 8), Some(&chat)).await;
    meant.expect_status(201);
    let elsewhere = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": carol_chat, "message": "x", "attachments": [meant.body["id"]] }),
        )
        .await;
    assert_eq!(elsewhere.status, 400, "{}", elsewhere.text);
    assert!(history(&srv, &carol, &carol_chat).await.is_empty(), "nothing stored");

    // Posted where it was meant, the message lists it; a text stays a text.
    let posted = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "two", "attachments": [meant.body["id"]] }),
        )
        .await;
    posted.expect_status(201);
    assert_eq!(posted.body["type"], 2);
    assert_eq!(posted.body["message"], "two");
    assert_eq!(posted.body["attachments"][0]["id"], meant.body["id"]);
    let chats = srv.get_auth("/api/chat/", &bob.access).await;
    let last = &chats.body["results"][0]["lastMessage"][0];
    assert_eq!(last["attachments"][0]["id"], meant.body["id"]);
    assert!(
        last["extraData"].as_str().unwrap().contains("sig="),
        "the chat list carries a URL"
    );
    srv.finish().await;
}

/// A v1 socket as the finished app opens it (`format=object`).
async fn app_socket(srv: &TestServer, chat: &str, who: &TestUser) -> WsClient {
    let url = srv.ws_url(&format!("/ws/chat/{chat}/?token={}&format=object", who.access));
    ws::connect(&url, None).await
}

/// A photo frame as the finished app sends it: `extraData` is a base64 `data:` URL.
fn photo_frame(photo: &[u8], chat: &str, author: &TestUser) -> Value {
    use base64::Engine;
    let data_url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(photo)
    );
    json!({ "message": "", "refChat": chat, "author": author.id, "type": 2, "extraData": data_url })
}

/// The finished app's photo: a v1 frame of type 2 with a 5 MB `data:` URL (far over the
/// default 64 KiB `ws_max_frame_bytes`) is stored as an attachment and delivered as its
/// signed URL, and the socket stays open.
async fn app_photo_frames_become_urls(backend: Backend, storage: Storage) {
    use base64::Engine;
    let srv = server(backend, storage, |_| {}).await;
    let (alice, bob, _carol, chat) = trio(&srv).await;
    let mut alice_ws = app_socket(&srv, &chat, &alice).await;
    let mut bob_ws = app_socket(&srv, &chat, &bob).await;
    let photo = noise_png(1150, 1150);
    let data_url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&photo)
    );
    assert!(data_url.len() > 5_000_000, "a 5 MB frame");
    alice_ws
        .send_frame(&json!({ "message": "", "refChat": chat, "author": alice.id, "type": 2, "extraData": data_url }))
        .await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        let frame = ws.recv_json().await;
        let text = frame.to_string();
        assert!(text.len() < 2_000, "the frame is small: {} bytes", text.len());
        let url = &frame["message"]["extraData"];
        assert!(url.as_str().unwrap().contains("/api/attachments/"), "{frame}");
        assert_eq!(frame["message"]["type"], 2);
        assert!(
            frame["message"].get("attachments").is_none(),
            "v1 frames keep the seed's keys"
        );
    }
    let listed = history(&srv, &bob, &chat).await;
    let served = fetch(&srv, &local(&listed[0]["extraData"]), None, &[]).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.headers["content-type"], "image/png");
    let decoded = image::load_from_memory(&served.bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (1150, 1150));

    // Still open: the next message goes through.
    alice_ws
        .send_frame(&json!({ "message": "did you get it?", "refChat": chat, "author": alice.id }))
        .await;
    assert_eq!(bob_ws.recv_json().await["message"]["message"], "did you get it?");
    assert_eq!(alice_ws.recv_json().await["message"]["message"], "did you get it?");

    // Not a picture: an error frame, nothing stored, and the socket stays open too.
    alice_ws
        .send_frame(&json!({ "message": "", "type": 2, "extraData": "data:image/png;base64,aGVsbG8=" }))
        .await;
    let error = alice_ws.recv_json().await;
    assert_eq!(error["error"]["code"], "attachment_type_refused", "{error}");
    assert_eq!(history(&srv, &bob, &chat).await.len(), 2);
    srv.finish().await;
}

/// A frame over `ws_max_photo_bytes` is answered with an error frame, nothing is stored, and
/// the socket goes on: a photo under the limit (but over `ws_max_frame_bytes`) and a text
/// after it are delivered.
async fn photo_frames_over_the_limit_are_refused(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |c| c.ws_max_photo_bytes = 300_000).await;
    let (alice, bob, _carol, chat) = trio(&srv).await;
    let mut alice_ws = app_socket(&srv, &chat, &alice).await;
    let mut bob_ws = app_socket(&srv, &chat, &bob).await;
    let too_big = photo_frame(&noise_png(320, 320), &chat, &alice);
    assert!(too_big.to_string().len() > 300_000);
    alice_ws.send_frame(&too_big).await;
    let error = alice_ws.recv_json().await;
    assert_eq!(error["error"]["code"], "frame_too_large", "{error}");

    let fits = photo_frame(&noise_png(150, 150), &chat, &alice);
    assert!(fits.to_string().len() > 64 * 1024, "over ws_max_frame_bytes");
    alice_ws.send_frame(&fits).await;
    alice_ws
        .send_frame(&json!({ "message": "and a word", "refChat": chat, "author": alice.id }))
        .await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        let photo = ws.recv_json().await;
        assert!(
            photo["message"]["extraData"]
                .as_str()
                .unwrap()
                .contains("/api/attachments/"),
            "{photo}"
        );
        assert_eq!(ws.recv_json().await["message"]["message"], "and a word");
    }
    assert_eq!(
        history(&srv, &bob, &chat).await.len(),
        2,
        "the refused frame stored nothing"
    );
    bob_ws.expect_silence().await;
    srv.finish().await;
}

/// Large frames on several sockets at once, with a budget smaller than two of them: they wait
/// for one another, and every one is stored and delivered.
async fn large_frames_share_the_budget(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |c| {
        c.ws_max_photo_bytes = 600_000;
        c.ws_large_frame_budget_bytes = 600_000;
    })
    .await;
    let (alice, bob, _carol, chat) = trio(&srv).await;
    let mut alice_ws = app_socket(&srv, &chat, &alice).await;
    let mut bob_ws = app_socket(&srv, &chat, &bob).await;
    let from_alice = photo_frame(&noise_png(300, 300), &chat, &alice);
    let from_bob = photo_frame(&noise_png(300, 301), &chat, &bob);
    assert!(from_alice.to_string().len() > 300_000, "two do not fit the budget");
    alice_ws.send_frame(&from_alice).await;
    bob_ws.send_frame(&from_bob).await;
    alice_ws.send_frame(&from_alice).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        for _ in 0..3 {
            let frame = ws.recv_json().await;
            assert!(
                frame["message"]["extraData"]
                    .as_str()
                    .unwrap()
                    .contains("/api/attachments/"),
                "{frame}"
            );
        }
    }
    assert_eq!(history(&srv, &bob, &chat).await.len(), 3);
    srv.finish().await;
}

/// Deleting a message removes what it carried; uploads no message carried go after 24 hours.
async fn deleting_and_sweeping(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |_| {}).await;
    let (alice, _bob, _carol, chat) = trio(&srv).await;
    let posted = upload(&srv, &alice, "p.png", &png(10, 10)).await;
    let left = upload(&srv, &alice, "l.png", &png(10, 10)).await;
    let message = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "", "attachments": [posted["id"]] }),
        )
        .await;
    message.expect_status(201);
    assert_eq!(
        srv.state.sweep_media_at(chrono::Utc::now()).await,
        0,
        "nothing is a day old"
    );
    assert_eq!(srv.state.attachment_count().await, 2);

    let id = message.body["id"].as_str().unwrap();
    srv.delete_auth(&format!("/api/message/{id}/"), &alice.access, None)
        .await
        .expect_status(204);
    assert_eq!(
        srv.state.attachment_count().await,
        1,
        "the message's attachment went with it"
    );
    assert_eq!(fetch(&srv, &local(&posted["url"]), None, &[]).await.status, 404);

    let tomorrow = chrono::Utc::now() + chrono::Duration::hours(25);
    assert_eq!(srv.state.sweep_media_at(tomorrow).await, 1, "the unattached upload");
    assert_eq!(srv.state.attachment_count().await, 0);
    assert_eq!(fetch(&srv, &local(&left["url"]), None, &[]).await.status, 404);
    assert_eq!(stored_files(&srv).await, 0, "no file left");
    let metrics = srv.get("/metrics").await.text;
    assert!(metrics.contains("causerie_media_bytes_stored"));
    srv.finish().await;
}

/// `import-django --convert-photos`: photos that stored messages keep as `data:` URLs become
/// attachments; one that is not a picture stays as it was.
async fn stored_photos_are_converted(backend: Backend, storage: Storage) {
    use base64::Engine;
    let srv = server(backend, storage, |_| {}).await;
    let (alice, bob, _carol, chat) = trio(&srv).await;
    let data_url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png(40, 30))
    );
    // As an import from Django leaves them (the server converts such photos on arrival).
    for extra in [data_url.as_str(), "data:image/png;base64,aGVsbG8="] {
        let posted = srv
            .post_json_auth(
                "/api/message/",
                &alice.access,
                &json!({ "refChat": chat, "message": "a photo", "type": 2, "extraData": "" }),
            )
            .await;
        posted.expect_status(201);
        let id: Uuid = posted.body["id"].as_str().unwrap().parse().unwrap();
        srv.state.set_message_extra_data(id, extra).await;
    }
    assert_eq!(srv.state.convert_stored_photos().await, (1, 1));
    let listed = history(&srv, &bob, &chat).await;
    assert_eq!(listed[0]["extraData"], "data:image/png;base64,aGVsbG8=", "kept");
    assert_eq!(listed[1]["attachments"][0]["width"], 40);
    let served = fetch(&srv, &local(&listed[1]["extraData"]), None, &[]).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.headers["content-type"], "image/png");
    assert_eq!(srv.state.convert_stored_photos().await, (0, 1), "converted once");
    srv.finish().await;
}

/// `POST /api/message/` with a photo as a `data:` URL (what the finished app sends): stored as
/// an attachment, answered and delivered as its signed URL; a refused photo stores nothing.
async fn rest_photos_become_urls(backend: Backend, storage: Storage) {
    use base64::Engine;
    let srv = server(backend, storage, |_| {}).await;
    let (alice, bob, _carol, chat) = trio(&srv).await;
    let mut bob_ws = app_socket(&srv, &chat, &bob).await;
    let data_url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png(40, 30))
    );
    let posted = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "", "type": 2, "extraData": data_url }),
        )
        .await;
    posted.expect_status(201);
    assert_eq!(posted.body["type"], 2);
    assert_eq!(posted.body["attachments"][0]["width"], 40);
    let url = posted.body["extraData"].as_str().unwrap().to_string();
    assert!(url.contains("/api/attachments/") && url.contains("sig="), "{url}");

    let frame = bob_ws.recv_json().await;
    let delivered = frame["message"]["extraData"].as_str().unwrap();
    assert!(
        delivered.contains(posted.body["attachments"][0]["id"].as_str().unwrap()),
        "{frame}"
    );
    let served = fetch(&srv, &local(&json!(delivered)), None, &[]).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.headers["content-type"], "image/png");
    let decoded = image::load_from_memory(&served.bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (40, 30));

    srv.post_json_auth(
        "/api/message/",
        &alice.access,
        &json!({ "refChat": chat, "message": "", "type": 2, "extraData": "data:image/png;base64,aGVsbG8=" }),
    )
    .await
    .expect(
        415,
        json!({ "detail": "Unsupported media type \"application/octet-stream\" in request." }),
    );
    assert_eq!(
        history(&srv, &bob, &chat).await.len(),
        1,
        "the refused photo is not stored"
    );
    assert_eq!(srv.state.attachment_count().await, 1);
    assert_eq!(stored_files(&srv).await, 2, "the photo and its thumbnail");
    bob_ws.close().await;
    srv.finish().await;
}

async fn set_avatar(srv: &TestServer, who: &TestUser, avatar: Value) -> Reply {
    srv.patch_json_auth(
        &format!("/api/user/{}/", who.id),
        &who.access,
        &json!({ "avatar": avatar }),
    )
    .await
}

/// The attachment a shown avatar URL names.
fn avatar_id(avatar: &Value) -> String {
    let url = avatar.as_str().unwrap_or_else(|| panic!("no avatar URL: {avatar}"));
    assert!(url.contains("sig="), "signed: {url}");
    url.split("/api/attachments/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// An avatar is one of the user's uploaded images: shown as a signed URL to whoever sees the
/// user (their profile, a contact's chat list, anyone's search), kept by the sweeper, and
/// removed, file included, when it is replaced or cleared.
async fn avatars(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |_| {}).await;
    let (alice, bob, carol, _chat) = trio(&srv).await;
    let first = upload(&srv, &alice, "me.png", &png(64, 64)).await;
    let first_id = first["id"].as_str().unwrap().to_string();

    let reply = set_avatar(&srv, &alice, first["id"].clone()).await;
    reply.expect_status(200);
    assert_eq!(avatar_id(&reply.body["avatar"]), first_id);
    let mine = srv.get_auth(&format!("/api/user/{}/", alice.id), &alice.access).await;
    assert_eq!(avatar_id(&mine.body["avatar"]), first_id);

    // The URL works as an `<img src>` (no token). The chat list and search keep the series'
    // four user fields exactly: no avatar there.
    let shown = &mine.body;
    let picture = fetch(&srv, &local(&shown["avatar"]), None, &[]).await;
    assert_eq!(picture.status, 200);
    assert_eq!(picture.headers["content-type"], "image/png");
    let decoded = image::load_from_memory(&picture.bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (64, 64));
    let listed = srv.get_auth("/api/chat/", &bob.access).await;
    assert_eq!(listed.body["results"][0]["fromUser"]["id"], alice.id.as_str());
    assert!(listed.body["results"][0]["fromUser"].get("avatar").is_none());
    let found = srv.get_auth("/api/searchUser/?search=alice", &carol.access).await;
    assert!(found.body["results"][0].get("avatar").is_none());

    // Anyone signed in may read an avatar's file with a Bearer token.
    let by_bearer = fetch(
        &srv,
        &format!("/api/attachments/{first_id}/file/"),
        Some(&carol.access),
        &[],
    )
    .await;
    assert_eq!(by_bearer.status, 200);

    // Kept by the sweeper; sending back what was read changes nothing.
    let tomorrow = chrono::Utc::now() + chrono::Duration::hours(25);
    assert_eq!(srv.state.sweep_media_at(tomorrow).await, 0, "an avatar is in use");
    set_avatar(&srv, &alice, mine.body["avatar"].clone())
        .await
        .expect_status(200);
    assert_eq!(srv.state.attachment_count().await, 1);

    // Replaced (by its URL): the old one goes, file included.
    let second = upload(&srv, &alice, "new.png", &png(32, 32)).await;
    let reply = set_avatar(&srv, &alice, second["url"].clone()).await;
    reply.expect_status(200);
    assert_eq!(avatar_id(&reply.body["avatar"]), second["id"].as_str().unwrap());
    assert_eq!(srv.state.attachment_count().await, 1);
    assert_eq!(stored_files(&srv).await, 2, "the new avatar and its thumbnail");
    assert_eq!(fetch(&srv, &local(&shown["avatar"]), None, &[]).await.status, 404);

    // Cleared: nothing left.
    let reply = set_avatar(&srv, &alice, Value::Null).await;
    reply.expect_status(200);
    assert!(reply.body["avatar"].is_null());
    assert_eq!(srv.state.attachment_count().await, 0);
    assert_eq!(stored_files(&srv).await, 0);
    let mine = srv.get_auth(&format!("/api/user/{}/", alice.id), &alice.access).await;
    assert!(mine.body["avatar"].is_null());

    // A deleted user's avatar is left to the sweeper.
    let last = upload(&srv, &bob, "bob.png", &png(16, 16)).await;
    set_avatar(&srv, &bob, last["id"].clone()).await.expect_status(200);
    srv.delete_auth(
        "/auth/users/me/",
        &bob.access,
        Some(&json!({ "current_password": PASSWORD })),
    )
    .await
    .expect_status(204);
    assert_eq!(srv.state.sweep_media_at(tomorrow).await, 1, "the deleted user's avatar");
    assert_eq!(stored_files(&srv).await, 0);
    srv.finish().await;
}

/// Only an image the user uploaded and has not posted can be their avatar; an avatar cannot be
/// posted in a chat. A refusal changes nothing.
async fn avatar_refusals(backend: Backend, storage: Storage) {
    let srv = server(backend, storage, |_| {}).await;
    let (alice, bob, _carol, chat) = trio(&srv).await;
    let invalid =
        |id: &Value| json!({ "avatar": [format!("Invalid pk \"{}\" - object does not exist.", id.as_str().unwrap())] });

    let bobs = upload(&srv, &bob, "b.png", &png(8, 8)).await;
    set_avatar(&srv, &alice, bobs["id"].clone())
        .await
        .expect(400, invalid(&bobs["id"]));
    set_avatar(&srv, &alice, bobs["url"].clone())
        .await
        .expect(400, invalid(&bobs["id"]));

    let pdf = upload(
        &srv,
        &alice,
        "cv.pdf",
        b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n",
    )
    .await;
    assert_eq!(pdf["contentType"], "application/pdf");
    set_avatar(&srv, &alice, pdf["id"].clone()).await.expect(
        400,
        json!({ "avatar": ["Upload a valid image. The file you uploaded was either not an image or a corrupted image."] }),
    );
    set_avatar(&srv, &alice, json!("https://elsewhere.example/me.png"))
        .await
        .expect(
            400,
            json!({ "avatar": ["Give the id or the url of an image you uploaded (POST /api/attachments/)."] }),
        );

    let meant = upload_as(&srv, &alice, "m.png", &png(8, 8), Some(&chat)).await;
    meant.expect_status(201);
    set_avatar(&srv, &alice, meant.body["id"].clone())
        .await
        .expect(400, invalid(&meant.body["id"]));
    let posted = upload(&srv, &alice, "p.png", &png(8, 8)).await;
    srv.post_json_auth(
        "/api/message/",
        &alice.access,
        &json!({ "refChat": chat, "message": "", "attachments": [posted["id"]] }),
    )
    .await
    .expect_status(201);
    set_avatar(&srv, &alice, posted["id"].clone())
        .await
        .expect(400, invalid(&posted["id"]));

    let profile = srv.get_auth(&format!("/api/user/{}/", alice.id), &alice.access).await;
    assert!(profile.body["avatar"].is_null(), "nothing changed");

    let avatar = upload(&srv, &alice, "a.png", &png(8, 8)).await;
    set_avatar(&srv, &alice, avatar["id"].clone()).await.expect_status(200);
    let reply = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "", "attachments": [avatar["id"]] }),
        )
        .await;
    reply.expect(
        400,
        json!({ "attachments": [format!("Invalid pk \"{}\" - object does not exist.", avatar["id"].as_str().unwrap())] }),
    );
    srv.finish().await;
}
