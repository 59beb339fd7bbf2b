//! Signed download URLs: `<public_url>/api/attachments/<id>/<variant>/?exp=<unix secs>&sig=<mac>`,
//! the MAC an HMAC-SHA256 of id, variant and expiry under a key derived from the server key.
//! An `<img src>` cannot send a Bearer header; such a URL is its own, short-lived, permission.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::AttachmentId;

type HmacSha256 = Hmac<Sha256>;

/// Which of an attachment's files a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// What was uploaded (images re-encoded without their metadata).
    Original,
    Thumbnail,
}

impl Variant {
    /// The path segment of the variant's URL.
    pub(crate) fn segment(self) -> &'static str {
        match self {
            Variant::Original => "file",
            Variant::Thumbnail => "thumbnail",
        }
    }
}

/// Signs and checks download URLs.
#[derive(Clone)]
pub(crate) struct UrlSigner {
    key: [u8; 32],
    base: String,
    ttl_secs: u64,
}

impl UrlSigner {
    /// `secret` is the server key; `base` the public URL the links start with.
    pub(crate) fn new(secret: &[u8], base: &str, ttl_secs: u64) -> UrlSigner {
        // A key of its own, so a download MAC can never stand in for anything else signed with
        // the server key (tokens, reset links).
        let mut derive = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
        derive.update(b"causerie media download urls v1");
        let mut key = [0u8; 32];
        key.copy_from_slice(&derive.finalize().into_bytes());
        UrlSigner {
            key,
            base: base.trim_end_matches('/').to_string(),
            ttl_secs,
        }
    }

    fn mac(&self, id: AttachmentId, variant: Variant, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(format!("{id}/{}/{expires}", variant.segment()).as_bytes());
        mac
    }

    /// The path (without the public base) of a variant.
    pub(crate) fn path(id: AttachmentId, variant: Variant) -> String {
        format!("/api/attachments/{id}/{}/", variant.segment())
    }

    /// A URL valid for the configured time from `now` (unix seconds).
    pub(crate) fn url_at(&self, id: AttachmentId, variant: Variant, now: i64) -> String {
        let expires = now.saturating_add(self.ttl_secs as i64);
        let sig = URL_SAFE_NO_PAD.encode(self.mac(id, variant, expires).finalize().into_bytes());
        format!("{}{}?exp={expires}&sig={sig}", self.base, UrlSigner::path(id, variant))
    }

    pub(crate) fn url(&self, id: AttachmentId, variant: Variant) -> String {
        self.url_at(id, variant, chrono::Utc::now().timestamp())
    }

    /// A URL that stays the same for half the configured time, then valid for at least the
    /// other half: what is shown on every poll (avatars in the chat list) can then be cached by
    /// the browser instead of being fetched again under a new signature each time.
    pub(crate) fn steady_url_at(&self, id: AttachmentId, variant: Variant, now: i64) -> String {
        let step = (self.ttl_secs as i64 / 2).max(1);
        let expires = now.div_euclid(step).saturating_add(2).saturating_mul(step);
        let sig = URL_SAFE_NO_PAD.encode(self.mac(id, variant, expires).finalize().into_bytes());
        format!("{}{}?exp={expires}&sig={sig}", self.base, UrlSigner::path(id, variant))
    }

    pub(crate) fn steady_url(&self, id: AttachmentId, variant: Variant) -> String {
        self.steady_url_at(id, variant, chrono::Utc::now().timestamp())
    }

    /// True when `sig` is this server's MAC of the URL and `expires` is not past `now`.
    pub(crate) fn verify_at(&self, id: AttachmentId, variant: Variant, expires: i64, sig: &str, now: i64) -> bool {
        if expires < now {
            return false;
        }
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        self.mac(id, variant, expires).verify_slice(&sig).is_ok()
    }

    pub(crate) fn verify(&self, id: AttachmentId, variant: Variant, expires: i64, sig: &str) -> bool {
        self.verify_at(id, variant, expires, sig, chrono::Utc::now().timestamp())
    }

    /// The attachment a URL of this server names (signed or not, fresh or not), if it is one:
    /// how a message whose `extraData` is an upload's `url` is recognised.
    pub(crate) fn attachment_in(&self, url: &str) -> Option<AttachmentId> {
        let rest = url.trim();
        let rest = rest.strip_prefix(&self.base).unwrap_or(rest);
        let path = rest.split(['?', '#']).next()?;
        let tail = path.strip_prefix("/api/attachments/")?;
        let mut parts = tail.trim_end_matches('/').split('/');
        let id = parts.next()?.parse().ok()?;
        match (parts.next(), parts.next()) {
            (Some("file"), None) => Some(id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> UrlSigner {
        UrlSigner::new(b"0123456789abcdef0123456789abcdef", "https://chat.example/", 60)
    }

    fn query(url: &str) -> (i64, String) {
        let url = url::Url::parse(url).unwrap();
        let get = |k: &str| url.query_pairs().find(|(n, _)| n == k).unwrap().1.to_string();
        (get("exp").parse().unwrap(), get("sig"))
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let s = signer();
        let id = AttachmentId::new();
        let url = s.url_at(id, Variant::Original, 1_000);
        assert!(url.starts_with(&format!(
            "https://chat.example/api/attachments/{id}/file/?exp=1060&sig="
        )));
        let (exp, sig) = query(&url);
        assert!(s.verify_at(id, Variant::Original, exp, &sig, 1_060));
        assert!(!s.verify_at(id, Variant::Original, exp, &sig, 1_061), "expired");
        assert!(!s.verify_at(id, Variant::Thumbnail, exp, &sig, 1_000), "other variant");
        assert!(
            !s.verify_at(AttachmentId::new(), Variant::Original, exp, &sig, 1_000),
            "other id"
        );
        assert!(
            !s.verify_at(id, Variant::Original, exp + 1000, &sig, 1_000),
            "moved expiry"
        );
        let other = UrlSigner::new(b"another key another key another key", "https://chat.example", 60);
        assert!(
            !other.verify_at(id, Variant::Original, exp, &sig, 1_000),
            "other server key"
        );
        assert!(!s.verify_at(id, Variant::Original, exp, "not base64!", 1_000));
    }

    #[test]
    fn steady_urls_change_every_half_lifetime() {
        let s = signer();
        let id = AttachmentId::new();
        let first = s.steady_url_at(id, Variant::Original, 1_000);
        assert_eq!(first, s.steady_url_at(id, Variant::Original, 1_019));
        assert_ne!(first, s.steady_url_at(id, Variant::Original, 1_020));
        for now in [1_000, 1_019, 1_020, 1_049] {
            let (exp, sig) = query(&s.steady_url_at(id, Variant::Original, now));
            assert!(
                exp > now + 30 && exp <= now + 60,
                "valid at least half the time: {exp} at {now}"
            );
            assert!(s.verify_at(id, Variant::Original, exp, &sig, now));
        }
    }

    #[test]
    fn recognises_its_own_urls() {
        let s = signer();
        let id = AttachmentId::new();
        assert_eq!(s.attachment_in(&s.url(id, Variant::Original)), Some(id));
        assert_eq!(s.attachment_in(&format!("/api/attachments/{id}/file/")), Some(id));
        assert_eq!(s.attachment_in(&s.url(id, Variant::Thumbnail)), None);
        assert_eq!(s.attachment_in("data:image/png;base64,AAAA"), None);
        assert_eq!(s.attachment_in("https://elsewhere.example/x.png"), None);
    }
}
