//! A page's template (`type = "page"`, issue #15): for each output field,
//! the function that fills it, its input built from the page request and
//! other fields' outputs, its own timeout, whether it is required and its
//! fallback. This module parses and checks a template (references form a
//! DAG; a cycle or a reference to a field that does not exist is refused
//! with the path that is wrong) and builds a field's input once the values
//! it refers to are known. Running a page is the engine's; deploying one
//! is not wired yet (a hearth.toml with `type = "page"` is still refused).
//!
//! ```toml
//! [fields.programs]
//! fn = "programs"
//! input = { user = "$request.user_id", limit = 20 }
//! timeout_ms = 100
//! required = true
//!
//! [fields.rows.recommended]          # a nested output path: rows.recommended
//! fn = "recommend@prod"
//! input = { items = "$fields.programs.items" }
//! fallback = []                      # a static value; or "stale" or "omit"
//! ```
//!
//! A string starting with `$` is a reference (`$request.a.b`, `$fields.f.x`,
//! `$request` or `$fields.f` for the whole value); `$$` starts a literal
//! `$`. Other values are literals.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::manifest::validate_name;

/// A page call's answer: the fields' values at their paths, and an entry
/// for each field that failed or was late (GraphQL's partial results).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PageAnswer {
    /// The page: each field's value at its path (`rows.recommended`), a
    /// fallback's where its function failed; hidden fields left out.
    pub data: serde_json::Map<String, Value>,
    /// Empty when every field got its function's value.
    pub errors: Vec<PageFieldError>,
}

/// A field whose function failed or was late.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PageFieldError {
    /// The field's path.
    pub field: String,
    /// The member's error code (its own declared code, `timeout`, ...),
    /// `deadline_exceeded` (the page's time ran out before it could start)
    /// or `dependency_failed` (a field it needs has no value).
    pub code: String,
    pub function: String,
    /// The version that answered (null when no call was made).
    pub version: Option<u32>,
    pub message: String,
    /// What the field got instead: `static` (its fallback value), `stale`
    /// (the last good value for this input), `omit` or `none` (left out).
    #[schemars(extend("enum" = ["static", "stale", "omit", "none"]))]
    pub fallback: String,
}

impl PageAnswer {
    /// Its JSON Schema, whole and without references (the documents of a
    /// page's call embed it).
    pub fn schema() -> Value {
        let generator = schemars::generate::SchemaSettings::draft2020_12()
            .with(|s| s.inline_subschemas = true)
            .into_generator();
        serde_json::to_value(generator.into_root_schema_for::<PageAnswer>()).unwrap_or_default()
    }
}

/// Most fields one page may have.
pub const MAX_FIELDS: usize = 256;

/// Which version of a function a field calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Live,
    Version(u32),
    Alias(String),
}

/// A field's function: `name`, `name@3` or `name@alias`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnRef {
    pub name: String,
    pub selector: Selector,
}

/// What a field that fails or is late becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    /// No fallback: the field is left out and the answer's `errors` says
    /// why (a required field fails the page instead).
    None,
    /// This value.
    Static(Value),
    /// The last good value for the same input.
    Stale,
    /// Leave the field out (the answer's `errors` still says why).
    Omit,
}

/// One output field of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its dotted path in the answer (`rows.recommended`).
    pub path: String,
    pub function: FnRef,
    /// The input, with references still in it.
    pub input: Value,
    pub timeout_ms: Option<u64>,
    pub required: bool,
    pub fallback: Fallback,
    /// Computed for other fields and left out of the page's answer
    /// (`hidden = true`): a data source the page's fields are made from.
    pub hidden: bool,
    /// Indices (in [`Template::fields`]) of the fields its input refers to.
    pub needs: Vec<usize>,
}

/// A checked template: fields in an order where each comes after every
/// field it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub fields: Vec<Field>,
    /// Each field's index in `fields`, by path.
    paths: BTreeMap<String, usize>,
}

/// What is wrong with a template, naming the field and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hearth.toml: `{at}` {problem}")]
pub struct TemplateError {
    /// `fields.rows.recommended.input.items`, ...
    pub at: String,
    pub problem: String,
}

