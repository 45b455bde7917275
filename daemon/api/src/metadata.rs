//! What a function declares about itself beyond its code, kept with each
//! version (immutable like the code): its `type`, the JSON Schemas (2020-12)
//! of its `[input]` and `[output]`, its own `[errors]` and how its output is
//! checked (`output_validation`). The engine validates calls against these,
//! the API documents functions from them (OpenAPI, `hearth docs`), and
//! publishing compares them between versions ([`breaking_changes`]).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What kind of function this is. The type says how a function is meant
/// to be used and what it must declare:
/// - `function` (the default): anything callable.
/// - `datasource`: acquires data (from files it ships, or other sources)
///   for other functions and pages. It must declare an `[output]` schema
///   (its callers build on what it returns), and its output is checked
///   against it by default (`output_validation = "log"`).
/// - `field`: maps data sources to one field of a page's template; usually
///   calls data sources (`calls = [...]`).
/// - `page`: a page composed of fields (declared with `[fields]`, no
///   runtime of its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FunctionType {
    #[default]
    Function,
    Datasource,
    Field,
    Page,
}

impl FunctionType {
    pub const ALL: [FunctionType; 4] = [
        FunctionType::Function,
        FunctionType::Datasource,
        FunctionType::Field,
        FunctionType::Page,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FunctionType::Function => "function",
            FunctionType::Datasource => "datasource",
            FunctionType::Field => "field",
            FunctionType::Page => "page",
        }
    }

    pub fn parse(s: &str) -> Option<FunctionType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for FunctionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the engine does with a function's answer when it declares an
/// `[output]` schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputValidation {
    /// Not checked.
    #[default]
    Off,
    /// Checked; an answer that does not match is still returned, and
    /// logged (and counted in `hearth_output_invalid_total`).
    Log,
    /// Checked; an answer that does not match becomes a 500
    /// `invalid_output` (the caller never gets it).
    Enforce,
}

impl OutputValidation {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputValidation::Off => "off",
            OutputValidation::Log => "log",
            OutputValidation::Enforce => "enforce",
        }
    }

    pub fn parse(s: &str) -> Option<OutputValidation> {
        [
            OutputValidation::Off,
            OutputValidation::Log,
            OutputValidation::Enforce,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// One of the function's own error codes (`[errors.NOT_FOUND]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeclaredError {
    /// The HTTP status a caller gets (400-599).
    pub status: u16,
    /// What the code means, for callers and the docs; the message the
    /// function raises with goes with it.
    pub message: String,
    /// Whether a caller may try the same call again.
    #[serde(default)]
    pub retryable: bool,
}

/// Longest error code a function may declare.
pub const MAX_CODE_LEN: usize = 64;

/// Error codes: `[A-Za-z][A-Za-z0-9_.-]*`, at most 64 characters, not one
/// of hearth's own codes (docs/API.md).
pub fn check_code(code: &str) -> Result<(), String> {
    if code.is_empty() || code.len() > MAX_CODE_LEN {
        return Err(format!(
            "\"{code}\" must be 1 to {MAX_CODE_LEN} characters long"
        ));
    }
    let mut chars = code.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(format!(
            "\"{code}\" must start with a letter and use only letters, digits, '_', '.' and '-' (for example NOT_FOUND)"
        ));
    }
    if crate::ErrorCode::parse(code).is_some() {
        return Err(format!(
            "\"{code}\" is one of hearth's own error codes (docs/API.md); give the function's error another name, for example {}",
            code.to_ascii_uppercase()
        ));
    }
    Ok(())
}

/// The dialect hearth reads schemas in.
pub const SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Check that `schema` is a JSON Schema 2020-12 that hearth can use: valid
/// against the meta-schema, with every `$ref` inside it (nothing is fetched).
/// The error says where in the schema it is wrong.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err(
            "must be a table of JSON Schema keywords (type, properties, required, …)".into(),
        );
    }
    if let Some(dialect) = schema.get("$schema") {
        let known = dialect
            .as_str()
            .is_some_and(|d| d.trim_end_matches('#') == SCHEMA_DIALECT);
        if !known {
            return Err(format!(
                "declares $schema {dialect}; hearth reads JSON Schema 2020-12 ({SCHEMA_DIALECT}): remove $schema or use that one"
            ));
        }
    }
    if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
        let at = e.instance_path().to_string();
        let at = if at.is_empty() { "/".to_owned() } else { at };
        return Err(format!("is not a valid JSON Schema 2020-12: at {at}: {e}"));
    }
    compile(schema).map(|_| ())
}

/// A validator for a schema [`check_schema`] accepted.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            format!("cannot be used as a JSON Schema: at {at}: {e} (a $ref must point inside the schema: nothing is fetched)")
        })
}

/// One way an instance fails its schema: where (a JSON pointer into the
/// instance, "" for the whole of it), what is wrong, and the schema
/// keyword that says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SchemaFailure {
    pub pointer: String,
    pub message: String,
    pub keyword: String,
}

