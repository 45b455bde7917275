//! A function's interface document, generated from what its live version
//! declares (hearth.toml: description, type, `[input]`, `[output]`,
//! `[errors]`, limits, calls): an OpenAPI 3.1 document per function and
//! per application (openapi.rs), and from that one document the text that
//! `hearth docs NAME` prints (text.rs) and the HTML page with a call form
//! at `/docs/{name}` (html.rs). Nothing here is written by hand per
//! function, and nothing is fetched from the internet.

pub mod html;
pub mod openapi;
pub mod text;

use hearth_api::manifest::Manifest;
use serde_json::{json, Value};

/// What a function's document is made from.
#[derive(Debug, Clone)]
pub struct FunctionDoc {
    pub name: String,
    /// The version documented (the live one).
    pub version: u32,
    pub category: String,
    pub description: String,
    pub manifest: Manifest,
    /// Functions whose live version declares that they call this one.
    pub called_by: Vec<String>,
    /// Whether its application takes calls without a token.
    pub open: bool,
}

impl FunctionDoc {
    /// Where it is called: `/page/NAME` for a page, `/fn/NAME` otherwise.
    pub fn call_path(&self) -> String {
        if self.manifest.is_page() {
            format!("/page/{}", self.name)
        } else {
            format!("/fn/{}", self.name)
        }
    }
}

/// An example event for `schema`: its first `examples` entry, else one
/// made from its properties (required ones, and the others that have a
/// default or an example), each from its `examples`, `default`, `const`,
/// `enum` or type.
pub fn example_of(schema: &Value) -> Value {
    example_at(schema, 0)
}

fn example_at(schema: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(first) = schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    for key in ["default", "const"] {
        if let Some(v) = schema.get(key) {
            return v.clone();
        }
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => return json!({}),
    };
    match ty {
        "object" => {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut out = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    let hinted = sub.get("examples").is_some() || sub.get("default").is_some();
                    if required.contains(&name.as_str()) || hinted {
                        out.insert(name.clone(), example_at(sub, depth + 1));
                    }
                }
            }
            Value::Object(out)
        }
        "array" => match schema.get("items") {
            Some(items) if schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) > 0 => {
                json!([example_at(items, depth + 1)])
            }
            _ => json!([]),
        },
        "string" => {
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            match schema.get("format").and_then(Value::as_str) {
                Some("date-time") => json!("2026-01-01T00:00:00Z"),
                Some("date") => json!("2026-01-01"),
                Some("email") => json!("user@example.com"),
                Some("uri") => json!("https://example.com/"),
                _ => Value::String("a".repeat(min.clamp(1, 64))),
            }
        }
        "integer" => json!(bound(schema).map_or(1, |b| b.ceil() as i64)),
        "number" => json!(bound(schema).unwrap_or(1.0)),
        "boolean" => json!(true),
        _ => Value::Null,
    }
}

/// The lowest value a number may take, if the schema bounds it.
fn bound(schema: &Value) -> Option<f64> {
    if let Some(m) = schema.get("minimum").and_then(Value::as_f64) {
        return Some(m);
    }
    schema
        .get("exclusiveMinimum")
        .and_then(Value::as_f64)
        .map(|m| m + 1.0)
}

/// One field of a schema, flattened for tables and forms.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// A JSON pointer into the event (`/user/name`, `/tags/*` for items).
    pub pointer: String,
    pub ty: String,
    pub required: bool,
    /// Constraints in words: `minimum 1`, `one of a, b`, …
    pub rules: Vec<String>,
    pub description: String,
    pub schema: Value,
}

/// The fields of an object schema, depth first (nested objects' fields
/// follow their object; array items are `/name/*`).
pub fn fields(schema: &Value) -> Vec<Field> {
    let mut out = Vec::new();
    walk(schema, "", &mut out, 0);
    out
}

fn type_name(schema: &Value) -> String {
    match schema.get("type") {
        Some(Value::String(t)) => {
            if t == "array" {
                match schema.get("items").map(type_name) {
                    Some(inner) if !inner.is_empty() && inner != "any" => {
                        format!("array of {inner}")
                    }
                    _ => "array".into(),
                }
            } else {
                t.clone()
            }
        }
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ if schema.get("enum").is_some() => "enum".into(),
        _ if schema.get("properties").is_some() => "object".into(),
        _ if schema.get("$ref").is_some() => "see schema".into(),
        _ => "any".into(),
    }
}

fn rules_of(schema: &Value) -> Vec<String> {
    let mut rules = Vec::new();
    for (key, words) in [
        ("minimum", "minimum"),
        ("maximum", "maximum"),
        ("exclusiveMinimum", "over"),
        ("exclusiveMaximum", "under"),
        ("minLength", "at least characters:"),
        ("maxLength", "at most characters:"),
        ("minItems", "at least items:"),
        ("maxItems", "at most items:"),
        ("pattern", "matches"),
        ("format", "format"),
        ("default", "default"),
    ] {
        if let Some(v) = schema.get(key) {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            rules.push(format!("{words} {v}"));
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let list: Vec<String> = values.iter().map(Value::to_string).collect();
        rules.push(format!("one of {}", list.join(", ")));
    }
    if let Some(c) = schema.get("const") {
        rules.push(format!("exactly {c}"));
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        rules.push("no other fields".into());
    }
    rules
}

fn walk(schema: &Value, at: &str, out: &mut Vec<Field>, depth: usize) {
    if depth > 8 {
        return;
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, sub) in props {
        let pointer = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
        out.push(Field {
            pointer: pointer.clone(),
            ty: type_name(sub),
            required: required.contains(&name.as_str()),
            rules: rules_of(sub),
            description: sub
                .get("description")
                .or_else(|| sub.get("title"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            schema: sub.clone(),
        });
        walk(sub, &pointer, out, depth + 1);
        if let Some(items) = sub.get("items") {
            walk(items, &format!("{pointer}/*"), out, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_made_from_schemas() {
        let s = json!({"type": "object", "required": ["id", "user"], "properties": {
            "id": {"type": "integer", "minimum": 5},
            "user": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
            "limit": {"type": "integer", "default": 20},
            "skip": {"type": "integer"},
            "kind": {"enum": ["a", "b"]}}});
        assert_eq!(
            example_of(&s),
            json!({"id": 5, "user": {"name": "a"}, "limit": 20})
        );
        let with = json!({"type": "object", "examples": [{"id": 42}]});
        assert_eq!(example_of(&with), json!({"id": 42}));
    }

    #[test]
    fn fields_are_flattened_with_rules() {
        let s = json!({"type": "object", "required": ["id"], "properties": {
            "id": {"type": "integer", "minimum": 1, "description": "the program"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "user": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 9}}}}});
        let f = fields(&s);
        let pointers: Vec<&str> = f.iter().map(|f| f.pointer.as_str()).collect();
        assert_eq!(pointers, vec!["/id", "/tags", "/user", "/user/name"]);
        assert!(f[0].required && f[0].rules == vec!["minimum 1"]);
        assert_eq!(f[0].description, "the program");
        assert_eq!(f[1].ty, "array of string");
        assert_eq!(f[3].rules, vec!["at most characters: 9"]);
    }
}
