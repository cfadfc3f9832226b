//! The rules each field of a request obeys, as JSON Schema keywords, from the domain's parsers
//! (`domain::fields`, `domain::password`, `domain::money`, `domain::second_factor`): a field's
//! rule is written once here, under its name, and applied wherever the field is taken. Rules
//! JSON Schema cannot state (an address's syntax, the common-password list, a token only this
//! service made) stay in words; `.ci/schemathesis.toml` lists the operations they apply to.

use serde_json::{Map, Value, json};

/// The control characters, C0, DEL and C1, as a regex class body: nothing the service stores or
/// looks up has one.
macro_rules! control {
    () => {
        "\\u0000-\\u001F\\u007F-\\u009F"
    };
}

/// Text with no control character.
pub const NO_CONTROL_CHARACTERS: &str = concat!("^[^", control!(), "]*$");

/// Control characters and the invisible ones that can disguise text (`fields::is_disguise`).
const HIDDEN: &str =
    concat!(control!(), "\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF");

/// Text that is not blank and has none of the characters of the class body `excluded`.
fn not_blank_without(excluded: &str) -> String {
    format!("^[^{excluded}]*[^\\s{excluded}][^{excluded}]*$")
}

/// Text a person reads (a name, a note): not blank and nothing hidden.
fn visible_text(max_length: u32) -> Value {
    json!({ "minLength": 1, "maxLength": max_length, "pattern": not_blank_without(HIDDEN) })
}

/// A TOTP code as typed: six digits, spaces ignored, at most 16 characters.
fn totp_code() -> Value {
    json!({ "maxLength": 16, "pattern": "^ *(?:[0-9] *){6}$" })
}

/// A recovery code as typed: 16 Crockford base32 characters in any case (I, L, O read as
/// digits; no U), dashes and spaces ignored, at most 40 characters.
fn recovery_code() -> Value {
    json!({ "maxLength": 40, "pattern": "^[- ]*(?:[0-9A-TV-Za-tv-z][- ]*){16}$" })
}

/// The largest amount, in minor units (`money::MAX_AMOUNT`).
const MAX_AMOUNT: i64 = crate::domain::money::MAX_AMOUNT;

/// The keywords for `field` of the request body schema `schema`, if it has a rule.
fn rule(schema: &str, field: &str) -> Option<Value> {
    let looked_up = matches!(schema, "LoginRequest" | "ForgotPasswordRequest");
    Some(match field {
        // Looked up as typed: not blank, no control character.
        "username" | "email" if looked_up => json!({ "pattern": not_blank_without(control!()) }),
        "username" => json!({
            "minLength": 3, "maxLength": 32, "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
            "not": { "type": "string", "pattern": "^[0-9A-Fa-f]{32}$" },
        }),
        // White space around an address is trimmed before it is checked.
        "email" => json!({ "pattern": concat!("^\\s*[^", control!(), "]*\\s*$") }),
        // A new password; one that only confirms a change is checked against the stored hash.
        "password" | "new_password" if schema != "PasswordConfirmation" && !looked_up => {
            json!({ "minLength": 8, "maxLength": 128 })
        }
        "phone" => json!({ "pattern": "^\\+[1-9][0-9]{1,14}$" }),
        "first_name" | "last_name" | "display_name" => visible_text(100),
        "description" | "reason" | "name" => visible_text(200),
        "role" => json!({ "enum": ["user", "admin", "owner", null] }),
        "status" if schema == "UpdateWalletRequest" => json!({ "enum": ["active", "frozen", null] }),
        "status" => json!({ "enum": ["active", "disabled", null] }),
        "kind" => json!({ "enum": ["personal", "business", "savings", null] }),
        "currency" => json!({ "pattern": "^\\s*[A-Za-z]{3}\\s*$" }),
        "amount" if schema == "AdjustmentBody" => {
            json!({ "minimum": -MAX_AMOUNT, "maximum": MAX_AMOUNT, "not": { "const": 0 } })
        }
        "amount" => json!({ "minimum": 1, "maximum": MAX_AMOUNT }),
        "expires_in" => json!({ "minimum": 1, "maximum": 2_592_000 }),
        "from_wallet_id" | "to_wallet_id" => json!({ "format": "uuid" }),
        "totp_code" => totp_code(),
        "code" if schema == "TotpConfirmation" => totp_code(),
        "recovery_code" => recovery_code(),
        "code" => json!({ "anyOf": [totp_code(), recovery_code()] }),
        _ => return None,
    })
}

/// The keywords for the path, query or header parameter `name`, if it has a rule.
pub fn parameter_rule(name: &str) -> Option<Value> {
    Some(match name {
        "limit" => json!({ "minimum": 1, "maximum": 200 }),
        "id" | "user_id" => json!({ "format": "uuid" }),
        "role" => json!({ "enum": ["user", "admin", "owner"] }),
        "status" => json!({ "enum": ["active", "disabled"] }),
        "sort" => json!({ "enum": ["created_at", "-created_at", "username", "-username"] }),
        "created_after" | "created_before" => json!({ "format": "date-time" }),
        "Idempotency-Key" => json!({ "minLength": 1, "maxLength": 255, "pattern": "^[!-~]*$" }),
        _ => return None,
    })
}

/// Applies the field rules to every property of the request body schemas named `names`.
pub fn apply(schemas: &mut Map<String, Value>, names: &[String]) {
    for name in names {
        let Some(properties) =
            schemas.get_mut(name).and_then(|s| s.get_mut("properties")).and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (field, property) in properties.iter_mut() {
            if let (Some(Value::Object(keywords)), Some(property)) = (rule(name, field), property.as_object_mut()) {
                property.extend(keywords);
            }
        }
    }
}
