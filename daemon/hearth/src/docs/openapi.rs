//! OpenAPI 3.1 documents of functions: one per function
//! (`GET /api/v1/functions/{name}/openapi.json`) and one per application
//! with each of its live functions (`GET /api/v1/apps/{app}/openapi.json`).
//! Each call is `POST /fn/{name}` with the `[input]` schema as its body,
//! the `[output]` schema as its 200, the declared `[errors]` under their
//! statuses, hearth's own errors as the default, and an example request.
//! What hearth knows beyond OpenAPI (type, limits, calls) is under
//! `x-hearth`.

use std::collections::BTreeMap;

use hearth_api::metadata::SCHEMA_DIALECT;
use serde_json::{json, Map, Value};

use super::{example_of, FunctionDoc};

/// The error body every call's failure has (docs/API.md).
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "the function's own code (declared in [errors]) or one of hearth's (docs/API.md)"},
                    "message": {"type": "string"},
                    "hint": {"type": "string", "description": "what to do about it"},
                    "function": {"type": "string"},
                    "version": {"type": "integer", "minimum": 0},
                    "request_id": {"type": "string"},
                    "retryable": {"type": "boolean", "description": "with a declared code: whether the call may be tried again"},
                    "failures": {
                        "type": "array",
                        "description": "with invalid_input / invalid_output: each way the value fails the schema",
                        "items": {
                            "type": "object",
                            "required": ["pointer", "message", "keyword"],
                            "properties": {
                                "pointer": {"type": "string", "description": "JSON pointer into the value"},
                                "message": {"type": "string"},
                                "keyword": {"type": "string"}
                            }
                        }
                    },
                    "details": {
                        "type": "object",
                        "description": "the function's own exception, for function_error",
                        "properties": {
                            "type": {"type": "string"},
                            "message": {"type": "string"},
                            "traceback": {"type": "string"}
                        }
                    }
                }
            }
        }
    })
}

/// A schema embedded in the document, made a resource of its own (an
/// `$id`) so that its internal references (`#/$defs/...`) still resolve.
fn embedded(schema: Option<&Value>, id: String) -> Value {
    match schema {
        Some(Value::Object(o)) => {
            let mut o = o.clone();
            o.remove("$schema");
            if !o.contains_key("$id") && (o.contains_key("$defs") || o.contains_key("definitions"))
            {
                o.insert("$id".into(), Value::String(id));
            }
            Value::Object(o)
        }
        Some(other) => other.clone(),
        None => json!({}),
    }
}

fn ref_error() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}})
}

/// The path item of one function's call.
fn operation(doc: &FunctionDoc) -> Value {
    let m = &doc.manifest;
    let name = &doc.name;
    let input = embedded(m.input.as_ref(), format!("urn:hearth:{name}:input"));
    let output = if m.is_page() {
        embedded(
            Some(&hearth_api::PageAnswer::schema()),
            format!("urn:hearth:{name}:answer"),
        )
    } else {
        embedded(m.output.as_ref(), format!("urn:hearth:{name}:output"))
    };
    let example = m
        .input
        .as_ref()
        .map(example_of)
        .unwrap_or_else(|| json!({}));

    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": if m.is_page() {
                format!("{name}'s fields at their paths (data), and an entry in errors for each field that got its fallback")
            } else {
                format!("{name}'s answer{}", if m.output.is_some() { ", as its [output] schema declares" } else { "" })
            },
            "headers": {
                "x-hearth-version": {"description": "the version that answered", "schema": {"type": "integer"}},
                "x-request-id": {"description": "the call's request id (its call record)", "schema": {"type": "string"}},
                "server-timing": {"description": if m.is_page() {
                    "page, critical (the critical path's member calls, the path in desc) and field.PATH for each field, in ms"
                } else {
                    "queue, spawn, load and run phases in ms"
                }, "schema": {"type": "string"}}
            },
            "content": {"application/json": {"schema": output}}
        }),
    );
    // Declared errors, grouped by status; invalid_input where there is a
    // schema to fail.
    let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    if m.input.is_some() {
        by_status
            .entry(400)
            .or_default()
            .push("`invalid_input`: the event does not match the [input] schema (error.failures lists each failure; the function did not run)".into());
    }
    for (code, e) in &m.errors {
        let retry = if e.retryable {
            "retryable"
        } else {
            "not retryable"
        };
        by_status
            .entry(e.status)
            .or_default()
            .push(format!("`{code}`: {} ({retry})", e.message));
    }
    if m.is_page() {
        by_status.entry(502).or_default().push(
            "`field_failed`: a required field's function failed (error.field names the field)"
                .into(),
        );
        by_status.entry(504).or_default().push(
            "`field_timeout`: a required field was late (error.field names the field)".into(),
        );
    }
    for (status, lines) in by_status {
        responses.insert(
            status.to_string(),
            json!({"description": lines.join("; "), "content": ref_error()}),
        );
    }
    responses.insert(
        "default".into(),
        json!({
            "description": "hearth's own errors: unauthorized (401), forbidden (403), function_not_found (404), queue_full / rate_limited (429), function_error / undeclared_error (500), timeout (504), … (docs/API.md)",
            "content": ref_error()
        }),
    );
    let mut description = Vec::new();
    if !doc.description.is_empty() {
        description.push(doc.description.clone());
    }
    description.push(format!(
        "Type `{}`, application `{}`{}; version {}. Times out after {} ms; requests up to {} KiB.",
        m.kind,
        m.app,
        if doc.category.is_empty() {
            String::new()
        } else {
            format!(", category `{}`", doc.category)
        },
        doc.version,
        m.limits.timeout_ms,
        m.limits.max_request_kb
    ));
    if !m.calls.is_empty() {
        description.push(format!("Calls {}.", m.calls.join(", ")));
    }
    let security = if doc.open {
        json!([{}, {"bearer": []}])
    } else {
        json!([{"bearer": []}])
    };
    let errors: Map<String, Value> = m
        .errors
        .iter()
        .map(|(code, e)| {
            (
                code.clone(),
                json!({"status": e.status, "message": e.message, "retryable": e.retryable}),
            )
        })
        .collect();
    json!({
        "post": {
            "operationId": format!("call_{}", name.replace('-', "_")),
            "summary": if doc.description.is_empty() { format!("call {name}") } else { doc.description.clone() },
            "description": description.join("\n\n"),
            "tags": [m.app],
            "requestBody": {
                "required": true,
                "content": {"application/json": {"schema": input, "example": example}}
            },
            "responses": responses,
            "security": security,
            "x-hearth-scope": "invoke",
            "x-hearth-errors": errors,
        }
    })
}