fn err(at: impl Into<String>, problem: impl Into<String>) -> TemplateError {
    TemplateError {
        at: at.into(),
        problem: problem.into(),
    }
}

impl std::fmt::Display for FnRef {
    /// As a template writes it: `name`, `name@3`, `name@alias`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Selector::Live => f.write_str(&self.name),
            Selector::Version(v) => write!(f, "{}@{v}", self.name),
            Selector::Alias(a) => write!(f, "{}@{a}", self.name),
        }
    }
}

impl FnRef {
    /// What a call of it resolves: the live version, a version or an alias.
    pub fn target(&self) -> crate::Target {
        let name = self.name.clone();
        match &self.selector {
            Selector::Live => crate::Target::Live(name),
            Selector::Version(v) => crate::Target::Version(name, *v),
            Selector::Alias(a) => crate::Target::Alias(name, a.clone()),
        }
    }

    pub fn parse(text: &str) -> Result<FnRef, String> {
        let (name, selector) = match text.split_once('@') {
            None => (text, Selector::Live),
            Some((name, sel)) if !sel.is_empty() && sel.bytes().all(|b| b.is_ascii_digit()) => {
                let v = sel
                    .parse()
                    .map_err(|_| format!("\"{text}\": version {sel} is too large"))?;
                (name, Selector::Version(v))
            }
            Some((name, sel)) => {
                validate_name(sel).map_err(|p| format!("\"{text}\": the alias {p}"))?;
                (name, Selector::Alias(sel.to_owned()))
            }
        };
        validate_name(name).map_err(|p| format!("\"{text}\": the function name {p}"))?;
        Ok(FnRef {
            name: name.to_owned(),
            selector,
        })
    }
}

/// A reference in an input: where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ref<'a> {
    /// `$request...`: a path into the page request.
    Request(Vec<&'a str>),
    /// `$fields...`: a path whose leading part names a field.
    Fields(Vec<&'a str>),
}

fn reference(s: &str) -> Option<Result<Ref<'_>, String>> {
    let body = s.strip_prefix('$')?;
    if body.starts_with('$') {
        return None; // `$$...` is a literal
    }
    let parts: Vec<&str> = body.split('.').collect();
    Some(match parts.split_first() {
        Some((&"request", rest)) => Ok(Ref::Request(rest.to_vec())),
        Some((&"fields", rest)) if !rest.is_empty() => Ok(Ref::Fields(rest.to_vec())),
        _ => Err(format!(
            "\"{s}\" is not a reference hearth knows: use $request.KEY or $fields.FIELD (write $$ for a literal $)"
        )),
    })
}

