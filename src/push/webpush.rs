//! Web Push: RFC 8030 delivery with `TTL`, the payload encrypted as RFC 8291 `aes128gcm` for
//! the browser's subscription keys, and VAPID (RFC 8292) identifying this server.
//!
//! Written on RustCrypto (p256 for ECDH and ES256, hkdf, aes-gcm) rather than the `web-push`
//! crate: that crate encrypts through `ece`, whose backend is OpenSSL, and brings its own HTTP
//! clients (isahc or hyper 0.14), where Causerie sends everything through one reqwest + rustls
//! stack (docs/push.md).

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use anyhow::Context;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use super::fcm::{http_client, retry_after};
use super::{Notification, Outcome};

/// How long a push service keeps an undelivered message (seconds).
const TTL_SECS: u64 = 24 * 3600;
/// The record size announced in the header (one record holds the whole payload).
const RECORD_SIZE: u32 = 4096;
/// VAPID tokens are valid this long (RFC 8292 allows up to 24 h).
const VAPID_SECS: i64 = 12 * 3600;

/// A browser's `PushSubscription.toJSON()`: the registration id of a `web` device.
#[derive(Debug, Deserialize)]
pub(crate) struct Subscription {
    pub endpoint: String,
    pub keys: SubscriptionKeys,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SubscriptionKeys {
    pub p256dh: String,
    pub auth: String,
}

/// Base64url with or without padding, as browsers differ.
fn b64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

impl Subscription {
    /// Reads a subscription, checking what encryption needs: an http(s) endpoint, a P-256
    /// public key and a 16-byte auth secret.
    pub(crate) fn parse(text: &str) -> Option<(Subscription, PublicKey, Vec<u8>)> {
        let subscription: Subscription = serde_json::from_str(text).ok()?;
        let url = url::Url::parse(&subscription.endpoint).ok()?;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return None;
        }
        let public = PublicKey::from_sec1_bytes(&b64(&subscription.keys.p256dh)?).ok()?;
        let auth = b64(&subscription.keys.auth).filter(|a| a.len() == 16)?;
        Some((subscription, public, auth))
    }
}

pub(crate) struct WebPush {
    http: reqwest::Client,
    key: SigningKey,
    /// The VAPID public key, uncompressed, base64url (the `k=` of the Authorization header,
    /// and the browser's `applicationServerKey`).
    public_b64: String,
    subject: String,
}

impl WebPush {
    pub(crate) fn from_file(path: &Path, subject: &str) -> anyhow::Result<WebPush> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading setting `push_vapid_private_key_file` ({})", path.display()))?;
        let secret = vapid_key(text.trim()).with_context(|| {
            format!(
                "invalid setting `push_vapid_private_key_file`: {} holds no P-256 private key \
                 (PEM, or the raw key in base64url)",
                path.display()
            )
        })?;
        let public = secret.public_key().to_encoded_point(false);
        Ok(WebPush {
            http: http_client()?,
            key: SigningKey::from(&secret),
            public_b64: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            subject: subject.to_string(),
        })
    }

    /// The VAPID public key (uncompressed point, base64url): the browser's
    /// `applicationServerKey`.
    pub(crate) fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// The VAPID `Authorization` header for `endpoint`'s origin.
    fn authorization(&self, endpoint: &url::Url) -> String {
        let audience = endpoint.origin().ascii_serialization();
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = json!({
            "aud": audience,
            "exp": chrono::Utc::now().timestamp() + VAPID_SECS,
            "sub": self.subject,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature: Signature = self.key.sign(signed.as_bytes());
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        format!("vapid t={token}, k={}", self.public_b64)
    }

    pub(crate) async fn send(&self, registration_id: &str, n: &Notification) -> Outcome {
        let Some((subscription, public, auth)) = Subscription::parse(registration_id) else {
            return Outcome::Gone("not a Push API subscription".into());
        };
        let Ok(endpoint) = url::Url::parse(&subscription.endpoint) else {
            return Outcome::Gone("bad endpoint".into());
        };
        let payload = json!({
            "title": n.title,
            "body": n.body,
            "badge": n.badge,
            "tag": n.collapse_key,
            "data": n.data,
        });
        let body = match encrypt(&public, &auth, payload.to_string().as_bytes()) {
            Ok(body) => body,
            Err(why) => return Outcome::Failed(why),
        };
        let response = self
            .http
            .post(endpoint.clone())
            .header("TTL", TTL_SECS.to_string())
            .header("Urgency", "high")
            .header("Topic", topic(&n.collapse_key))
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::AUTHORIZATION, self.authorization(&endpoint))
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("push service: {e}"),
                }
            }
        };
        match response.status() {
            s if s.is_success() => Outcome::Sent,
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                Outcome::Gone(format!("push service {}", response.status().as_u16()))
            }
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Outcome::Retry {
                after: retry_after(response.headers()),
                reason: format!("push service {}", s.as_u16()),
            },
            s => Outcome::Failed(format!("push service {}", s.as_u16())),
        }
    }
}

/// RFC 8030 `Topic`: at most 32 base64url characters (a chat id's 32 hex digits); the same
/// topic replaces an undelivered message.
fn topic(key: &str) -> String {
    key.chars().filter(char::is_ascii_alphanumeric).take(32).collect()
}

