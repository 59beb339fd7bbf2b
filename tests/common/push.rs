//! Fake push providers for the push tests, on 127.0.0.1 in the test process.
//!
//! - [`FakeFcm`]: FCM HTTP v1 with its own OAuth token endpoint. It holds the public key of a
//!   service account generated for the test, verifies every assertion with it (RS256, `iss`,
//!   `aud` = its `token_uri`, `scope`, at most one hour), hands out access tokens, and checks
//!   them on every send. Each send is recorded; a token can be scripted to answer
//!   404 UNREGISTERED, 429 with `Retry-After`, or 503.
//! - [`FakeWebPush`]: a push service endpoint per subscription. It checks the VAPID header
//!   (ES256 over the endpoint's origin, with the key in `k=`) and decrypts each message
//!   (RFC 8291 `aes128gcm`) with the subscription's private keys; it can answer 410 Gone.
//!
//! Not declared in `common/mod.rs`: only `tests/push.rs` includes it.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use causerie::Config;
use hkdf::Hkdf;
use p256::ecdsa::signature::Verifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

// ---- FCM ----------------------------------------------------------------------------------

/// What the fake answers one send with.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Ok,
    Unregistered,
    InvalidArgument,
    TooManyRequests { retry_after_secs: u64 },
    Unavailable,
}

/// A service account's RSA key: generated once per test process (2048-bit generation is the
/// slow part).
fn service_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("an RSA key"))
}

struct FcmState {
    project: String,
    client_email: String,
    token_uri: String,
    decoding: jsonwebtoken::DecodingKey,
    issued: Mutex<Vec<String>>,
    refused_assertions: Mutex<Vec<String>>,
    attempts: Mutex<Vec<String>>,
    sends: Mutex<Vec<Value>>,
    script: Mutex<HashMap<String, VecDeque<Answer>>>,
}

pub struct FakeFcm {
    pub url: String,
    pub credentials: PathBuf,
    state: Arc<FcmState>,
    _dir: tempfile::TempDir,
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    assertion: String,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    scope: String,
    aud: String,
    iat: i64,
    exp: i64,
}

async fn fcm_token(State(state): State<Arc<FcmState>>, Form(request): Form<TokenRequest>) -> Response {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&state.token_uri]);
    validation.set_issuer(&[&state.client_email]);
    validation.leeway = 0;
    let verdict = match jsonwebtoken::decode::<AssertionClaims>(&request.assertion, &state.decoding, &validation) {
        _ if request.grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" => Err("grant_type".to_string()),
        Err(err) => Err(err.to_string()),
        Ok(data) => {
            let c = data.claims;
            if c.scope != "https://www.googleapis.com/auth/firebase.messaging" {
                Err(format!("scope {}", c.scope))
            } else if c.exp - c.iat > 3600 || c.aud != state.token_uri || c.iss != state.client_email {
                Err("lifetime".to_string())
            } else {
                Ok(())
            }
        }
    };
    if let Err(why) = verdict {
        state.refused_assertions.lock().unwrap().push(why);
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response();
    }
    let token = format!("ya29.fake-{}", uuid::Uuid::new_v4().simple());
    state.issued.lock().unwrap().push(token.clone());
    Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

fn fcm_error(status: StatusCode, name: &str, code: Option<&str>) -> Response {
    let mut error = json!({"error": {"code": status.as_u16(), "message": "fake", "status": name}});
    if let Some(code) = code {
        error["error"]["details"] =
            json!([{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]);
    }
    (status, Json(error)).into_response()
}

async fn fcm_send(
    State(state): State<Arc<FcmState>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let known = bearer.is_some_and(|b| state.issued.lock().unwrap().contains(&b));
    if !known || project != state.project {
        return fcm_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", None);
    }
    let Some(token) = body["message"]["token"].as_str().map(str::to_string) else {
        return fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", None);
    };
    state.attempts.lock().unwrap().push(token.clone());
    let answer = state
        .script
        .lock()
        .unwrap()
        .get_mut(&token)
        .and_then(|queue| {
            if queue.len() > 1 {
                queue.pop_front()
            } else {
                queue.front().copied()
            }
        })
        .unwrap_or(Answer::Ok);
    match answer {
        Answer::Ok => {
            let mut sends = state.sends.lock().unwrap();
            sends.push(body["message"].clone());
            Json(json!({"name": format!("projects/{project}/messages/{}", sends.len())})).into_response()
        }
        Answer::Unregistered => fcm_error(StatusCode::NOT_FOUND, "NOT_FOUND", Some("UNREGISTERED")),
        Answer::InvalidArgument => fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT")),
        Answer::TooManyRequests { retry_after_secs } => {
            let mut response = fcm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                Some("QUOTA_EXCEEDED"),
            );
            response
                .headers_mut()
                .insert("retry-after", retry_after_secs.to_string().parse().unwrap());
            response
        }
        Answer::Unavailable => fcm_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", Some("UNAVAILABLE")),
    }
}