/// Every reference in `input`, with the key path where it stands.
fn references<'a>(input: &'a Value, at: &str, out: &mut Vec<(String, &'a str)>) {
    match input {
        Value::String(s) if s.starts_with('$') => out.push((at.to_owned(), s.as_str())),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                references(v, &format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                references(v, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Which field a `$fields.a.b.c` reference names: the longest leading part
/// that is a field's path.
fn field_of(paths: &BTreeMap<String, usize>, parts: &[&str]) -> Option<(usize, usize)> {
    (1..=parts.len())
        .rev()
        .find_map(|n| paths.get(&parts[..n].join(".")).map(|i| (*i, n)))
}

/// Parse the `[fields]` table of a page's hearth.toml.
pub fn parse(fields: &toml::Value) -> Result<Template, TemplateError> {
    let toml::Value::Table(table) = fields else {
        return Err(err(
            "fields",
            "must be a table: [fields.NAME] with fn = \"function\"",
        ));
    };
    let mut raw = Vec::new();
    collect(table, "", &mut raw)?;
    if raw.is_empty() {
        return Err(err(
            "fields",
            "declares no field: add [fields.NAME] with fn = \"function\"",
        ));
    }
    if raw.len() > MAX_FIELDS {
        return Err(err(
            "fields",
            format!(
                "declares {} fields; a page may have at most {MAX_FIELDS}",
                raw.len()
            ),
        ));
    }
    let paths: BTreeMap<String, usize> = raw
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.clone(), i))
        .collect();
    // A field's path may not lie inside another field's value.
    for f in &raw {
        let mut prefix = String::new();
        for part in f.path.split('.') {
            if !prefix.is_empty() {
                if paths.contains_key(&prefix) {
                    return Err(err(
                        format!("fields.{}", f.path),
                        format!("lies inside the field {prefix}, whose value its function makes; give it a path of its own"),
                    ));
                }
                prefix.push('.');
            }
            prefix.push_str(part);
        }
    }
    // Each field's needs, from its references.
    for (i, field) in raw.iter_mut().enumerate() {
        let mut refs = Vec::new();
        references(
            &field.input,
            &format!("fields.{}.input", field.path),
            &mut refs,
        );
        let mut needs = Vec::new();
        for (at, text) in refs {
            match reference(text) {
                None => {}
                Some(Err(problem)) => return Err(err(at, problem)),
                Some(Ok(Ref::Request(_))) => {}
                Some(Ok(Ref::Fields(parts))) => match field_of(&paths, &parts) {
                    Some((j, _)) if j == i => {
                        return Err(err(at, format!("\"{text}\" refers to its own field")))
                    }
                    Some((j, _)) => {
                        if !needs.contains(&j) {
                            needs.push(j);
                        }
                    }
                    None => {
                        return Err(err(
                            at,
                            format!(
                                "\"{text}\" refers to a field the page does not have; its fields are {}",
                                paths.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ))
                    }
                },
            }
        }
        field.needs = needs;
    }
    let fields = order(raw)?;
    let paths = fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.clone(), i))
        .collect();
    Ok(Template { fields, paths })
}

fn collect(table: &toml::Table, prefix: &str, out: &mut Vec<Field>) -> Result<(), TemplateError> {
    for (key, value) in table {
        validate_key(key).map_err(|p| err(format!("fields.{prefix}{key}"), p))?;
        let path = format!("{prefix}{key}");
        let at = format!("fields.{path}");
        let toml::Value::Table(t) = value else {
            return Err(err(
                at,
                "must be a table with fn = \"function\" (or a group of such tables)",
            ));
        };
        if !t.contains_key("fn") {
            collect(t, &format!("{path}."), out)?;
            continue;
        }
        for k in t.keys() {
            if !matches!(
                k.as_str(),
                "fn" | "input" | "timeout_ms" | "required" | "fallback" | "hidden"
            ) {
                return Err(err(
                    format!("{at}.{k}"),
                    "is not a key of a field; a field has fn, input, timeout_ms, required, fallback and hidden",
                ));
            }
        }
        let function = match t.get("fn") {
            Some(toml::Value::String(s)) => {
                FnRef::parse(s).map_err(|p| err(format!("{at}.fn"), p))?
            }
            _ => {
                return Err(err(
                    format!("{at}.fn"),
                    "must be a function name in quotes: name, name@VERSION or name@ALIAS",
                ))
            }
        };
        let input = t
            .get("input")
            .map(crate::metadata::toml_to_json)
            .unwrap_or(Value::Object(Default::default()));
        let timeout_ms = match t.get("timeout_ms") {
            None => None,
            Some(toml::Value::Integer(ms))
                if (1..=crate::manifest::MAX_TIMEOUT_MS as i64).contains(ms) =>
            {
                Some(*ms as u64)
            }
            Some(other) => {
                return Err(err(
                    format!("{at}.timeout_ms"),
                    format!(
                        "must be a whole number of milliseconds from 1 to {}, not {other}",
                        crate::manifest::MAX_TIMEOUT_MS
                    ),
                ))
            }
        };
        let required = match t.get("required") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(err(
                    format!("{at}.required"),
                    format!("must be true or false, not {}", other.type_str()),
                ))
            }
        };
        let hidden = match t.get("hidden") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(err(
                    format!("{at}.hidden"),
                    format!("must be true or false, not {}", other.type_str()),
                ))
            }
        };
        let fallback = match t.get("fallback") {
            None => Fallback::None,
            Some(toml::Value::String(s)) if s == "stale" => Fallback::Stale,
            Some(toml::Value::String(s)) if s == "omit" => Fallback::Omit,
            Some(v) => Fallback::Static(crate::metadata::toml_to_json(v)),
        };
        if required && fallback != Fallback::None {
            return Err(err(
                format!("{at}.fallback"),
                "is set on a required field: a required field that fails fails the page; drop one of them",
            ));
        }
        out.push(Field {
            path,
            function,
            input,
            timeout_ms,
            required,
            fallback,
            hidden,
            needs: Vec::new(),
        });
    }
    Ok(())
}