/// The VAPID key: PEM (SEC1 or PKCS#8), or the raw 32-byte scalar in base64url.
fn vapid_key(text: &str) -> Option<SecretKey> {
    use p256::pkcs8::DecodePrivateKey;
    if text.starts_with("-----BEGIN") {
        return SecretKey::from_sec1_pem(text)
            .ok()
            .or_else(|| SecretKey::from_pkcs8_pem(text).ok());
    }
    SecretKey::from_slice(&b64(text)?).ok()
}

/// RFC 8291: `aes128gcm` content coding of `plaintext` for a subscription's keys, with a fresh
/// ephemeral key and salt: `salt(16) | rs(4) | idlen(1) | keyid(65) | ciphertext`.
pub(crate) fn encrypt(ua_public: &PublicKey, auth_secret: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let ephemeral = p256::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
    let as_public = ephemeral.public_key().to_encoded_point(false);
    let ua_point = ua_public.to_encoded_point(false);
    let shared = ephemeral.diffie_hellman(ua_public);
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    let (cek, nonce) = content_keys(
        shared.raw_secret_bytes(),
        auth_secret,
        ua_point.as_bytes(),
        as_public.as_bytes(),
        &salt,
    )?;
    let mut padded = plaintext.to_vec();
    padded.push(0x02); // the last (only) record's delimiter
    if padded.len() + 16 > RECORD_SIZE as usize {
        return Err("payload too large for one record".into());
    }
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|e| e.to_string())?;
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), padded.as_slice())
        .map_err(|e| e.to_string())?;
    let mut body = Vec::with_capacity(86 + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.as_bytes().len() as u8);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// The content-encryption key and nonce (RFC 8291 section 3.4), shared by both sides.
pub(crate) fn content_keys(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> Result<([u8; 16], [u8; 12]), String> {
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth_secret), ecdh_secret)
        .expand(&key_info, &mut ikm)
        .map_err(|e| e.to_string())?;
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|e| e.to_string())?;
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|e| e.to_string())?;
    Ok((cek, nonce))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8291 appendix A: the receiver's keys, the sender's keys and salt, and the message.
    #[test]
    fn the_rfc_8291_example_derives_the_same_keys() {
        let ua_private = b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94").unwrap();
        let ua_public =
            b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4").unwrap();
        let as_public =
            b64("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8").unwrap();
        let auth = b64("BTBZMqHH6r4Tts7J_aSIgg").unwrap();
        let salt = b64("DGv6ra1nlYgDCS1FRnbzlw").unwrap();
        let ua_secret = SecretKey::from_slice(&ua_private).unwrap();
        let as_key = PublicKey::from_sec1_bytes(&as_public).unwrap();
        let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_key.as_affine());
        let (cek, nonce) = content_keys(shared.raw_secret_bytes(), &auth, &ua_public, &as_public, &salt).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(cek), "oIhVW04MRdy2XN9CiKLxTg");
        assert_eq!(URL_SAFE_NO_PAD.encode(nonce), "4h_95klXJ5E_qnoN");
        let cipher = Aes128Gcm::new_from_slice(&cek).unwrap();
        let mut padded = b"When I grow up, I want to be a watermelon".to_vec();
        padded.push(2);
        let sealed = cipher.encrypt(&Nonce::from(nonce), padded.as_slice()).unwrap();
        let body = b64("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN").unwrap();
        assert_eq!(&body[..16], salt.as_slice());
        assert_eq!(&body[16..21], &[0, 0, 16, 0, 65]);
        assert_eq!(&body[21..86], as_public.as_slice());
        assert_eq!(&body[86..], sealed.as_slice());
    }

    #[test]
    fn what_it_encrypts_the_subscriber_decrypts() {
        let ua_secret = SecretKey::random(&mut rand::rngs::OsRng);
        let auth = [7u8; 16];
        let body = encrypt(&ua_secret.public_key(), &auth, b"hello").unwrap();
        let as_public = PublicKey::from_sec1_bytes(&body[21..86]).unwrap();
        let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
        let ua_public = ua_secret.public_key().to_encoded_point(false);
        let (cek, nonce) = content_keys(
            shared.raw_secret_bytes(),
            &auth,
            ua_public.as_bytes(),
            &body[21..86],
            &body[..16],
        )
        .unwrap();
        let plain = Aes128Gcm::new_from_slice(&cek)
            .unwrap()
            .decrypt(&Nonce::from(nonce), &body[86..])
            .unwrap();
        assert_eq!(plain, b"hello\x02");
    }

    #[test]
    fn a_subscription_needs_an_endpoint_and_both_keys() {
        let good = r#"{"endpoint":"https://push.example.net/x","keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"BTBZMqHH6r4Tts7J_aSIgg"}}"#;
        assert!(Subscription::parse(good).is_some());
        assert!(Subscription::parse("fcm-token").is_none());
        assert!(Subscription::parse(&good.replace("https://push", "ftp://push")).is_none());
        assert!(Subscription::parse(&good.replace("BTBZMqHH6r4Tts7J_aSIgg", "AAAA")).is_none());
    }
}
