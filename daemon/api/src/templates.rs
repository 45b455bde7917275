//! Function templates: what `hearth new DIR --template NAME` writes.
//!
//! A template is a function directory whose files hold placeholders:
//! `{{name}}` (the new function's name), `{{app}}` (its application) and
//! the template's own variables (`{{datasource}}`, ...). Built-in templates
//! ship with hearth (`templates/` in the repository, embedded in the
//! binary), each with a `template.toml`:
//!
//! ```toml
//! description = "A field that maps a data source's items to a page row"
//! [variables.datasource]
//! default = "programs"
//! description = "the data source it calls"
//! ```
//!
//! Saved templates are made from a deployed function's version
//! ([`templatize`]) and kept in the store. Only the placeholders a template
//! declares are replaced: any other `{{...}}` (a Mustache page, say) is
//! left as it is. Routes: `GET/POST /api/v1/templates`,
//! `GET/DELETE /api/v1/templates/{name}`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bundle::BundleFile;
use crate::manifest::{validate_name, MANIFEST_FILE};

/// A built-in template's own description file (not part of what is written).
pub const TEMPLATE_FILE: &str = "template.toml";

/// The placeholders every template has.
pub const RESERVED: [&str; 2] = ["name", "app"];

/// Longest value a variable may be given.
pub const MAX_VALUE_LEN: usize = 200;

/// One variable of a template, with the value it takes unless given one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateVariable {
    pub name: String,
    pub default: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// One template, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateInfo {
    pub name: String,
    pub description: String,
    /// python, node or lua.
    pub runtime: String,
    /// The function type it makes: function, datasource or field.
    #[serde(rename = "type")]
    pub kind: String,
    /// Shipped with hearth (cannot be deleted), or saved from a function.
    pub builtin: bool,
    /// A saved template's origin: `FUNCTION@VERSION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The application of the function it was saved from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// When it was saved (ms since the epoch), and by which token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// `GET /api/v1/templates`: built-in ones first, then saved ones, by name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateList {
    pub templates: Vec<TemplateInfo>,
}

/// `GET /api/v1/templates/{name}`: a template with its variables (besides
/// `name` and `app`) and its files, placeholders unreplaced.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateDetail {
    #[serde(flatten)]
    pub info: TemplateInfo,
    pub variables: Vec<TemplateVariable>,
    pub files: Vec<BundleFile>,
}

/// `POST /api/v1/templates`: save a function's version as a template.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SaveTemplateRequest {
    pub name: String,
    /// `FUNCTION` (its live version) or `FUNCTION@VERSION`.
    pub from: String,
    /// Default: the function's own description.
    #[serde(default)]
    pub description: String,
}

/// `DELETE /api/v1/templates/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplateDeleted {
    pub name: String,
    pub deleted: bool,
}

/// What a built-in template's `template.toml` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateSpec {
    pub description: String,
    pub variables: Vec<TemplateVariable>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("{TEMPLATE_FILE}: {0}")]
    Spec(String),
    #[error("template \"{template}\" has no variable \"{key}\"; its variables are {known} (besides name and app, given with --name and --app)")]
    UnknownVariable {
        template: String,
        key: String,
        known: String,
    },
    #[error("--var {key}={value:?}: {problem}")]
    BadValue {
        key: String,
        value: String,
        problem: String,
    },
    #[error("\"{0}\" is not KEY=VALUE; write --var datasource=programs")]
    NotKeyValue(String),
    #[error("template name {0}")]
    BadName(String),
}

/// A template's name: the rules of a function's name (`[a-z0-9-]`, 1 to 63).
pub fn validate_template_name(name: &str) -> Result<(), TemplateError> {
    validate_name(name).map_err(TemplateError::BadName)
}

/// Parse a built-in template's `template.toml`.
pub fn parse_spec(text: &str) -> Result<TemplateSpec, TemplateError> {
    let spec = |m: String| TemplateError::Spec(m);
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| spec(format!("not valid TOML: {}", e.message())))?;
    let mut out = TemplateSpec::default();
    for (key, value) in &table {
        match (key.as_str(), value) {
            ("description", toml::Value::String(d)) => out.description = d.clone(),
            ("variables", toml::Value::Table(vars)) => {
                for (name, decl) in vars {
                    out.variables.push(parse_variable(name, decl)?);
                }
            }
            ("description", _) => return Err(spec("`description` must be a string".into())),
            ("variables", _) => {
                return Err(spec(
                    "`variables` must be tables: [variables.datasource] with default = \"...\""
                        .into(),
                ))
            }
            (other, _) => {
                return Err(spec(format!(
                    "unknown key `{other}`; known keys are description and [variables.NAME]"
                )))
            }
        }
    }
    if out.description.trim().is_empty() {
        return Err(spec(
            "`description` is missing: say in a line what the template makes".into(),
        ));
    }
    Ok(out)
}