fn validate_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{key}\" is not a field name: use letters, digits, '_' and '-'"
        ))
    }
}

/// The fields in dependency order; a cycle is an error naming it.
fn order(fields: Vec<Field>) -> Result<Vec<Field>, TemplateError> {
    // 0: not seen, 1: on the current path, 2: done.
    fn visit(
        i: usize,
        fields: &[Field],
        state: &mut [u8],
        stack: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> Result<(), TemplateError> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let from = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<String> = stack[from..]
                    .iter()
                    .map(|&s| format!("fields.{}", fields[s].path))
                    .collect();
                cycle.push(format!("fields.{}", fields[i].path));
                return Err(err(
                    format!("fields.{}.input", fields[i].path),
                    format!("is part of a cycle of references: {}; a field may only use fields that do not use it", cycle.join(" → ")),
                ));
            }
            _ => {}
        }
        state[i] = 1;
        stack.push(i);
        for &j in &fields[i].needs {
            visit(j, fields, state, stack, out)?;
        }
        stack.pop();
        state[i] = 2;
        out.push(i);
        Ok(())
    }
    let mut state = vec![0u8; fields.len()];
    let mut sequence = Vec::with_capacity(fields.len());
    for i in 0..fields.len() {
        visit(i, &fields, &mut state, &mut Vec::new(), &mut sequence)?;
    }
    // Renumber `needs` for the new order.
    let mut place = vec![0usize; fields.len()];
    for (new, &old) in sequence.iter().enumerate() {
        place[old] = new;
    }
    let mut slots: Vec<Option<Field>> = fields.into_iter().map(Some).collect();
    Ok(sequence
        .iter()
        .filter_map(|&old| slots[old].take())
        .map(|mut f| {
            f.needs = f.needs.iter().map(|&j| place[j]).collect();
            f
        })
        .collect())
}