impl FakeFcm {
    pub async fn start() -> FakeFcm {
        let key = service_key();
        let public_der = key.to_public_key().to_pkcs1_der().expect("public key DER");
        // The address is needed in the state: bind first, then build the app.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake FCM");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(FcmState {
            project: "causerie-test".into(),
            client_email: "push@causerie-test.iam.gserviceaccount.com".into(),
            token_uri: format!("{url}/token"),
            decoding: jsonwebtoken::DecodingKey::from_rsa_der(public_der.as_bytes()),
            issued: Mutex::default(),
            refused_assertions: Mutex::default(),
            attempts: Mutex::default(),
            sends: Mutex::default(),
            script: Mutex::default(),
        });
        let app = Router::new()
            .route("/token", post(fcm_token))
            .route("/v1/projects/{project}/messages:send", post(fcm_send))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let credentials = dir.path().join("service-account.json");
        let account = json!({
            "type": "service_account",
            "project_id": state.project,
            "private_key_id": "fake",
            "private_key": key.to_pkcs8_pem(LineEnding::LF).expect("PEM").as_str(),
            "client_email": state.client_email,
            "token_uri": state.token_uri,
        });
        std::fs::write(&credentials, account.to_string()).expect("writing the service account");
        FakeFcm {
            url,
            credentials,
            state,
            _dir: dir,
        }
    }

    pub fn configure(&self, config: &mut Config) {
        config.push_fcm_credentials_file = Some(self.credentials.clone());
        config.push_fcm_endpoint = self.url.clone();
    }

    /// The settings as environment variables (for the real binary).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "CAUSERIE_PUSH_FCM_CREDENTIALS_FILE".into(),
                self.credentials.display().to_string(),
            ),
            ("CAUSERIE_PUSH_FCM_ENDPOINT".into(), self.url.clone()),
        ]
    }

    /// Answers for `token`'s sends, in order; the last one repeats.
    pub fn script(&self, token: &str, answers: &[Answer]) {
        self.state
            .script
            .lock()
            .unwrap()
            .insert(token.to_string(), answers.iter().copied().collect());
    }

    /// Every message accepted, in order.
    pub fn sends(&self) -> Vec<Value> {
        self.state.sends.lock().unwrap().clone()
    }

    pub fn sends_to(&self, token: &str) -> Vec<Value> {
        self.sends().into_iter().filter(|m| m["token"] == token).collect()
    }

    /// Every send request to `token`, accepted or not.
    pub fn attempts_to(&self, token: &str) -> usize {
        self.state
            .attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|t| *t == token)
            .count()
    }

    pub fn refused_assertions(&self) -> Vec<String> {
        self.state.refused_assertions.lock().unwrap().clone()
    }

    pub fn tokens_issued(&self) -> usize {
        self.state.issued.lock().unwrap().len()
    }
}

// ---- Web Push -----------------------------------------------------------------------------

struct Subscriber {
    secret: SecretKey,
    auth: [u8; 16],
}

struct WebState {
    origin: String,
    subscribers: Mutex<HashMap<String, Subscriber>>,
    gone: Mutex<HashSet<String>>,
    received: Mutex<Vec<(String, Value)>>,
    refused: Mutex<Vec<String>>,
}

pub struct FakeWebPush {
    pub url: String,
    pub vapid_key_file: PathBuf,
    state: Arc<WebState>,
    _dir: tempfile::TempDir,
}

fn b64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).expect("base64url")
}

/// Checks `vapid t=<jwt>, k=<key>`: an ES256 signature by `k` over a token for `origin`.
fn check_vapid(header: &str, origin: &str) -> Result<(), String> {
    let rest = header.strip_prefix("vapid ").ok_or("not vapid")?;
    let mut token = None;
    let mut key = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t);
        } else if let Some(k) = part.strip_prefix("k=") {
            key = Some(k);
        }
    }
    let (token, key) = (token.ok_or("no t=")?, key.ok_or("no k=")?);
    let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&b64(key)).map_err(|e| e.to_string())?;
    let (signed, signature) = token.rsplit_once('.').ok_or("no signature")?;
    let signature = p256::ecdsa::Signature::from_slice(&b64(signature)).map_err(|e| e.to_string())?;
    verifying
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| "bad signature".to_string())?;
    let claims: Value =
        serde_json::from_slice(&b64(signed.split('.').nth(1).ok_or("no claims")?)).map_err(|e| e.to_string())?;
    if claims["aud"] != origin {
        return Err(format!("aud {}", claims["aud"]));
    }
    if !claims["sub"]
        .as_str()
        .is_some_and(|s| s.starts_with("mailto:") || s.starts_with("https:"))
    {
        return Err("sub".into());
    }
    Ok(())
}

