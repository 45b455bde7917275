//! The readable interface document `hearth docs NAME` prints (Markdown),
//! made from the function's OpenAPI document (openapi.rs), so the page,
//! the CLI and the OpenAPI document never disagree.

use std::fmt::Write as _;

use serde_json::Value;

use super::{fields, Field};

/// What the renderers read out of a function's OpenAPI document.
pub struct Parts<'a> {
    pub name: &'a str,
    pub hearth: &'a Value,
    pub operation: &'a Value,
    pub input: &'a Value,
    pub output: &'a Value,
    pub example: &'a Value,
}

static NULL: Value = Value::Null;

impl<'a> Parts<'a> {
    /// The parts of `doc`, a document made by `openapi::function`; None if
    /// it is not one.
    pub fn of(doc: &'a Value) -> Option<Parts<'a>> {
        let hearth = doc.get("x-hearth")?;
        let name = hearth.get("function")?.as_str()?;
        let path = hearth
            .get("call")
            .and_then(Value::as_str)
            .map_or_else(|| format!("/fn/{name}"), str::to_owned);
        let operation = doc.get("paths")?.get(path)?.get("post")?;
        let body = &operation["requestBody"]["content"]["application/json"];
        Some(Parts {
            name,
            hearth,
            operation,
            input: body.get("schema").unwrap_or(&NULL),
            example: body.get("example").unwrap_or(&NULL),
            output: operation["responses"]["200"]["content"]["application/json"]
                .get("schema")
                .unwrap_or(&NULL),
        })
    }

    pub fn declares(schema: &Value) -> bool {
        schema.as_object().is_some_and(|o| !o.is_empty())
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn table(out: &mut String, fields: &[Field]) {
    out.push_str("| field | type | required | rules | description |\n|---|---|---|---|---|\n");
    for f in fields {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            f.pointer,
            f.ty,
            if f.required { "yes" } else { "no" },
            f.rules.join("; ").replace('|', "\\|"),
            f.description.replace('|', "\\|")
        );
    }
}

/// The document as Markdown. `addr` is the gateway's address, for the
/// example commands.
pub fn render(doc: &Value, addr: &str) -> Option<String> {
    let p = Parts::of(doc)?;
    let h = p.hearth;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} — {} {}, version {}\n",
        p.name,
        s(&h["type"]),
        s(&h["runtime"]),
        h["version"]
    );
    let description = s(&doc["info"]["description"]);
    if !description.is_empty() {
        let _ = writeln!(out, "{description}\n");
    }
    let _ = write!(out, "Application `{}`", s(&h["app"]));
    if !s(&h["category"]).is_empty() {
        let _ = write!(out, ", category `{}`", s(&h["category"]));
    }
    out.push_str(".\n\n## Call\n\n");
    let example = serde_json::to_string(p.example).unwrap_or_else(|_| "{}".into());
    let (auth, header) = if h["open"] == true {
        ("(its application takes calls without a token)", "")
    } else {
        (
            "(a token with scope invoke)",
            " -H \"Authorization: Bearer $HEARTH_TOKEN\"",
        )
    };
    let path = h["call"].as_str().unwrap_or_default();
    let what = if path.starts_with("/page/") {
        "the page request"
    } else {
        "the event"
    };
    let _ = writeln!(
        out,
        "`POST {path}` with {what} as JSON {auth}:\n\n```sh\nhearth invoke {name} -d '{example}'\ncurl -s http://{addr}{path}{header} -H 'Content-Type: application/json' -d '{example}'\n```\n",
        name = p.name
    );
    if let Some(fields) = h["fields"].as_array() {
        out.push_str(
            "## Fields

Each field is filled by its function; a field starts as soon as the fields it needs are done.

| field | function | needs | timeout | required | fallback |\n|---|---|---|---|---|---|\n",
        );
        for f in fields {
            let needs: Vec<&str> = f["needs"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let fallback = match &f["fallback"] {
                Value::Null => "none".to_owned(),
                Value::String(s) => s.clone(),
                other => format!("`{}`", other["static"]),
            };
            let _ = writeln!(
                out,
                "| `{}`{} | {} | {} | {} | {} | {} |",
                s(&f["path"]),
                if f["hidden"] == true { " (hidden)" } else { "" },
                s(&f["fn"]),
                if needs.is_empty() {
                    "-".to_owned()
                } else {
                    needs.join(", ")
                },
                f["timeout_ms"]
                    .as_u64()
                    .map_or("-".to_owned(), |t| format!("{t} ms")),
                if f["required"] == true { "yes" } else { "no" },
                fallback.replace('|', "\\|"),
            );
        }
        out.push('\n');
    }
    out.push_str("## Input\n\n");
    if Parts::declares(p.input) {
        let f = fields(p.input);
        if f.is_empty() {
            out.push_str("The event must match this schema:\n\n");
        } else {
            table(&mut out, &f);
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "A call whose event does not match gets 400 `invalid_input` (the function does not run).\n\n```json\n{}\n```\n",
            serde_json::to_string_pretty(p.input).unwrap_or_default()
        );
    } else {
        out.push_str("Any JSON value (no [input] schema is declared).\n\n");
    }
    out.push_str("## Output\n\n");
    if Parts::declares(p.output) {
        let f = fields(p.output);
        if !f.is_empty() {
            table(&mut out, &f);
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "Output validation: {}.\n\n```json\n{}\n```\n",
            s(&h["output_validation"]),
            serde_json::to_string_pretty(p.output).unwrap_or_default()
        );
    } else {
        out.push_str("Not declared (no [output] schema).\n\n");
    }
    out.push_str("## Errors\n\n| code | status | retryable | meaning |\n|---|---|---|---|\n");
    if let Some(errors) = p.operation["x-hearth-errors"].as_object() {
        for (code, e) in errors {
            let _ = writeln!(
                out,
                "| `{code}` | {} | {} | {} |",
                e["status"],
                if e["retryable"] == true { "yes" } else { "no" },
                s(&e["message"]).replace('|', "\\|")
            );
        }
    }
    if Parts::declares(p.input) {
        out.push_str(
            "| `invalid_input` | 400 | no | the event does not match the input schema |\n",
        );
    }
    out.push_str(
        "| (hearth's own) | 4xx/5xx | | timeout, queue_full, function_error, … (docs/API.md) |\n\n",
    );
    let l = &h["limits"];
    let _ = writeln!(
        out,
        "## Limits\n\nTimeout {} ms, memory {} MB, request up to {} KiB, response up to {} KiB{}.\n",
        l["timeout_ms"],
        l["memory_mb"],
        l["max_request_kb"],
        l["max_response_kb"],
        match l["rate_per_second"].as_u64() {
            Some(r) if r > 0 => format!(", at most {r} calls a second"),
            _ => String::new(),
        }
    );
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let calls = list(&h["calls"]);
    if !calls.is_empty() {
        let _ = writeln!(out, "Calls: {}.\n", calls.join(", "));
    }
    let called_by = list(&h["called_by"]);
    if !called_by.is_empty() {
        let _ = writeln!(out, "Called by: {}.\n", called_by.join(", "));
    }
    let _ = writeln!(
        out,
        "OpenAPI: GET /api/v1/functions/{name}/openapi.json · page with a call form: http://{addr}/docs/{name}",
        name = p.name
    );
    Some(out)
}