/// A page's fields, for `x-hearth`.
fn page_fields(m: &hearth_api::manifest::Manifest) -> Value {
    use hearth_api::page::Fallback;
    let Some(Ok(template)) = m.template() else {
        return Value::Null;
    };
    let paths: Vec<&str> = template.fields.iter().map(|f| f.path.as_str()).collect();
    Value::Array(
        template
            .fields
            .iter()
            .map(|f| {
                json!({
                    "path": f.path,
                    "fn": f.function.to_string(),
                    "input": f.input,
                    "needs": f.needs.iter().filter_map(|&j| paths.get(j).copied()).collect::<Vec<_>>(),
                    "timeout_ms": f.timeout_ms,
                    "required": f.required,
                    "hidden": f.hidden,
                    "fallback": match &f.fallback {
                        Fallback::None => json!(null),
                        Fallback::Static(v) => json!({"static": v}),
                        Fallback::Stale => json!("stale"),
                        Fallback::Omit => json!("omit"),
                    },
                })
            })
            .collect(),
    )
}

fn x_hearth(doc: &FunctionDoc) -> Value {
    let m = &doc.manifest;
    let l = &m.limits;
    json!({
        "call": doc.call_path(),
        "fields": page_fields(m),
        "function": doc.name,
        "version": doc.version,
        "type": m.kind,
        "app": m.app,
        "category": doc.category,
        "runtime": m.runtime,
        "output_validation": m.output_validation,
        "schema_files": m.schema_files,
        "limits": {
            "timeout_ms": l.timeout_ms,
            "memory_mb": l.memory_mb,
            "max_request_kb": l.max_request_kb,
            "max_response_kb": l.max_response_kb,
            "rate_per_second": l.rate_per_second,
        },
        "calls": m.calls,
        "called_by": doc.called_by,
        "open": doc.open,
    })
}

fn components() -> Value {
    json!({
        "schemas": {"Error": error_schema()},
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "a hearth token with scope invoke (`hearth token create NAME --scope invoke`)"
            }
        }
    })
}

/// One function's document.
pub fn function(doc: &FunctionDoc) -> Value {
    let mut paths = Map::new();
    paths.insert(doc.call_path(), operation(doc));
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": SCHEMA_DIALECT,
        "info": {
            "title": doc.name,
            "version": doc.version.to_string(),
            "description": if doc.description.is_empty() { format!("The function {} on hearth.", doc.name) } else { doc.description.clone() },
        },
        "servers": [{"url": "/", "description": "the hearth gateway that served this document"}],
        "paths": paths,
        "components": components(),
        "x-hearth": x_hearth(doc),
    })
}

/// An application's document: each of its live functions.
pub fn app(app: &str, docs: &[FunctionDoc]) -> Value {
    let mut paths = Map::new();
    let mut functions = Vec::new();
    for doc in docs {
        paths.insert(doc.call_path(), operation(doc));
        functions.push(x_hearth(doc));
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": SCHEMA_DIALECT,
        "info": {
            "title": format!("{app} (hearth application)"),
            "version": "1",
            "description": format!("The live functions of the application {app} on hearth: {}.", docs.len()),
        },
        "servers": [{"url": "/", "description": "the hearth gateway that served this document"}],
        "tags": [{"name": app}],
        "paths": paths,
        "components": components(),
        "x-hearth": {"app": app, "functions": functions},
    })
}
