//! FCM HTTP v1: OAuth2 with a service account (an RS256 JWT traded at the account's
//! `token_uri` for an access token, cached until shortly before it expires), then one
//! `messages:send` request per token.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Notification, Outcome};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The assertion's lifetime (Google accepts at most one hour).
const ASSERTION_SECS: i64 = 3600;
/// An access token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(120);

/// The fields of a service-account JSON file that Causerie uses.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    token_uri: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

pub(crate) struct Fcm {
    http: reqwest::Client,
    project_id: String,
    client_email: String,
    token_uri: String,
    key: EncodingKey,
    send_url: String,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

/// The HTTP client every provider uses: rustls, HTTP/2 where the server offers it.
pub(super) fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("building the push HTTP client")
}

/// `Retry-After` in seconds or as an HTTP date.
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
}

impl Fcm {
    pub(crate) fn from_file(path: &Path, endpoint: &str) -> anyhow::Result<Fcm> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading setting `push_fcm_credentials_file` ({})", path.display()))?;
        let account: ServiceAccount = serde_json::from_str(&text).with_context(|| {
            format!(
                "invalid setting `push_fcm_credentials_file`: {} is not a service-account JSON \
                 (project_id, client_email, private_key, token_uri)",
                path.display()
            )
        })?;
        let key = rsa_key(&account.private_key)
            .context("invalid setting `push_fcm_credentials_file`: its private_key is not an RSA key in PEM")?;
        Ok(Fcm {
            http: http_client()?,
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                endpoint.trim_end_matches('/'),
                account.project_id
            ),
            project_id: account.project_id,
            client_email: account.client_email,
            token_uri: account.token_uri,
            key,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one from `token_uri`.
    async fn access_token(&self) -> Result<String, Outcome> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_SECS,
        };
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| Outcome::Failed(format!("signing the service-account assertion: {e}")))?;
        let form = serde_urlencoded::to_string([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ])
        .map_err(|e| Outcome::Failed(e.to_string()))?;
        let response = self
            .http
            .post(&self.token_uri)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| Outcome::Retry {
                after: None,
                reason: format!("token endpoint: {e}"),
            })?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Outcome::Retry {
                after: retry_after(response.headers()),
                reason: format!("token endpoint answered {status}"),
            });
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(Outcome::Failed(format!(
                "token endpoint refused the service account ({status}): {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|e| Outcome::Failed(format!("token endpoint answer: {e}")))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let until = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE);
        *cached = Some((answer.access_token.clone(), until));
        Ok(answer.access_token)
    }

    fn body(token: &str, n: &Notification) -> Value {
        json!({
            "message": {
                "token": token,
                "notification": { "title": n.title, "body": n.body },
                "data": n.data,
                "android": { "priority": "high", "collapse_key": n.collapse_key },
                "apns": {
                    "headers": { "apns-collapse-id": n.collapse_key },
                    "payload": { "aps": { "badge": n.badge } }
                }
            }
        })
    }

    pub(crate) async fn send(&self, token: &str, n: &Notification) -> Outcome {
        let access = match self.access_token().await {
            Ok(access) => access,
            Err(outcome) => return outcome,
        };
        let response = match self
            .http
            .post(&self.send_url)
            .bearer_auth(&access)
            .json(&Self::body(token, n))
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("FCM: {e}"),
                }
            }
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Sent;
        }
        let after = retry_after(response.headers());
        let error: Value = response.json().await.unwrap_or(Value::Null);
        let code = error_code(&error);
        match status {
            StatusCode::NOT_FOUND => Outcome::Gone(format!("FCM 404 {code}")),
            StatusCode::BAD_REQUEST if code == "INVALID_ARGUMENT" => Outcome::Gone("FCM 400 INVALID_ARGUMENT".into()),
            StatusCode::UNAUTHORIZED => {
                // The access token was revoked or expired early: fetch a new one next time.
                *self.token.lock().await = None;
                Outcome::Retry {
                    after,
                    reason: "FCM 401".into(),
                }
            }
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Outcome::Retry {
                after,
                reason: format!("FCM {} {code}", s.as_u16()),
            },
            s => Outcome::Failed(format!("FCM {} {code} (project {})", s.as_u16(), self.project_id)),
        }
    }
}

/// FCM's error code: `details[].errorCode` (`UNREGISTERED`, …), else `status`.
fn error_code(error: &Value) -> String {
    let error = &error["error"];
    error["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["errorCode"].as_str())
        .or_else(|| error["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The service account's key (PKCS#8 PEM, as Google issues it; PKCS#1 accepted too).
fn rsa_key(pem: &str) -> anyhow::Result<EncodingKey> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
    use rsa::pkcs8::DecodePrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| anyhow::anyhow!("{e}")))?;
    let der = key.to_pkcs1_der().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(EncodingKey::from_rsa_der(der.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_details_first() {
        let unregistered = json!({"error": {"code": 404, "status": "NOT_FOUND",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}});
        assert_eq!(error_code(&unregistered), "UNREGISTERED");
        let invalid = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT"}});
        assert_eq!(error_code(&invalid), "INVALID_ARGUMENT");
        assert_eq!(error_code(&Value::Null), "");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