fn parse_variable(name: &str, decl: &toml::Value) -> Result<TemplateVariable, TemplateError> {
    let spec = |m: String| TemplateError::Spec(m);
    let ok_name = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok_name || RESERVED.contains(&name) {
        return Err(spec(format!(
            "variable \"{name}\" must be [a-z][a-z0-9_]* and not name or app (those every template has)"
        )));
    }
    let toml::Value::Table(d) = decl else {
        return Err(spec(format!(
            "[variables.{name}] must be a table with default = \"...\""
        )));
    };
    let mut var = TemplateVariable {
        name: name.to_owned(),
        default: String::new(),
        description: String::new(),
    };
    let mut has_default = false;
    for (k, v) in d {
        match (k.as_str(), v) {
            ("default", toml::Value::String(s)) => {
                check_value(name, s)?;
                var.default = s.clone();
                has_default = true;
            }
            ("description", toml::Value::String(s)) => var.description = s.clone(),
            (k, _) => {
                return Err(spec(format!(
                    "variables.{name}.{k}: known keys are default and description, both strings"
                )))
            }
        }
    }
    if !has_default {
        return Err(spec(format!(
            "variables.{name} has no default: give default = \"...\""
        )));
    }
    Ok(var)
}

/// A value given to a placeholder must be safe to write inside a quoted
/// string of any runtime and of TOML.
pub fn check_value(key: &str, value: &str) -> Result<(), TemplateError> {
    let bad = |problem: &str| TemplateError::BadValue {
        key: key.to_owned(),
        value: value.to_owned(),
        problem: problem.to_owned(),
    };
    if value.is_empty() {
        return Err(bad("is empty; give a value"));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(bad(&format!("is over {MAX_VALUE_LEN} bytes")));
    }
    if value
        .chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\'' | '`' | '\\'))
    {
        return Err(bad(
            "may not hold quotes, backslashes or control characters (it is written into code and hearth.toml)",
        ));
    }
    if value.contains("{{") || value.contains("}}") {
        return Err(bad("may not hold {{ or }}"));
    }
    Ok(())
}

