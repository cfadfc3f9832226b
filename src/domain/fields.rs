//! The self-service profile fields, each a newtype whose only constructor enforces its rule
//! (API.md, "User"). Values read back from storage were checked on the way in.

use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization as _;
use uuid::Uuid;

use super::error::Invalid;

/// 3–32 of `[A-Za-z0-9_.-]`, starting with a letter or digit, never shaped like a UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let length = raw.chars().count();
        if length < 3 {
            return Err(Invalid::new("too_short", "must be at least 3 characters"));
        }
        if length > 32 {
            return Err(Invalid::new("too_long", "must be at most 32 characters"));
        }
        if !raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Err(Invalid::new("invalid_characters", "may contain only letters, digits, '_', '.' and '-'"));
        }
        if !raw.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(Invalid::new("invalid_start", "must start with a letter or digit"));
        }
        if Uuid::try_parse(raw).is_ok() {
            return Err(Invalid::new("uuid_shaped", "must not look like an id"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Whether `c` is invisible and can disguise what a name or address says: bidirectional
/// embeddings, overrides, isolates and marks, and zero-width characters.
pub fn is_disguise(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Text a person typed for a name to sign in with or to look up: no control characters (NUL
/// above all, which PostgreSQL cannot store or compare).
pub fn plain_text(raw: &str) -> Result<&str, Invalid> {
    if raw.chars().any(char::is_control) {
        return Err(Invalid::new("invalid_characters", "must not contain control characters"));
    }
    Ok(raw)
}

/// The most characters an address, and the key it is indexed by, may have (the columns' size).
const EMAIL_MAX_CHARS: usize = 254;

/// The form an address is compared and indexed in: trimmed, NFC, then full Unicode case
/// folding (so `ADA@` and `ada@`, or a composed and a decomposed `Å`, are one address).
pub fn email_key(email: &str) -> String {
    let composed: String = email.trim().nfc().collect();
    caseless::default_case_fold_str(&composed).nfc().collect()
}

/// An e-mail address: trimmed, NFC-normalised, at most 254 characters (and its folded key too),
/// `local@domain` with a dotted domain, nothing invisible in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let composed: String = raw.trim().nfc().collect();
        let trimmed = composed.as_str();
        let bad = || Invalid::new("invalid_email", "must be an e-mail address like ada@example.com");
        // Folding can lengthen an address (`İ` becomes two characters): the key must fit too.
        if trimmed.chars().count() > EMAIL_MAX_CHARS || email_key(trimmed).chars().count() > EMAIL_MAX_CHARS {
            return Err(Invalid::new("too_long", "must be at most 254 characters"));
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or_else(bad)?;
        let local_ok = !local.is_empty()
            && local.chars().count() <= 64
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !is_disguise(c) && !"@\"(),:;<>[\\]".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.chars().count() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok { Ok(Self(trimmed.to_owned())) } else { Err(bad()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A phone number in E.164 form: `+` then 2–15 digits, the first not zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let digits = raw.strip_prefix('+').unwrap_or("");
        let ok =
            (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new("invalid_phone", "must be in E.164 form, like +15551234567"))
        }
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A first, last or display name: 1–100 characters, not blank, no control characters and
/// nothing invisible that could make it read as something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.trim().is_empty() {
            return Err(Invalid::new("blank", "must not be blank; send null to clear it"));
        }
        if raw.chars().count() > 100 {
            return Err(Invalid::new("too_long", "must be at most 100 characters"));
        }
        if raw.chars().any(|c| c.is_control() || is_disguise(c)) {
            return Err(Invalid::new(
                "invalid_characters",
                "must not contain control characters, direction overrides or zero-width characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A short note on a wallet, a transfer or an adjustment: 1–200 characters, not blank, no
/// control characters and nothing invisible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note(String);

impl Note {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.trim().is_empty() {
            return Err(Invalid::new("blank", "must not be blank"));
        }
        if raw.chars().count() > 200 {
            return Err(Invalid::new("too_long", "must be at most 200 characters"));
        }
        if raw.chars().any(|c| c.is_control() || is_disguise(c)) {
            return Err(Invalid::new("invalid_characters", "must not contain control or invisible characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Free-form data the user may keep on the account: a JSON object of at most 16 KiB.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    pub const MAX_BYTES: usize = 16 * 1024;

    pub fn parse(raw: Value) -> Result<Self, Invalid> {
        let Value::Object(map) = raw else {
            return Err(Invalid::new("not_an_object", "must be a JSON object"));
        };
        let size = serde_json::to_vec(&map).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > Self::MAX_BYTES {
            return Err(Invalid::new("too_large", "must be at most 16 KiB when serialised"));
        }
        Ok(Self(map))
    }

    /// Rebuilds stored metadata; anything unreadable becomes an empty object.
    pub fn from_stored(text: &str) -> Self {
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Self(map),
            _ => Self::default(),
        }
    }

    pub fn to_stored(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code<T>(result: Result<T, Invalid>) -> &'static str {
        result.err().map(|e| e.code).unwrap_or("ok")
    }

    #[test]
    fn username_rules() {
        assert_eq!(code(Username::parse("ada")), "ok");
        assert_eq!(code(Username::parse("a.b-c_9")), "ok");
        assert_eq!(code(Username::parse("ab")), "too_short");
        assert_eq!(code(Username::parse(&"a".repeat(33))), "too_long");
        assert_eq!(code(Username::parse("ada lovelace")), "invalid_characters");
        assert_eq!(code(Username::parse("adé")), "invalid_characters");
        assert_eq!(code(Username::parse("_ada")), "invalid_start");
        assert_eq!(code(Username::parse(".ada")), "invalid_start");
        assert_eq!(code(Username::parse("0193a1b2c3d4e5f60718293a4b5c6d7e")), "uuid_shaped");
    }

    #[test]
    fn email_rules() {
        assert_eq!(code(Email::parse("ada@example.com")), "ok");
        assert_eq!(Email::parse("  ada@example.com ").map(Email::into_inner), Ok("ada@example.com".to_owned()));
        assert_eq!(code(Email::parse("ada@example")), "invalid_email");
        assert_eq!(code(Email::parse("ada.example.com")), "invalid_email");
        assert_eq!(code(Email::parse("@example.com")), "invalid_email");
        assert_eq!(code(Email::parse("a da@example.com")), "invalid_email");
        assert_eq!(code(Email::parse("ada@-example.com")), "invalid_email");
        assert_eq!(code(Email::parse("ada@example..com")), "invalid_email");
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(code(Email::parse(&long)), "too_long");
    }

    #[test]
    fn phone_rules() {
        assert_eq!(code(Phone::parse("+15551234567")), "ok");
        assert_eq!(code(Phone::parse("15551234567")), "invalid_phone");
        assert_eq!(code(Phone::parse("+05551234567")), "invalid_phone");
        assert_eq!(code(Phone::parse("+1555123456789012")), "invalid_phone");
        assert_eq!(code(Phone::parse("+1 555 123")), "invalid_phone");
    }

    #[test]
    fn name_rules() {
        assert_eq!(code(PersonName::parse("Ada")), "ok");
        assert_eq!(code(PersonName::parse(&"é".repeat(100))), "ok");
        assert_eq!(code(PersonName::parse(&"é".repeat(101))), "too_long");
        assert_eq!(code(PersonName::parse("   ")), "blank");
        assert_eq!(code(PersonName::parse("A\u{0007}")), "invalid_characters");
        assert_eq!(code(PersonName::parse("Ada\u{202E}lanoitan")), "invalid_characters");
        assert_eq!(code(PersonName::parse("A\u{200B}da")), "invalid_characters");
    }

    #[test]
    fn addresses_are_composed_folded_and_measured_after_folding() {
        let decomposed = Email::parse("A\u{030A}sa@Example.com").map(Email::into_inner);
        assert_eq!(decomposed, Ok("\u{00C5}sa@Example.com".to_owned()), "stored composed, case kept");
        assert_eq!(email_key("\u{00C5}SA@EXAMPLE.COM"), email_key("a\u{030A}sa@example.com"));
        assert_eq!(email_key("Strasse@x.de"), email_key("STRAßE@x.de"), "full folding, not just lower case");
        let dotted = format!("{}@{}com", "İ".repeat(60), format!("{}.", "İ".repeat(60)).repeat(3));
        assert!(dotted.chars().count() <= 254 && email_key(&dotted).chars().count() > 254);
        assert_eq!(code(Email::parse(&dotted)), "too_long");
        assert_eq!(code(Email::parse("ada\u{200B}@example.com")), "invalid_email");
        assert_eq!(code(Email::parse("ada\u{0000}@example.com")), "invalid_email");
        assert_eq!(code(plain_text("ad\u{0000}a")), "invalid_characters");
    }

    #[test]
    fn metadata_rules() {
        assert_eq!(code(Metadata::parse(json!({"theme": "dark"}))), "ok");
        assert_eq!(code(Metadata::parse(json!([1, 2]))), "not_an_object");
        let big = "x".repeat(Metadata::MAX_BYTES);
        assert_eq!(code(Metadata::parse(json!({ "k": big }))), "too_large");
        assert_eq!(Metadata::from_stored("not json"), Metadata::default());
    }
}