fn at_path<'a>(value: &'a Value, parts: &[&str]) -> Option<&'a Value> {
    parts.iter().try_fold(value, |v, part| match v {
        Value::Object(map) => map.get(*part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

impl Template {
    /// The input of field `index`, its references replaced: `request` is
    /// the page request, `outputs[j]` the value of field `j` (None: not
    /// there). A reference to something absent becomes null.
    pub fn input_of(&self, index: usize, request: &Value, outputs: &[Option<Value>]) -> Value {
        let paths = &self.paths;
        let resolve = |s: &str| -> Value {
            match reference(s) {
                None => Value::String(
                    s.strip_prefix('$')
                        .filter(|r| r.starts_with('$'))
                        .unwrap_or(s)
                        .to_owned(),
                ),
                Some(Err(_)) => Value::Null,
                Some(Ok(Ref::Request(parts))) => {
                    at_path(request, &parts).cloned().unwrap_or(Value::Null)
                }
                Some(Ok(Ref::Fields(parts))) => field_of(paths, &parts)
                    .and_then(|(j, n)| {
                        outputs
                            .get(j)
                            .and_then(Option::as_ref)
                            .and_then(|v| at_path(v, &parts[n..]))
                    })
                    .cloned()
                    .unwrap_or(Value::Null),
            }
        };
        fn walk(v: &Value, resolve: &dyn Fn(&str) -> Value) -> Value {
            match v {
                Value::String(s) if s.starts_with('$') => resolve(s),
                Value::Array(items) => {
                    Value::Array(items.iter().map(|i| walk(i, resolve)).collect())
                }
                Value::Object(map) => Value::Object(
                    map.iter()
                        .map(|(k, v)| (k.clone(), walk(v, resolve)))
                        .collect(),
                ),
                other => other.clone(),
            }
        }
        walk(&self.fields[index].input, &resolve)
    }

    /// The functions the page calls, each once.
    pub fn functions(&self) -> Vec<&FnRef> {
        let mut out: Vec<&FnRef> = Vec::new();
        for f in &self.fields {
            if !out.contains(&&f.function) {
                out.push(&f.function);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(text: &str) -> Result<Template, TemplateError> {
        let table: toml::Table = text.parse().expect("toml");
        parse(table.get("fields").expect("fields"))
    }

    const HOME: &str = r#"
[fields.recommended]
fn = "recommend@prod"
input = { items = "$fields.programs.items", interests = "$fields.interests", note = "$$5" }
fallback = []

[fields.programs]
fn = "programs"
input = { user = "$request.user_id", limit = 20 }
timeout_ms = 100
required = true

[fields.interests]
fn = "user-interests@3"
input = { user = "$request.user_id" }
fallback = "stale"

[fields.rows.title]
fn = "title-row"
input = { first = "$fields.programs.items.0" }
fallback = "omit"
"#;

    #[test]
    fn a_template_is_parsed_in_dependency_order() {
        let t = template(HOME).expect("valid");
        let order: Vec<&str> = t.fields.iter().map(|f| f.path.as_str()).collect();
        let pos = |p: &str| order.iter().position(|o| *o == p).expect(p);
        assert!(pos("programs") < pos("recommended") && pos("interests") < pos("recommended"));
        assert!(pos("programs") < pos("rows.title"));
        let rec = &t.fields[pos("recommended")];
        assert_eq!(rec.function.selector, Selector::Alias("prod".into()));
        assert_eq!(rec.fallback, Fallback::Static(json!([])));
        assert_eq!(rec.needs.len(), 2);
        assert!(rec.needs.iter().all(|&j| j < pos("recommended")));
        assert_eq!(
            t.fields[pos("interests")].function.selector,
            Selector::Version(3)
        );
        assert!(t.fields[pos("programs")].required);
        assert_eq!(t.functions().len(), 4);

        let request = json!({"user_id": "u1"});
        let mut outputs = vec![None; t.fields.len()];
        outputs[pos("programs")] = Some(json!({"items": [{"id": 1}, {"id": 2}]}));
        assert_eq!(
            t.input_of(pos("programs"), &request, &outputs),
            json!({"user": "u1", "limit": 20})
        );
        assert_eq!(
            t.input_of(pos("recommended"), &request, &outputs),
            json!({"items": [{"id": 1}, {"id": 2}], "interests": null, "note": "$5"})
        );
        assert_eq!(
            t.input_of(pos("rows.title"), &request, &outputs),
            json!({"first": {"id": 1}})
        );
    }

    #[test]
    fn bad_templates_name_the_path_that_is_wrong() {
        let cases = [
            (
                "[fields.a]\nfn = \"x\"\ninput = { v = \"$fields.b\" }\n[fields.b]\nfn = \"y\"\ninput = { v = \"$fields.a.z\" }",
                "cycle",
            ),
            ("[fields.a]\nfn = \"x\"\ninput = { v = \"$fields.nope\" }", "fields.a.input.v"),
            ("[fields.a]\nfn = \"x\"\ninput = { v = \"$fields.a\" }", "its own field"),
            ("[fields.a]\nfn = \"X!\"", "fields.a.fn"),
            ("[fields.a]\nfn = \"x\"\ntimeout = 3", "fields.a.timeout"),
            ("[fields.a]\nfn = \"x\"\nrequired = true\nfallback = 1", "required field"),
            ("[fields.a]\nfn = \"x\"\ninput = { v = \"$reqest.id\" }", "$request.KEY"),
            ("[fields.a]\nfn = \"x\"\n[fields.a.b]\nfn = \"y\"", "fields.a.b"),
            ("[fields]", "no field"),
        ];
        for (text, wanted) in cases {
            let e = template(text).expect_err(text).to_string();
            assert!(e.contains(wanted), "{text}: {e}");
        }
    }
}