/// Most failures listed for one instance.
pub const MAX_FAILURES: usize = 32;

/// Every way `instance` fails `validator` (up to [`MAX_FAILURES`]), or
/// none.
pub fn failures(validator: &jsonschema::Validator, instance: &Value) -> Vec<SchemaFailure> {
    if validator.is_valid(instance) {
        return Vec::new();
    }
    validator
        .iter_errors(instance)
        .take(MAX_FAILURES)
        .map(|e| SchemaFailure {
            pointer: e.instance_path().to_string(),
            message: e.to_string(),
            keyword: e.kind().keyword().to_owned(),
        })
        .collect()
}

/// TOML as JSON (dates become strings, as JSON has none).
pub fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// One difference between two input schemas that can break a caller of
/// the older one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BreakingChange {
    /// Where, as a JSON pointer into the input ("" for the input itself).
    pub pointer: String,
    pub change: String,
}

/// How an input schema moving from `old` to `new` can break callers that
/// send what `old` accepted: a property that becomes required, a property
/// removed (or forbidden), a type narrowed, an enum losing values, bounds
/// tightened, a schema added where there was none. Looks at `type`,
/// `properties`, `required`, `additionalProperties`, `enum`, bounds and
/// `items`, recursively; a change elsewhere is not judged.
pub fn breaking_changes(old: Option<&Value>, new: Option<&Value>) -> Vec<BreakingChange> {
    let mut out = Vec::new();
    match (old, new) {
        (_, None) => {}
        (None, Some(new)) => {
            if new.as_object().is_some_and(|o| !o.is_empty()) && new != &Value::Bool(true) {
                out.push(BreakingChange {
                    pointer: String::new(),
                    change: "an input schema is declared where the live version had none: calls it would have taken may now be refused".into(),
                });
            }
        }
        (Some(old), Some(new)) => compare(old, new, "", &mut out),
    }
    out
}

fn types_of(schema: &Value) -> Option<Vec<String>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

fn compare(old: &Value, new: &Value, at: &str, out: &mut Vec<BreakingChange>) {
    let push = |out: &mut Vec<BreakingChange>, change: String| {
        out.push(BreakingChange {
            pointer: at.to_owned(),
            change,
        })
    };
    if new == &Value::Bool(false) && old != &Value::Bool(false) {
        push(
            out,
            "is now refused whatever it holds (schema false)".into(),
        );
        return;
    }
    // Types: each type the old schema took must still be taken (integer
    // is within number).
    match (types_of(old), types_of(new)) {
        (None, Some(new_types)) => push(
            out,
            format!(
                "must now be of type {} (it could be anything)",
                new_types.join(" or ")
            ),
        ),
        (Some(old_types), Some(new_types)) => {
            let lost: Vec<&String> = old_types
                .iter()
                .filter(|t| {
                    let widened =
                        t.as_str() == "integer" && new_types.iter().any(|n| n == "number");
                    !(new_types.contains(t) || widened)
                })
                .collect();
            if !lost.is_empty() {
                push(
                    out,
                    format!(
                        "type narrowed from {} to {}",
                        old_types.join(" or "),
                        new_types.join(" or ")
                    ),
                );
            }
        }
        _ => {}
    }
    // Enums may only grow.
    if let Some(Value::Array(new_enum)) = new.get("enum") {
        match old.get("enum") {
            Some(Value::Array(old_enum)) => {
                let lost: Vec<String> = old_enum
                    .iter()
                    .filter(|v| !new_enum.contains(v))
                    .map(|v| v.to_string())
                    .collect();
                if !lost.is_empty() {
                    push(out, format!("enum no longer allows {}", lost.join(", ")));
                }
            }
            _ => push(out, "is now limited to an enum of values".into()),
        }
    }
    if let Some(c) = new.get("const") {
        if old.get("const") != Some(c) {
            push(out, format!("must now be exactly {c}"));
        }
    }
    // Bounds may only widen.
    for (key, lower) in [
        ("minimum", true),
        ("exclusiveMinimum", true),
        ("minLength", true),
        ("minItems", true),
        ("minProperties", true),
        ("maximum", false),
        ("exclusiveMaximum", false),
        ("maxLength", false),
        ("maxItems", false),
        ("maxProperties", false),
    ] {
        let Some(n) = new.get(key).and_then(Value::as_f64) else {
            continue;
        };
        let tighter = match old.get(key).and_then(Value::as_f64) {
            None => true,
            Some(o) => {
                if lower {
                    n > o
                } else {
                    n < o
                }
            }
        };
        if tighter {
            let was = old.get(key).map_or("not set".to_owned(), |v| v.to_string());
            push(out, format!("{key} tightened to {} (was {was})", new[key]));
        }
    }
    if let Some(p) = new.get("pattern") {
        if old.get("pattern") != Some(p) {
            push(out, format!("pattern changed to {p}"));
        }
    }
    // Objects: required may only shrink; properties may not go away.
    let old_required = string_list(old.get("required"));
    for name in string_list(new.get("required")) {
        if !old_required.contains(&name) {
            out.push(BreakingChange {
                pointer: format!("{at}/{}", escape(&name)),
                change: format!("property `{name}` is now required"),
            });
        }
    }
    let empty = serde_json::Map::new();
    let old_props = old
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_props = new
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let closed = new.get("additionalProperties") == Some(&Value::Bool(false))
        || new.get("unevaluatedProperties") == Some(&Value::Bool(false));
    let was_closed = old.get("additionalProperties") == Some(&Value::Bool(false))
        || old.get("unevaluatedProperties") == Some(&Value::Bool(false));
    for (name, old_sub) in old_props {
        let pointer = format!("{at}/{}", escape(name));
        match new_props.get(name) {
            Some(new_sub) => compare(old_sub, new_sub, &pointer, out),
            None if closed => out.push(BreakingChange {
                pointer,
                change: format!("property `{name}` was removed and extra properties are refused"),
            }),
            None => out.push(BreakingChange {
                pointer,
                change: format!("property `{name}` was removed (callers may still send it; the function no longer declares it)"),
            }),
        }
    }
    if closed && !was_closed {
        push(
            out,
            "extra properties are now refused (additionalProperties = false)".into(),
        );
    }
    if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
        compare(old_items, new_items, &format!("{at}/items"), out);
    }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON pointer's escaping of one segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The declared errors of a manifest, by code.