/// The values of a template's placeholders: its variables' defaults, over
/// them `given` (`KEY=VALUE` items, each key a variable of the template),
/// and `name` and `app`.
pub fn values(
    template: &str,
    variables: &[TemplateVariable],
    given: &[String],
    name: &str,
    app: &str,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let mut out: BTreeMap<String, String> = variables
        .iter()
        .map(|v| (v.name.clone(), v.default.clone()))
        .collect();
    for item in given {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| TemplateError::NotKeyValue(item.clone()))?;
        let key = key.trim();
        if !out.contains_key(key) {
            let known: Vec<&str> = variables.iter().map(|v| v.name.as_str()).collect();
            return Err(TemplateError::UnknownVariable {
                template: template.to_owned(),
                key: key.to_owned(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        check_value(key, value)?;
        out.insert(key.to_owned(), value.to_owned());
    }
    check_value("name", name)?;
    check_value("app", app)?;
    out.insert("name".into(), name.to_owned());
    out.insert("app".into(), app.to_owned());
    Ok(out)
}

/// Replace every `{{KEY}}` of `values` in `text`; other `{{...}}` stay.
pub fn fill(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let hit = after
            .find("}}")
            .and_then(|end| values.get(&after[..end]).map(|v| (v, at + 2 + end + 2)));
        match hit {
            Some((value, next)) => {
                out.push_str(value);
                rest = &rest[next..];
            }
            // Not a placeholder: keep one brace and look again after it
            // (`{{{name}}}` is a brace around one).
            None => {
                out.push('{');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A template's files with its placeholders replaced, in paths and in
/// every UTF-8 file (other files are copied as they are).
pub fn render(files: &[BundleFile], values: &BTreeMap<String, String>) -> Vec<BundleFile> {
    files
        .iter()
        .map(|f| BundleFile {
            path: fill(&f.path, values),
            data: match std::str::from_utf8(&f.data) {
                Ok(text) => fill(text, values).into_bytes(),
                Err(_) => f.data.clone(),
            },
            executable: f.executable,
        })
        .collect()
}

/// A function version's files made into a template's: in its hearth.toml
/// the `name` and `app` values become `{{name}}` and `{{app}}` (an `app`
/// line is added if it had none); in its code (`.py`, `.js`, `.mjs`,
/// `.cjs`, `.lua`) every string literal that names the function (as a
/// whole word) names `{{name}}` instead. Data files are left as they are.
pub fn templatize(files: &[BundleFile], name: &str) -> Vec<BundleFile> {
    if name.is_empty() {
        return files.to_vec();
    }
    files
        .iter()
        .map(|f| {
            let Ok(text) = std::str::from_utf8(&f.data) else {
                return f.clone();
            };
            let data = if f.path == MANIFEST_FILE {
                templatize_manifest(text)
            } else if is_code(&f.path) {
                text.split_inclusive('\n')
                    .map(|line| templatize_line(line, name))
                    .collect()
            } else {
                return f.clone();
            };
            BundleFile {
                path: f.path.clone(),
                data: data.into_bytes(),
                executable: f.executable,
            }
        })
        .collect()
}

fn is_code(path: &str) -> bool {
    [".py", ".js", ".mjs", ".cjs", ".lua"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// `name = "..."` and `app = "..."` at the top of a hearth.toml (before
/// any table) take the placeholders.
fn templatize_manifest(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut top = true;
    let mut saw_app = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') && top {
            if !saw_app {
                out.push_str("app = \"{{app}}\"\n");
                saw_app = true;
            }
            top = false;
        }
        let key = trimmed
            .split_once('=')
            .map(|(k, _)| k.trim())
            .filter(|_| top);
        match key {
            Some(k @ ("name" | "app")) => {
                let comment = trailing_comment(line);
                out.push_str(&format!("{k} = \"{{{{{k}}}}}\"{comment}\n"));
                saw_app |= k == "app";
            }
            _ => out.push_str(line),
        }
    }
    if top && !saw_app {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("app = \"{{app}}\"\n");
    }
    out
}

/// A `# comment` after a TOML key's quoted value, with its leading space.
fn trailing_comment(line: &str) -> String {
    let value = line.split_once('=').map(|(_, v)| v).unwrap_or("");
    let mut quote: Option<char> = None;
    for (i, c) in value.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return format!("  {}", value[i..].trim_end()),
            _ => {}
        }
    }
    String::new()
}

/// Replace `name` in the string literals of one line of code: `"` `'` and
/// `` ` `` strings (with backslash escapes), until a comment starts
/// (`#`, `//`, `--`) outside of one.
fn templatize_line(line: &str, name: &str) -> String {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut out = String::with_capacity(line.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        let Some(c) = rest.chars().next() else { break };
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            } else if let Some(after) = rest.strip_prefix(name) {
                let before_ok = !line[..i].chars().next_back().is_some_and(word);
                let after_ok = !after.chars().next().is_some_and(word);
                if before_ok && after_ok {
                    out.push_str("{{name}}");
                    i += name.len();
                    continue;
                }
            }
        } else if c == '"' || c == '\'' || c == '`' {
            quote = Some(c);
        } else if c == '#' || rest.starts_with("//") || rest.starts_with("--") {
            out.push_str(rest);
            return out;
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// `FUNCTION` or `FUNCTION@VERSION`, as `from` of a save.
pub fn parse_from(from: &str) -> Result<(String, Option<u32>), String> {
    let (name, version) = match from.split_once('@') {
        None => (from, None),
        Some((name, v)) => match v.parse::<u32>() {
            Ok(n) if n > 0 => (name, Some(n)),
            _ => {
                return Err(format!(
                    "\"{from}\" is not FUNCTION[@VERSION]: \"{v}\" is not a version number (an alias cannot be saved; give its version, from `hearth versions {name}`)"
                ))
            }
        },
    };
    validate_name(name).map_err(|p| format!("\"{from}\" does not name a function: {p}"))?;
    Ok((name.to_owned(), version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> BundleFile {
        BundleFile {
            path: path.into(),
            data: text.as_bytes().to_vec(),
            executable: false,
        }
    }

    #[test]
    fn only_declared_placeholders_are_filled() {
        let values: BTreeMap<String, String> = [("name".to_owned(), "shows".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(
            fill("a {{name}} {{title}} {{name", &values),
            "a shows {{title}} {{name"
        );
        assert_eq!(fill("{{{name}}}", &values), "{shows}");
    }

    #[test]
    fn values_take_defaults_and_refuse_unknown_or_unsafe_ones() {
        let vars = vec![TemplateVariable {
            name: "datasource".into(),
            default: "programs".into(),
            description: String::new(),
        }];
        let v = values("t", &vars, &[], "row", "site").expect("values");
        assert_eq!(v["datasource"], "programs");
        assert_eq!((v["name"].as_str(), v["app"].as_str()), ("row", "site"));
        let v = values("t", &vars, &["datasource=shows".into()], "row", "site").expect("given");
        assert_eq!(v["datasource"], "shows");
        let unknown = values("t", &vars, &["colour=red".into()], "row", "site");
        assert!(matches!(
            unknown,
            Err(TemplateError::UnknownVariable { .. })
        ));
        let unsafe_ = values("t", &vars, &["datasource=a\"b".into()], "row", "site");
        assert!(matches!(unsafe_, Err(TemplateError::BadValue { .. })));
        assert!(matches!(
            values("t", &vars, &["datasource".into()], "row", "site"),
            Err(TemplateError::NotKeyValue(_))
        ));
    }

    #[test]
    fn specs_are_checked() {
        let spec = parse_spec(
            "description = \"d\"\n[variables.datasource]\ndefault = \"programs\"\ndescription = \"what it calls\"\n",
        )
        .expect("spec");
        assert_eq!(spec.variables[0].default, "programs");
        assert!(parse_spec("").is_err());
        assert!(parse_spec("description = \"d\"\ncolour = 1\n").is_err());
        assert!(parse_spec("description = \"d\"\n[variables.name]\ndefault = \"x\"\n").is_err());
        assert!(parse_spec("description = \"d\"\n[variables.x]\ndescription = \"x\"\n").is_err());
    }

    #[test]
    fn a_function_becomes_a_template_of_itself() {
        let files = [
            file(
                "hearth.toml",
                "name = \"shows\"   # its URL\nruntime = \"python\"\nentry = \"main.handler\"\ndescription = \"shows things\"\n[limits]\nname = 1\n",
            ),
            file(
                "main.py",
                "# shows: a comment about shows\nshows = 1\ndef handler(e):\n    return {\"by\": \"shows\", \"x\": 'shows-and-more', \"y\": \"the shows list\", \"z\": \"\\\"shows\\\"\"}\n",
            ),
            file("data.json", "{\"shows\": \"shows\"}"),
        ];
        let out = templatize(&files, "shows");
        let text = |i: usize| String::from_utf8(out[i].data.clone()).expect("utf8");
        assert_eq!(
            text(0),
            "name = \"{{name}}\"  # its URL\nruntime = \"python\"\nentry = \"main.handler\"\ndescription = \"shows things\"\napp = \"{{app}}\"\n[limits]\nname = 1\n"
        );
        assert_eq!(
            text(1),
            "# shows: a comment about shows\nshows = 1\ndef handler(e):\n    return {\"by\": \"{{name}}\", \"x\": 'shows-and-more', \"y\": \"the {{name}} list\", \"z\": \"\\\"{{name}}\\\"\"}\n"
        );
        assert_eq!(out[2], files[2]);
        let with_app = templatize(&[file("hearth.toml", "name='a'\napp='b'")], "a");
        assert_eq!(
            String::from_utf8(with_app[0].data.clone()).expect("utf8"),
            "name = \"{{name}}\"\napp = \"{{app}}\"\n"
        );
    }

    #[test]
    fn from_names_a_function_and_maybe_a_version() {
        assert_eq!(parse_from("hello"), Ok(("hello".into(), None)));
        assert_eq!(parse_from("hello@3"), Ok(("hello".into(), Some(3))));
        assert!(parse_from("hello@prod").is_err());
        assert!(parse_from("hello@0").is_err());
        assert!(parse_from("Hello").is_err());
    }
}
