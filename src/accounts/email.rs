//! `Email`: a syntactically valid address, normalised to lower case so that `A@x.io` and
//! `a@x.io` are one account.

use std::fmt;

pub const MAX_LEN: usize = 254;
pub const INVALID: &str = "Enter a valid email address.";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Option<Email> {
        let candidate = raw.trim();
        if candidate.is_empty() || candidate.len() > MAX_LEN {
            return None;
        }
        let (local, domain) = candidate.rsplit_once('@')?;
        if !valid_local(local) || !valid_domain(domain) {
            return None;
        }
        Some(Email(candidate.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Django's dot-atom rule: atoms of printable specials and alphanumerics, separated by dots.
fn valid_local(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-";
    !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c)))
}

fn valid_domain(domain: &str) -> bool {
    if domain.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return domain.eq_ignore_ascii_case("localhost");
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let tld = labels[labels.len() - 1];
    labels.iter().all(|l| label_ok(l))
        && tld.chars().count() >= 2
        && (tld.chars().all(char::is_alphabetic) || tld.starts_with("xn--"))
}

/// On the wire an email is a string in the `email` format.
impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(MAX_LEN))
            .into()
    }
}

impl utoipa::ToSchema for Email {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_validates() {
        assert_eq!(Email::parse(" Alice@Example.IO ").unwrap().as_str(), "alice@example.io");
        assert!(Email::parse("first.last+tag@sub.example.com").is_some());
        for bad in [
            "",
            "plain",
            "@x.io",
            "a@",
            "a@b",
            "a..b@x.io",
            "a@x..io",
            "a b@x.io",
            "a@-x.io",
            "a@x.i0",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad} should be refused");
        }
    }
}
