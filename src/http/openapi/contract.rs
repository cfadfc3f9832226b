//! What the handlers' annotations cannot say, added to the generated document so that a client
//! generated from it, or a fuzzer checking the service against it, is told everything: the
//! answers the edge and the extractors give on any route (bad bytes, a body that is not JSON,
//! a database that is away), the character rule every path and query parameter obeys, and the
//! rules between fields ("exactly one of") as JSON Schema keywords utoipa has no attribute for.

use serde_json::{Map, Value, json};

use super::field_rules::{self, NO_CONTROL_CHARACTERS};

/// The operations an account held to enrolling a second factor may still use (the rest answer
/// `403 mfa_enrolment_required`); `EnrollingUser` in the handlers.
const OPEN_WHILE_ENROLLING: [(&str, &str); 7] = [
    ("get", "/v1/me/mfa"),
    ("post", "/v1/me/mfa/totp"),
    ("post", "/v1/me/mfa/totp/confirm"),
    ("get", "/v1/me/passkeys"),
    ("post", "/v1/me/passkeys/start"),
    ("post", "/v1/me/passkeys/finish"),
    ("post", "/v1/auth/logout"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Completes `document` (the generated one, as JSON) in place.
pub fn complete(document: &mut Value) {
    let mut bodies = Vec::new();
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            for method in METHODS {
                if let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) {
                    add_edge_answers(operation, method, path);
                    add_parameter_rules(operation);
                    bodies.extend(body_schema(operation));
                }
            }
        }
    }
    if let Some(schemas) = document.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        field_rules::apply(schemas, &bodies);
        add_between_field_rules(schemas);
    }
}

/// The name of the schema the operation's JSON body has, if it has one.
fn body_schema(operation: &Map<String, Value>) -> Option<String> {
    let schema = operation.get("requestBody")?.pointer("/content/application~1json/schema")?;
    // An optional body is `oneOf: [null, {$ref}]`.
    let reference = schema.get("$ref").or_else(|| schema.pointer("/oneOf/1/$ref"))?.as_str()?;
    reference.strip_prefix("#/components/schemas/").map(str::to_owned)
}

/// The answers any operation of its kind can give, whatever its handler does.
fn add_edge_answers(operation: &mut Map<String, Value>, method: &str, path: &str) {
    let has_body = operation.contains_key("requestBody");
    let has_parameters = operation.get("parameters").and_then(Value::as_array).is_some_and(|p| !p.is_empty());
    let signed_in = operation.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
    let mut answers =
        vec![("400", "malformed_request", "a body that is not JSON, or a path or query with control characters")];
    if signed_in {
        answers.push((
            "401",
            "unauthenticated",
            "no bearer token, or one that is malformed, forged, expired or of an ended session",
        ));
        if !OPEN_WHILE_ENROLLING.contains(&(method, path)) {
            answers.push(("403", "mfa_enrolment_required", "the session may only enrol a second factor"));
        }
    }
    if has_body {
        answers.push(("413", "payload_too_large", "bodies may be at most 64 KiB"));
        answers.push(("415", "unsupported_media_type", "the body must be sent as `application/json`"));
    }
    if has_body || has_parameters {
        answers.push(("422", "validation_failed", "every refused field is named in `errors`"));
    }
    answers.push((
        "503",
        "unavailable",
        "the database did not answer in time, or the request took too long; with `Retry-After`",
    ));
    let responses = operation.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else { return };
    for (status, code, why) in answers {
        add_answer(responses, status, code, why);
    }
}

/// Adds `code` to the answer for `status`, or the answer itself when the operation has none.
fn add_answer(responses: &mut Map<String, Value>, status: &str, code: &str, why: &str) {
    let named = format!("`{code}`");
    match responses.get_mut(status) {
        Some(existing) => {
            let description = existing.get("description").and_then(Value::as_str).unwrap_or_default();
            if !description.contains(&named) {
                let joined = format!("{description}. Also {named}: {why}");
                existing["description"] = Value::String(joined.trim_start_matches(". ").to_owned());
            }
        }
        None => {
            let problem = json!({ "schema": { "$ref": "#/components/schemas/Problem" } });
            responses.insert(
                status.to_owned(),
                json!({ "description": format!("{named}: {why}"), "content": { "application/problem+json": problem } }),
            );
        }
    }
}

/// Each parameter's rule, and for every other free-text one that it holds no control character.
fn add_parameter_rules(operation: &mut Map<String, Value>) {
    let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else { return };
    for parameter in parameters {
        let name = parameter.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut) else { continue };
        match field_rules::parameter_rule(&name) {
            Some(Value::Object(keywords)) => schema.extend(keywords),
            _ if schema.get("type").is_some_and(|t| t == "string") => {
                schema.insert("pattern".to_owned(), Value::String(NO_CONTROL_CHARACTERS.to_owned()));
            }
            _ => {}
        }
    }
}

/// Rules between fields of a body: `oneOf` where exactly one of two fields must be given,
/// `anyOf` where at least one, `not` where two may not both be.
fn add_between_field_rules(schemas: &mut Map<String, Value>) {
    for (name, first, second) in [
        ("LoginRequest", "username", "email"),
        ("ForgotPasswordRequest", "username", "email"),
        ("MfaRequest", "totp_code", "recovery_code"),
    ] {
        if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            schema.insert("oneOf".to_owned(), json!([given(first), given(second)]));
        }
    }
    for name in ["RegisterRequest", "CreateUserRequest"] {
        if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            schema.insert("anyOf".to_owned(), json!([given("username"), given("email")]));
        }
    }
    if let Some(schema) = schemas.get_mut("FactorConfirmation").and_then(Value::as_object_mut) {
        let both = json!({ "allOf": [given("code"), given("passkey")] });
        schema.insert("not".to_owned(), both);
    }
}

/// The schema of an object in which `field` is given and not `null`.
fn given(field: &str) -> Value {
    json!({ "required": [field], "properties": { field: { "not": { "type": "null" } } } })
}
