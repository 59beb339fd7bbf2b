//! Django's default password validators, with their exact messages, in Django's order:
//! similarity to the user's attributes, minimum length 8, common passwords, all digits.

use std::collections::HashSet;
use std::io::Read;
use std::sync::OnceLock;

const COMMON_GZ: &[u8] = include_bytes!("../../assets/common-passwords.txt.gz");
pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 4096;

fn common_passwords() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut text = String::new();
        // The asset is compiled in; a decoding failure would be a build defect caught by tests.
        flate2::read::GzDecoder::new(COMMON_GZ)
            .read_to_string(&mut text)
            .expect("embedded password list");
        text.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// The user attributes a password must not resemble, with Django's verbose names.
pub struct Attributes<'a> {
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
}

/// Every rule the password breaks, as messages (empty when it passes).
pub fn check(password: &str, user: &Attributes<'_>) -> Vec<String> {
    let mut errors = Vec::new();
    let lowered = password.to_lowercase();
    // Django's UserAttributeSimilarityValidator order: the names, then the email.
    for (value, name) in [
        (user.first_name, "first name"),
        (user.last_name, "last name"),
        (user.email, "email address"),
    ] {
        if too_similar(&lowered, &value.to_lowercase()) {
            errors.push(format!("The password is too similar to the {name}."));
            break;
        }
    }
    if password.chars().count() < MIN_LENGTH {
        errors.push(format!(
            "This password is too short. It must contain at least {MIN_LENGTH} characters."
        ));
    }
    if common_passwords().contains(lowered.trim()) {
        errors.push("This password is too common.".into());
    }
    if !password.is_empty() && password.chars().all(|c| c.is_ascii_digit()) {
        errors.push("This password is entirely numeric.".into());
    }
    if password.len() > MAX_LENGTH {
        errors.push(format!("Ensure this field has no more than {MAX_LENGTH} characters."));
    }
    errors
}

/// Django's UserAttributeSimilarityValidator (max similarity 0.7): the value and each of its
/// `\W+`-separated parts are compared with difflib's `quick_ratio`, skipping parts far shorter
/// than the password.
fn too_similar(password: &str, value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    const MAX_SIMILARITY: f64 = 0.7;
    let mut parts: Vec<&str> = value.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
    parts.push(value);
    parts.into_iter().filter(|p| !p.is_empty()).any(|part| {
        let (pwd_len, part_len) = (password.chars().count(), part.chars().count());
        let exceeds = pwd_len >= 10 * part_len && (part_len as f64) < MAX_SIMILARITY / 2.0 * pwd_len as f64;
        !exceeds && quick_ratio(password, part) >= MAX_SIMILARITY
    })
}

/// difflib.SequenceMatcher.quick_ratio: 2·(shared characters as multisets) / (total length).
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut counts = std::collections::HashMap::new();
    for c in b.chars() {
        *counts.entry(c).or_insert(0i32) += 1;
    }
    let mut matches = 0usize;
    for c in a.chars() {
        if let Some(n) = counts.get_mut(&c) {
            if *n > 0 {
                *n -= 1;
                matches += 1;
            }
        }
    }
    2.0 * matches as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attributes<'static> {
        Attributes {
            email: "jean.dupont@example.com",
            first_name: "Jean",
            last_name: "Dupont",
        }
    }

    #[test]
    fn django_rules() {
        assert!(check("a-long-unusual-Passphrase-7", &attrs()).is_empty());
        assert_eq!(
            check("short", &attrs()),
            vec!["This password is too short. It must contain at least 8 characters."]
        );
        assert_eq!(check("password", &attrs()), vec!["This password is too common."]);
        let numeric = check("12345678", &attrs());
        assert!(numeric.contains(&"This password is entirely numeric.".to_string()));
        assert!(numeric.contains(&"This password is too common.".to_string()));
        // Django checks first name, last name, then email: "dupont" matches first.
        assert_eq!(
            check("jeandupont", &attrs())[0],
            "The password is too similar to the last name."
        );
        let no_names = Attributes {
            first_name: "",
            last_name: "",
            ..attrs()
        };
        assert_eq!(
            check("jeandupont", &no_names)[0],
            "The password is too similar to the email address."
        );
    }
}