pub type Errors = BTreeMap<String, DeclaredError>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_are_checked() {
        assert!(check_code("NOT_FOUND").is_ok());
        assert!(check_code("db.unavailable-2").is_ok());
        assert!(check_code("").is_err());
        assert!(check_code("1x").is_err());
        assert!(check_code("a b").is_err());
        assert!(check_code(&"x".repeat(65)).is_err());
        assert!(check_code("timeout")
            .expect_err("own")
            .contains("hearth's own"));
    }

    #[test]
    fn schemas_are_checked_with_where() {
        assert!(check_schema(&json!({"type": "object", "required": ["id"]})).is_ok());
        let e = check_schema(&json!({"type": "object", "properties": {"id": {"type": "integr"}}}))
            .expect_err("bad type");
        assert!(e.contains("/properties/id/type"), "{e}");
        let e = check_schema(&json!({"$ref": "https://example.com/s.json"})).expect_err("remote");
        assert!(e.contains("nothing is fetched"), "{e}");
        let e = check_schema(&json!({"$schema": "http://json-schema.org/draft-07/schema#"}))
            .expect_err("draft 7");
        assert!(e.contains("2020-12"), "{e}");
    }

    #[test]
    fn failures_have_pointers() {
        let v = compile(&json!({
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "integer", "minimum": 1}, "tags": {"type": "array", "items": {"type": "string"}}},
            "additionalProperties": false
        }))
        .expect("compile");
        let f = failures(&v, &json!({"id": 0, "tags": ["a", 2], "x": 1}));
        let pointers: Vec<&str> = f.iter().map(|f| f.pointer.as_str()).collect();
        assert!(pointers.contains(&"/id"), "{f:?}");
        assert!(pointers.contains(&"/tags/1"), "{f:?}");
        assert!(
            f.iter().any(|f| f.keyword == "additionalProperties"),
            "{f:?}"
        );
        let f = failures(&v, &json!({}));
        assert_eq!(f[0].keyword, "required");
        assert!(failures(&v, &json!({"id": 3})).is_empty());
    }

    #[test]
    fn breaking_changes_are_found() {
        let old = json!({"type": "object", "required": ["id"], "properties": {
            "id": {"type": "integer"}, "limit": {"type": "integer", "maximum": 100}, "q": {"type": ["string", "null"]}}});
        // Widening is fine.
        let wider = json!({"type": "object", "properties": {
            "id": {"type": "number"}, "limit": {"type": "integer", "maximum": 200}, "q": {"type": ["string", "null"]}, "new": {"type": "string"}}});
        assert_eq!(breaking_changes(Some(&old), Some(&wider)), vec![]);
        let narrower = json!({"type": "object", "required": ["id", "user"], "properties": {
            "id": {"type": "string"}, "limit": {"type": "integer", "maximum": 50}, "user": {"type": "string"}}});
        let changes = breaking_changes(Some(&old), Some(&narrower));
        let text: Vec<String> = changes
            .iter()
            .map(|c| format!("{} {}", c.pointer, c.change))
            .collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("/user ") && t.contains("required")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("/id ") && t.contains("narrowed")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("/limit ") && t.contains("maximum")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("/q ") && t.contains("removed")),
            "{text:?}"
        );
        assert!(breaking_changes(None, Some(&old)).len() == 1);
        assert!(breaking_changes(Some(&old), None).is_empty());
    }
}