/// RFC 8291 decryption with the subscriber's keys.
fn decrypt(subscriber: &Subscriber, body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < 86 + 17 || body[20] != 65 {
        return Err("short or odd header".into());
    }
    let (salt, as_public) = (&body[..16], &body[21..86]);
    let sender = PublicKey::from_sec1_bytes(as_public).map_err(|e| e.to_string())?;
    let shared = p256::ecdh::diffie_hellman(subscriber.secret.to_nonzero_scalar(), sender.as_affine());
    let ua_public = subscriber.secret.public_key().to_encoded_point(false);
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public.as_bytes());
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&subscriber.auth[..]), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .map_err(|e| e.to_string())?;
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).unwrap();
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).unwrap();
    let mut plain = Aes128Gcm::new_from_slice(&cek)
        .unwrap()
        .decrypt(&Nonce::from(nonce), &body[86..])
        .map_err(|_| "decryption failed".to_string())?;
    // Strip the padding: trailing zeros, then the 0x02 last-record delimiter.
    while plain.last() == Some(&0) {
        plain.pop();
    }
    if plain.pop() != Some(2) {
        return Err("no last-record delimiter".into());
    }
    Ok(plain)
}

async fn web_receive(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.gone.lock().unwrap().contains(&id) {
        return StatusCode::GONE.into_response();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let verdict = (|| {
        if header("content-encoding") != "aes128gcm" {
            return Err("content-encoding".to_string());
        }
        if header("ttl").parse::<u64>().is_err() {
            return Err("ttl".to_string());
        }
        check_vapid(&header("authorization"), &state.origin)?;
        let subscribers = state.subscribers.lock().unwrap();
        let subscriber = subscribers.get(&id).ok_or("unknown subscription")?;
        let plain = decrypt(subscriber, &body)?;
        serde_json::from_slice::<Value>(&plain).map_err(|e| e.to_string())
    })();
    match verdict {
        Ok(payload) => {
            state.received.lock().unwrap().push((id, payload));
            StatusCode::CREATED.into_response()
        }
        Err(why) => {
            state.refused.lock().unwrap().push(why);
            StatusCode::BAD_REQUEST.into_response()
        }
    }
}

impl FakeWebPush {
    pub async fn start() -> FakeWebPush {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake push service");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(WebState {
            origin: url.clone(),
            subscribers: Mutex::default(),
            gone: Mutex::default(),
            received: Mutex::default(),
            refused: Mutex::default(),
        });
        let app = Router::new()
            .route("/push/{id}", post(web_receive))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let vapid_key_file = dir.path().join("vapid.key");
        let vapid = SecretKey::random(&mut rand::rngs::OsRng);
        std::fs::write(&vapid_key_file, URL_SAFE_NO_PAD.encode(vapid.to_bytes())).expect("writing the VAPID key");
        FakeWebPush {
            url,
            vapid_key_file,
            state,
            _dir: dir,
        }
    }

    pub fn configure(&self, config: &mut Config) {
        config.push_vapid_private_key_file = Some(self.vapid_key_file.clone());
        config.push_vapid_subject = "mailto:ops@causerie.test".into();
    }

    /// A new browser subscription: its `PushSubscription.toJSON()`, the `registration_id` of
    /// a `web` device.
    pub fn subscribe(&self) -> (String, String) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        let mut auth = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut auth);
        let subscription = json!({
            "endpoint": format!("{}/push/{id}", self.url),
            "expirationTime": null,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(auth),
            }
        });
        self.state
            .subscribers
            .lock()
            .unwrap()
            .insert(id.clone(), Subscriber { secret, auth });
        (id, subscription.to_string())
    }

    /// From now on the subscription answers 410 Gone.
    pub fn expire(&self, id: &str) {
        self.state.gone.lock().unwrap().insert(id.to_string());
    }

    /// The decrypted payloads `id` received.
    pub fn received(&self, id: &str) -> Vec<Value> {
        self.state
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|(to, _)| to == id)
            .map(|(_, payload)| payload.clone())
            .collect()
    }

    pub fn refused(&self) -> Vec<String> {
        self.state.refused.lock().unwrap().clone()
    }
}
