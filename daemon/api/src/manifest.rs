//! `hearth.toml`: what a function directory declares about itself.
//!
//! Keys (later work adds keys, never renames these):
//! `name`, `runtime`, `entry`, `app`, `category`, `description`, `type`,
//! `calls`, `output_validation`, a `[limits]` table with `timeout_ms`,
//! `memory_mb`, `max_workers`, …, the `[input]` and `[output]` JSON Schemas
//! (inline, or `schema = "FILE"` shipped with the code) and `[errors.CODE]`
//! tables (`status`, `message`, `retryable`): see `metadata.rs`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::metadata::{self, DeclaredError, Errors, FunctionType, OutputValidation};

pub const MANIFEST_FILE: &str = "hearth.toml";

pub const DEFAULT_APP: &str = "default";
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
pub const DEFAULT_MEMORY_MB: u64 = 256;
pub const MAX_MEMORY_MB: u64 = 64 * 1024;
pub const DEFAULT_MAX_WORKERS: u32 = 4;
pub const MAX_MAX_WORKERS: u32 = 1024;
pub const DEFAULT_MAX_QUEUE: u32 = 64;
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 5 * 60 * 1000;
pub const MAX_MAX_QUEUE: u32 = 100_000;
pub const DEFAULT_CPU_PERCENT: u32 = 100;
pub const DEFAULT_MAX_PROCESSES: u32 = 64;
pub const DEFAULT_MAX_OPEN_FILES: u32 = 256;
pub const DEFAULT_MAX_FILE_SIZE_MB: u64 = 64;
pub const DEFAULT_MAX_BODY_KB: u64 = 6 * 1024;
/// How deep a chain of nested calls may go from its root, by default
/// (`limits.max_depth`).
pub const DEFAULT_MAX_DEPTH: u32 = 8;
pub const MAX_MAX_DEPTH: u32 = 32;
/// Nested calls one root request may make, over its whole chain, by
/// default (`limits.max_nested_calls`).
pub const DEFAULT_MAX_NESTED_CALLS: u32 = 64;
pub const MAX_MAX_NESTED_CALLS: u32 = 10_000;
/// Functions one manifest may declare it calls (`calls`).
pub const MAX_CALLS_DECLARED: usize = 64;
/// Calls a Node worker serves at once by default.
pub const DEFAULT_NODE_CONCURRENCY: u32 = 4;
/// Most calls one Node worker may serve at once.
pub const MAX_CONCURRENCY: u32 = 256;

/// The runtimes hearth knows. Adding one means a shim under `shims/` and an
/// entry in `runtime.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Python,
    Node,
    Lua,
    /// A page (`type = "page"`): no interpreter, the engine runs its
    /// template. Not in [`RuntimeKind::ALL`]: no function has it.
    Page,
}

impl RuntimeKind {
    pub const ALL: [RuntimeKind; 3] = [RuntimeKind::Python, RuntimeKind::Node, RuntimeKind::Lua];

    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Python => "python",
            RuntimeKind::Node => "node",
            RuntimeKind::Lua => "lua",
            RuntimeKind::Page => "page",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Files that may hold the entry module `module` (a dotted path).
    pub fn entry_files(self, module: &str) -> Vec<String> {
        let base = module.replace('.', "/");
        match self {
            RuntimeKind::Python => vec![format!("{base}.py"), format!("{base}/__init__.py")],
            RuntimeKind::Node => vec![
                format!("{base}.js"),
                format!("{base}.mjs"),
                format!("{base}.cjs"),
            ],
            RuntimeKind::Lua => vec![format!("{base}.lua"), format!("{base}/init.lua")],
            RuntimeKind::Page => Vec::new(),
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Limits {
    pub timeout_ms: u64,
    pub memory_mb: u64,
    pub max_workers: u32,
    /// Calls that may wait for a busy function's workers; more get 429.
    #[serde(default = "default_max_queue")]
    pub max_queue: u32,
    /// Workers kept started while the version is live (at least 1).
    #[serde(default)]
    pub min_workers: u32,
    /// A worker idle this long is ended, down to `min_workers`.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Recycle a worker after this many calls (0: never), ±10% per worker.
    #[serde(default)]
    pub max_requests: u64,
    /// Recycle a worker after this long (0: never), ±10% per worker.
    #[serde(default)]
    pub max_age_ms: u64,
    /// Recycle a worker whose resident memory passed this (0: never).
    #[serde(default)]
    pub recycle_memory_mb: u64,
    /// Calls in flight per worker: Node runs them at once (it is
    /// asynchronous); Python and Lua run them one after another, the next
    /// already waiting in the pipe (pipelining). Default 1.
    #[serde(default = "one")]
    pub concurrency: u32,
    /// CPU time per worker, in percent of one core (0: no limit).
    #[serde(default = "default_cpu_percent")]
    pub cpu_percent: u32,
    /// Processes and threads per worker (pids cgroup, RLIMIT_NPROC).
    #[serde(default = "default_max_processes")]
    pub max_processes: u32,
    /// Open file descriptors per process (RLIMIT_NOFILE).
    #[serde(default = "default_max_open_files")]
    pub max_open_files: u32,
    /// Largest file a worker may write (RLIMIT_FSIZE), in MB.
    #[serde(default = "default_max_file_size_mb")]
    pub max_file_size_mb: u64,
    /// Largest call body, in KiB.
    #[serde(default = "default_max_body_kb")]
    pub max_request_kb: u64,
    /// Largest answer, in KiB.
    #[serde(default = "default_max_body_kb")]
    pub max_response_kb: u64,
    /// false: the worker gets a network namespace of its own (no network).
    #[serde(default = "yes")]
    pub network: bool,
    /// Calls per second the function accepts, by every path (0: no limit);
    /// past it, 429 `rate_limited` with Retry-After.
    #[serde(default)]
    pub rate_per_second: u32,
    /// Calls that may come at once above the rate (0: as many as
    /// `rate_per_second`).
    #[serde(default)]
    pub rate_burst: u32,
    /// Nested calls this function's calls may still make below them: a
    /// call at this depth from its root calls nothing more.
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,
    /// Nested calls one root request of this function may make, over its
    /// whole chain.
    #[serde(default = "default_max_nested_calls")]
    pub max_nested_calls: u32,
}

fn default_max_depth() -> u32 {
    DEFAULT_MAX_DEPTH
}
fn default_max_nested_calls() -> u32 {
    DEFAULT_MAX_NESTED_CALLS
}

fn one() -> u32 {
    1
}

/// Calls in flight per worker unless the manifest says: Node is
/// asynchronous and takes several; Python and Lua run one at a time.
pub fn default_concurrency(runtime: RuntimeKind) -> u32 {
    match runtime {
        RuntimeKind::Node => DEFAULT_NODE_CONCURRENCY,
        RuntimeKind::Python | RuntimeKind::Lua | RuntimeKind::Page => 1,
    }
}
fn yes() -> bool {
    true
}
fn default_cpu_percent() -> u32 {
    DEFAULT_CPU_PERCENT
}
fn default_max_processes() -> u32 {
    DEFAULT_MAX_PROCESSES
}
fn default_max_open_files() -> u32 {
    DEFAULT_MAX_OPEN_FILES
}
fn default_max_file_size_mb() -> u64 {
    DEFAULT_MAX_FILE_SIZE_MB
}
fn default_max_body_kb() -> u64 {
    DEFAULT_MAX_BODY_KB
}

fn default_max_queue() -> u32 {
    DEFAULT_MAX_QUEUE
}

fn default_idle_timeout() -> u64 {
    DEFAULT_IDLE_TIMEOUT_MS
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: DEFAULT_TIMEOUT_MS,
            memory_mb: DEFAULT_MEMORY_MB,
            max_workers: DEFAULT_MAX_WORKERS,
            max_queue: DEFAULT_MAX_QUEUE,
            min_workers: 0,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_requests: 0,
            max_age_ms: 0,
            recycle_memory_mb: 0,
            concurrency: 1,
            cpu_percent: DEFAULT_CPU_PERCENT,
            max_processes: DEFAULT_MAX_PROCESSES,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            max_file_size_mb: DEFAULT_MAX_FILE_SIZE_MB,
            max_request_kb: DEFAULT_MAX_BODY_KB,
            max_response_kb: DEFAULT_MAX_BODY_KB,
            network: true,
            rate_per_second: 0,
            rate_burst: 0,
            max_depth: DEFAULT_MAX_DEPTH,
            max_nested_calls: DEFAULT_MAX_NESTED_CALLS,
        }
    }
}

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    pub name: String,
    pub runtime: RuntimeKind,
    pub entry: String,
    pub app: String,
    pub category: String,
    pub description: String,
    pub limits: Limits,
    /// The `[limits]` keys its hearth.toml sets; the others take the
    /// daemon's defaults (`[limits]` of its configuration), else hearth's.
    /// None: stored before this was kept; every limit is its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_set: Option<Vec<String>>,
    /// The functions it calls (`calls = [...]`): publishing it warms them,
    /// and listings show who calls whom.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// `type`: function, datasource, field or page (metadata.rs).
    #[serde(default, rename = "type")]
    pub kind: FunctionType,
    /// `[input]`: the JSON Schema every call's event must match (the
    /// schema itself, its file already read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// `[output]`: the JSON Schema of what the function returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// Where each schema came from when it was a file (`schema = "..."`).
    #[serde(default, skip_serializing_if = "SchemaFiles::is_empty")]
    pub schema_files: SchemaFiles,
    /// `[errors.CODE]`: the function's own error codes.
    #[serde(default, skip_serializing_if = "Errors::is_empty")]
    pub errors: Errors,
    /// `output_validation`: what is done with an answer that does not match
    /// `[output]`.
    #[serde(default)]
    pub output_validation: OutputValidation,
    /// A page's `[fields]` (`type = "page"`), as JSON; [`Manifest::template`]
    /// is its checked template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
}

/// The files a version's schemas were read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SchemaFiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl SchemaFiles {
    pub fn is_empty(&self) -> bool {
        self.input.is_none() && self.output.is_none()
    }
}

impl Manifest {
    /// The limits this version runs with under the daemon's `defaults` (a
    /// `[limits]` table, checked by [`check_limit_defaults`]): its own for
    /// every key its hearth.toml sets, the daemon's for the others, hearth's
    /// built-in default where neither says.
    pub fn effective_limits(&self, defaults: &toml::Table) -> Result<Limits, ManifestError> {
        let Some(set) = &self.limits_set else {
            return Ok(self.limits.clone());
        };
        if defaults.is_empty() {
            return Ok(self.limits.clone());
        }
        let own = match toml::Value::try_from(&self.limits) {
            Ok(toml::Value::Table(t)) => t,
            _ => return Ok(self.limits.clone()),
        };
        let mut table = defaults.clone();
        for key in set {
            if let Some(v) = own.get(key) {
                table.insert(key.clone(), v.clone());
            }
        }
        // A daemon-wide min_workers cannot ask for more than a function's
        // own max_workers.
        if let (Some(min), Some(max)) = (
            table.get("min_workers").and_then(|v| v.as_integer()),
            table.get("max_workers").and_then(|v| v.as_integer()),
        ) {
            if min > max && !set.iter().any(|k| k == "min_workers") {
                table.insert("min_workers".into(), toml::Value::Integer(max));
            }
        }
        parse_limits(&table, self.runtime)
    }

    /// Whether this is a page (`type = "page"`).
    pub fn is_page(&self) -> bool {
        self.fields.is_some()
    }

    /// A page's checked template; None for a function.
    pub fn template(&self) -> Option<Result<crate::page::Template, crate::page::TemplateError>> {
        let fields = self.fields.as_ref()?;
        Some(
            serde_json::from_value::<toml::Value>(fields.clone())
                .map_err(|e| crate::page::TemplateError {
                    at: "fields".into(),
                    problem: format!("cannot be read back from the store: {e}"),
                })
                .and_then(|t| crate::page::parse(&t)),
        )
    }

    /// `main.handler` → (`main`, `handler`).
    pub fn entry_parts(&self) -> (&str, &str) {
        self.entry.rsplit_once('.').unwrap_or((&self.entry, ""))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("{MANIFEST_FILE} is not valid TOML: {0}")]
    Syntax(String),
    #[error("{MANIFEST_FILE}: missing required key `{key}` ({example})")]
    Missing {
        key: &'static str,
        example: &'static str,
    },
    #[error("{MANIFEST_FILE}: `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
    /// A key whose name is made from the manifest (`errors.NOT_FOUND.status`).
    #[error("{MANIFEST_FILE}: `{key}` {problem}")]
    InvalidAt { key: String, problem: String },
    #[error("{MANIFEST_FILE}: unknown key `{0}`; known keys are name, runtime, entry, app, category, description, type, calls, output_validation, [input], [output], [errors.CODE] and [limits] {LIMIT_KEYS}")]
    UnknownKey(String),
    #[error("{MANIFEST_FILE}: unknown key `{0}` for a page; a page has name, type = \"page\", app, category, description, timeout_ms, [input], [fields.NAME] and [limits] {PAGE_LIMIT_KEYS}")]
    UnknownPageKey(String),
    /// What is wrong with a page's `[fields]`.
    #[error(transparent)]
    Template(#[from] crate::page::TemplateError),
}

/// Parse and validate the text of a `hearth.toml` on its own: a schema
/// in a file (`schema = "..."`) cannot be read, and is an error.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    parse_with_files(text, &|_| None)
}

/// Parse and validate the text of a `hearth.toml`, reading the schema
/// files it names with `file` (a path in the function's directory → its
/// bytes, None when there is no such file).
pub fn parse_with_files(
    text: &str,
    file: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<Manifest, ManifestError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ManifestError::Syntax(e.message().to_owned()))?;

    if optional_str(&table, "type")?.as_deref() == Some("page") {
        return parse_page(&table, file);
    }
    for key in table.keys() {
        if !matches!(
            key.as_str(),
            "name"
                | "runtime"
                | "entry"
                | "app"
                | "category"
                | "description"
                | "calls"
                | "limits"
                | "type"
                | "input"
                | "output"
                | "errors"
                | "output_validation"
        ) {
            return Err(ManifestError::UnknownKey(key.clone()));
        }
    }
    let kind = match optional_str(&table, "type")? {
        None => FunctionType::Function,
        Some(t) => match FunctionType::parse(&t) {
            Some(kind) => kind,
            None => {
                return Err(ManifestError::Invalid {
                    key: "type",
                    problem: format!(
                        "is \"{t}\"; use one of function (the default), datasource, field, page"
                    ),
                })
            }
        },
    };

    let name = required_str(&table, "name", "for example name = \"hello\"")?;
    validate_name(&name).map_err(|problem| ManifestError::Invalid {
        key: "name",
        problem,
    })?;

    let runtime_text = required_str(
        &table,
        "runtime",
        "one of runtime = \"python\", \"node\" or \"lua\"",
    )?;
    let runtime = RuntimeKind::parse(&runtime_text).ok_or_else(|| ManifestError::Invalid {
        key: "runtime",
        problem: format!("is \"{runtime_text}\", which is not a runtime hearth has; use one of python, node, lua"),
    })?;

    let entry = required_str(&table, "entry", "for example entry = \"main.handler\"")?;
    validate_entry(&entry).map_err(|problem| ManifestError::Invalid {
        key: "entry",
        problem,
    })?;

    let app = optional_str(&table, "app")?.unwrap_or_else(|| DEFAULT_APP.to_owned());
    validate_name(&app).map_err(|problem| ManifestError::Invalid {
        key: "app",
        problem,
    })?;
    let category = optional_str(&table, "category")?.unwrap_or_default();
    let calls = parse_calls(&table, &name)?;
    let description = optional_str(&table, "description")?.unwrap_or_default();

    let limits_set: Vec<String> = match table.get("limits") {
        Some(toml::Value::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let limits = match table.get("limits") {
        None => Limits {
            concurrency: default_concurrency(runtime),
            ..Limits::default()
        },
        Some(toml::Value::Table(t)) => parse_limits(t, runtime)?,
        Some(_) => {
            return Err(ManifestError::Invalid {
                key: "limits",
                problem: "must be a table: write [limits] on its own line, then its keys".into(),
            })
        }
    };

    let mut schema_files = SchemaFiles::default();
    let input = parse_schema(&table, "input", file, &mut schema_files.input)?;
    let output = parse_schema(&table, "output", file, &mut schema_files.output)?;
    if kind == FunctionType::Datasource && output.is_none() {
        return Err(ManifestError::Missing {
            key: "output",
            example: "a datasource declares the JSON Schema of what it returns: [output] with type = \"object\" and its properties, or [output] schema = \"schema/output.json\"",
        });
    }
    let errors = parse_errors(&table)?;
    let output_validation = match optional_str(&table, "output_validation")? {
        None if kind == FunctionType::Datasource => OutputValidation::Log,
        None => OutputValidation::Off,
        Some(v) => OutputValidation::parse(&v).ok_or_else(|| ManifestError::Invalid {
            key: "output_validation",
            problem: format!("is \"{v}\"; use off, log (check, log what does not match) or enforce (an answer that does not match is a 500)"),
        })?,
    };
    if output_validation != OutputValidation::Off && output.is_none() {
        return Err(ManifestError::Invalid {
            key: "output_validation",
            problem: format!("is \"{}\" but there is no [output] schema to check answers against; declare [output] or remove output_validation", output_validation.as_str()),
        });
    }

    Ok(Manifest {
        name,
        runtime,
        entry,
        app,
        category,
        description,
        limits,
        limits_set: Some(limits_set),
        calls,
        kind,
        input,
        output,
        schema_files,
        errors,
        output_validation,
        fields: None,
    })
}

/// The `[limits]` keys a page has (it has no workers of its own).
const PAGE_LIMIT_KEYS: &str =
    "timeout_ms, max_request_kb, max_response_kb, rate_per_second, rate_burst";

/// A page's hearth.toml: `type = "page"`, no runtime or entry, its
/// `[fields]` template, and the page's own deadline (`timeout_ms`, or
/// `[limits] timeout_ms`).
fn parse_page(
    table: &toml::Table,
    file: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<Manifest, ManifestError> {
    for key in table.keys() {
        match key.as_str() {
            "name" | "type" | "app" | "category" | "description" | "timeout_ms" | "fields"
            | "input" | "limits" => {}
            "runtime" | "entry" | "calls" => {
                return Err(ManifestError::InvalidAt {
                    key: key.clone(),
                    problem: "is set, but a page has no code: the engine runs its [fields], each filled by a function; remove it (or make this a function without type = \"page\")".into(),
                })
            }
            _ => return Err(ManifestError::UnknownPageKey(key.clone())),
        }
    }
    let name = required_str(table, "name", "for example name = \"home\"")?;
    validate_name(&name).map_err(|problem| ManifestError::Invalid {
        key: "name",
        problem,
    })?;
    let app = optional_str(table, "app")?.unwrap_or_else(|| DEFAULT_APP.to_owned());
    validate_name(&app).map_err(|problem| ManifestError::Invalid {
        key: "app",
        problem,
    })?;
    let category = optional_str(table, "category")?.unwrap_or_default();
    let description = optional_str(table, "description")?.unwrap_or_default();
    let mut limits_table = match table.get("limits") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t.clone(),
        Some(_) => {
            return Err(ManifestError::Invalid {
                key: "limits",
                problem: "must be a table: write [limits] on its own line, then its keys".into(),
            })
        }
    };
    for key in limits_table.keys() {
        if !PAGE_LIMIT_KEYS.split(", ").any(|k| k == key) {
            return Err(ManifestError::UnknownPageKey(format!("limits.{key}")));
        }
    }
    if let Some(ms) = table.get("timeout_ms") {
        if limits_table.contains_key("timeout_ms") {
            return Err(ManifestError::Invalid {
                key: "timeout_ms",
                problem: "is set twice, at the top and in [limits]; keep one".into(),
            });
        }
        limits_table.insert("timeout_ms".into(), ms.clone());
    }
    let mut limits = parse_limits(&limits_table, RuntimeKind::Page)?;
    // A page runs no worker of its own.
    limits.min_workers = 0;
    let limits_set: Vec<String> = limits_table.keys().cloned().collect();
    let Some(fields) = table.get("fields") else {
        return Err(ManifestError::Missing {
            key: "fields",
            example: "a page declares its fields: [fields.title] with fn = \"title-row\" and input = { user = \"$request.user_id\" }",
        });
    };
    let template = crate::page::parse(fields)?;
    let mut calls: Vec<String> = Vec::new();
    for f in template.functions() {
        if f.name == name {
            return Err(ManifestError::Template(crate::page::TemplateError {
                at: format!(
                    "fields.{}.fn",
                    template
                        .fields
                        .iter()
                        .find(|x| x.function.name == name)
                        .map_or("", |x| x.path.as_str())
                ),
                problem: format!("names the page itself ({name}); a field is filled by a function"),
            }));
        }
        if !calls.contains(&f.name) {
            calls.push(f.name.clone());
        }
    }
    let mut schema_files = SchemaFiles::default();
    let input = parse_schema(table, "input", file, &mut schema_files.input)?;
    Ok(Manifest {
        name,
        runtime: RuntimeKind::Page,
        entry: String::new(),
        app,
        category,
        description,
        limits,
        limits_set: Some(limits_set),
        calls,
        kind: FunctionType::Page,
        input,
        output: None,
        schema_files,
        errors: Errors::new(),
        output_validation: OutputValidation::Off,
        fields: Some(metadata::toml_to_json(fields)),
    })
}

/// `[input]` / `[output]`: a JSON Schema written in TOML, or
/// `schema = "FILE"` naming a JSON file shipped with the code.
fn parse_schema(
    table: &toml::Table,
    key: &'static str,
    file: &dyn Fn(&str) -> Option<Vec<u8>>,
    from: &mut Option<String>,
) -> Result<Option<serde_json::Value>, ManifestError> {
    let invalid = |problem: String| ManifestError::Invalid { key, problem };
    let Some(value) = table.get(key) else {
        return Ok(None);
    };
    let toml::Value::Table(t) = value else {
        return Err(invalid(format!(
            "must be a table: write [{key}] on its own line, then JSON Schema keys (type = \"object\", required = [...], properties.id = {{ type = \"integer\" }}), or schema = \"schema/{key}.json\""
        )));
    };
    let schema = match t.get("schema") {
        Some(toml::Value::String(path)) => {
            if t.len() > 1 {
                return Err(invalid(format!(
                    "has schema = \"{path}\" and other keys; either name a file with schema = \"...\" alone, or write the schema's keys inline"
                )));
            }
            let bytes = file(path).ok_or_else(|| {
                invalid(format!(
                    "names the schema file \"{path}\", which is not in the function's directory; add it (a path relative to hearth.toml) or write the schema inline"
                ))
            })?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| invalid(format!("names \"{path}\", which is not UTF-8 text")))?;
            let schema: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                invalid(format!(
                    "names \"{path}\", which is not valid JSON: {e} (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })?;
            *from = Some(path.clone());
            schema
        }
        Some(other) => {
            return Err(invalid(format!(
                "has schema = {} ; it must be the path of a JSON file in quotes, like schema = \"schema/{key}.json\"",
                other.type_str()
            )))
        }
        None => metadata::toml_to_json(value),
    };
    let what = match &from {
        Some(path) => format!("(from {path}) "),
        None => String::new(),
    };
    metadata::check_schema(&schema).map_err(|p| invalid(format!("{what}{p}")))?;
    Ok(Some(schema))
}

/// `[errors.CODE]` tables: `status` (400-599), `message`, `retryable`.
fn parse_errors(table: &toml::Table) -> Result<Errors, ManifestError> {
    let mut errors = Errors::new();
    let Some(value) = table.get("errors") else {
        return Ok(errors);
    };
    let toml::Value::Table(t) = value else {
        return Err(ManifestError::Invalid {
            key: "errors",
            problem: "must be tables of error codes: [errors.NOT_FOUND] with status = 404 and message = \"...\"".into(),
        });
    };
    for (code, decl) in t {
        let at = |sub: &str| format!("errors.{code}{sub}");
        metadata::check_code(code).map_err(|problem| ManifestError::InvalidAt {
            key: at(""),
            problem: format!("is not a usable error code: {problem}"),
        })?;
        let toml::Value::Table(d) = decl else {
            return Err(ManifestError::InvalidAt {
                key: at(""),
                problem: format!(
                    "must be a table: [errors.{code}] with status = 404 and message = \"...\""
                ),
            });
        };
        for k in d.keys() {
            if !matches!(k.as_str(), "status" | "message" | "retryable") {
                return Err(ManifestError::UnknownKey(at(&format!(".{k}"))));
            }
        }
        let status =
            match d.get("status") {
                Some(toml::Value::Integer(s)) if (400..=599).contains(s) => *s as u16,
                Some(toml::Value::Integer(s)) => {
                    return Err(ManifestError::InvalidAt {
                        key: at(".status"),
                        problem: format!("is {s}; an error's HTTP status is between 400 and 599"),
                    })
                }
                Some(other) => {
                    return Err(ManifestError::InvalidAt {
                        key: at(".status"),
                        problem: format!(
                            "must be a whole number (an HTTP status, 400-599), not {}",
                            other.type_str()
                        ),
                    })
                }
                None => return Err(ManifestError::InvalidAt {
                    key: at(".status"),
                    problem:
                        "is missing: give the HTTP status a caller gets, for example status = 404"
                            .into(),
                }),
            };
        let message = match d.get("message") {
            Some(toml::Value::String(m)) if !m.trim().is_empty() => m.clone(),
            Some(toml::Value::String(_)) | None => return Err(ManifestError::InvalidAt {
                key: at(".message"),
                problem:
                    "is missing: say what the code means, for example message = \"no such program\""
                        .into(),
            }),
            Some(other) => {
                return Err(ManifestError::InvalidAt {
                    key: at(".message"),
                    problem: format!("must be a string, not {}", other.type_str()),
                })
            }
        };
        let retryable = match d.get("retryable") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(ManifestError::InvalidAt {
                    key: at(".retryable"),
                    problem: format!("must be true or false, not {}", other.type_str()),
                })
            }
        };
        errors.insert(
            code.clone(),
            DeclaredError {
                status,
                message,
                retryable,
            },
        );
    }
    Ok(errors)
}

/// `calls = ["programs", "user-interests"]`: function names, each once,
/// not the function itself.
fn parse_calls(table: &toml::Table, name: &str) -> Result<Vec<String>, ManifestError> {
    let invalid = |problem: String| ManifestError::Invalid {
        key: "calls",
        problem,
    };
    let list = match table.get("calls") {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(list)) => list,
        Some(other) => {
            return Err(invalid(format!(
                "must be a list of function names, like calls = [\"programs\"], not {}",
                other.type_str()
            )))
        }
    };
    if list.len() > MAX_CALLS_DECLARED {
        return Err(invalid(format!(
            "names {} functions; at most {MAX_CALLS_DECLARED} may be declared",
            list.len()
        )));
    }
    let mut calls: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        let toml::Value::String(callee) = item else {
            return Err(invalid(format!(
                "holds {}, not a function name in quotes",
                item.type_str()
            )));
        };
        validate_name(callee).map_err(|p| invalid(format!("names a function {p}")))?;
        if callee == name {
            return Err(invalid(format!(
                "names {name} itself; a function cannot call itself (hearth refuses it with `recursion`)"
            )));
        }
        if calls.contains(callee) {
            return Err(invalid(format!("names {callee} twice")));
        }
        calls.push(callee.clone());
    }
    Ok(calls)
}

/// Check a daemon's `[limits]` defaults (its configuration): the same keys
/// and ranges as a hearth.toml's `[limits]`.
pub fn check_limit_defaults(defaults: &toml::Table) -> Result<(), ManifestError> {
    parse_limits(defaults, RuntimeKind::Python).map(|_| ())
}

/// Every `[limits]` key, as listed in error messages.
const LIMIT_KEYS: &str = "timeout_ms, memory_mb, max_workers, max_queue, min_workers, idle_timeout_ms, max_requests, max_age_ms, recycle_memory_mb, concurrency, cpu_percent, max_processes, max_open_files, max_file_size_mb, max_request_kb, max_response_kb, network, rate_per_second, rate_burst, max_depth, max_nested_calls";

fn parse_limits(t: &toml::Table, runtime: RuntimeKind) -> Result<Limits, ManifestError> {
    for key in t.keys() {
        if !LIMIT_KEYS.split(", ").any(|k| k == key) {
            return Err(ManifestError::UnknownKey(format!("limits.{key}")));
        }
    }
    let d = Limits::default();
    // `[limits] key`, an integer in min..=max, or the default.
    macro_rules! limit {
        ($key:literal, $min:expr, $max:expr, $default:expr) => {
            int_in(t, $key, concat!("limits.", $key), $min, $max)?.unwrap_or($default)
        };
    }
    let timeout_ms = limit!("timeout_ms", 1, MAX_TIMEOUT_MS, d.timeout_ms);
    let memory_mb = limit!("memory_mb", 16, MAX_MEMORY_MB, d.memory_mb);
    let max_workers = limit!(
        "max_workers",
        1,
        u64::from(MAX_MAX_WORKERS),
        u64::from(d.max_workers)
    ) as u32;
    let max_queue = limit!(
        "max_queue",
        0,
        u64::from(MAX_MAX_QUEUE),
        u64::from(d.max_queue)
    ) as u32;
    let min_workers = limit!(
        "min_workers",
        0,
        u64::from(max_workers),
        u64::from(d.min_workers)
    ) as u32;
    let idle_timeout_ms = limit!(
        "idle_timeout_ms",
        1000,
        7 * 24 * 3600 * 1000,
        d.idle_timeout_ms
    );
    let max_requests = limit!("max_requests", 0, u64::MAX >> 1, 0);
    let max_age_ms = limit!("max_age_ms", 0, 365 * 24 * 3600 * 1000, 0);
    let recycle_memory_mb = limit!("recycle_memory_mb", 0, MAX_MEMORY_MB, 0);
    let concurrency = limit!(
        "concurrency",
        1,
        u64::from(MAX_CONCURRENCY),
        u64::from(default_concurrency(runtime))
    ) as u32;
    let cpu_percent = limit!("cpu_percent", 0, 100 * 1024, u64::from(d.cpu_percent)) as u32;
    let max_processes = limit!("max_processes", 4, 65_536, u64::from(d.max_processes)) as u32;
    let max_open_files = limit!("max_open_files", 16, 1 << 20, u64::from(d.max_open_files)) as u32;
    let max_file_size_mb = limit!("max_file_size_mb", 1, 1 << 20, d.max_file_size_mb);
    let frame_kb = (hearth_protocol::MAX_FRAME / 1024) as u64 - 64;
    let max_request_kb = limit!("max_request_kb", 1, frame_kb, d.max_request_kb);
    let max_response_kb = limit!("max_response_kb", 1, frame_kb, d.max_response_kb);
    let rate_per_second = limit!("rate_per_second", 0, 1_000_000, 0) as u32;
    let rate_burst = limit!("rate_burst", 0, 1_000_000, 0) as u32;
    let max_depth = limit!(
        "max_depth",
        0,
        u64::from(MAX_MAX_DEPTH),
        u64::from(DEFAULT_MAX_DEPTH)
    ) as u32;
    let max_nested_calls = limit!(
        "max_nested_calls",
        0,
        u64::from(MAX_MAX_NESTED_CALLS),
        u64::from(DEFAULT_MAX_NESTED_CALLS)
    ) as u32;
    let network = match t.get("network") {
        None => true,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => {
            return Err(ManifestError::Invalid {
                key: "limits.network",
                problem: format!("must be true or false, not {}", other.type_str()),
            })
        }
    };
    Ok(Limits {
        rate_per_second,
        rate_burst,
        max_depth,
        max_nested_calls,
        recycle_memory_mb,
        concurrency,
        cpu_percent,
        max_processes,
        max_open_files,
        max_file_size_mb,
        max_request_kb,
        max_response_kb,
        network,
        timeout_ms,
        memory_mb,
        max_workers,
        max_queue,
        min_workers,
        idle_timeout_ms,
        max_requests,
        max_age_ms,
    })
}

fn int_in(
    t: &toml::Table,
    key: &str,
    label: &'static str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ManifestError> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(i))
            if (*i as i128) >= min as i128 && (*i as i128) <= max as i128 =>
        {
            Ok(Some(*i as u64))
        }
        Some(toml::Value::Integer(i)) => Err(ManifestError::Invalid {
            key: label,
            problem: format!("is {i}; it must be between {min} and {max}"),
        }),
        Some(other) => Err(ManifestError::Invalid {
            key: label,
            problem: format!("must be a whole number, not {}", other.type_str()),
        }),
    }
}

fn required_str(
    t: &toml::Table,
    key: &'static str,
    example: &'static str,
) -> Result<String, ManifestError> {
    match optional_str(t, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(ManifestError::Missing { key, example }),
    }
}

fn optional_str(t: &toml::Table, key: &'static str) -> Result<Option<String>, ManifestError> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ManifestError::Invalid {
            key,
            problem: format!("must be a string, not {}", other.type_str()),
        }),
    }
}

/// Function and application identifiers: 1–63 characters of `[a-z0-9-]`,
/// starting and ending with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("\"{name}\" must be 1 to 63 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "\"{name}\" may contain only lowercase letters, digits and '-' (for example \"page-title\")"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(format!(
            "\"{name}\" must start and end with a letter or digit"
        ));
    }
    Ok(())
}

fn validate_entry(entry: &str) -> Result<(), String> {
    let Some((module, func)) = entry.rsplit_once('.') else {
        return Err(format!(
            "is \"{entry}\"; it must be module.function, for example \"main.handler\" (file main.py, function handler)"
        ));
    };
    let ident = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    if !ident(func) || !module.split('.').all(ident) {
        return Err(format!(
            "is \"{entry}\"; module and function names may use letters, digits, '_' and '-', for example \"main.handler\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod defaults_tests {
    use super::*;

    #[test]
    fn a_function_s_own_limits_win_over_the_daemon_s_defaults() {
        let m = parse("name='a'\nruntime='python'\nentry='main.h'\n[limits]\nmemory_mb = 512\n")
            .expect("manifest");
        let defaults: toml::Table =
            "timeout_ms = 300\nmemory_mb = 64\nmax_workers = 1\nmin_workers = 3\n"
                .parse()
                .expect("table");
        check_limit_defaults(&defaults).expect_err("min_workers over max_workers");
        let defaults: toml::Table = "timeout_ms = 300\nmemory_mb = 64\n".parse().expect("table");
        check_limit_defaults(&defaults).expect("valid");
        let l = m.effective_limits(&defaults).expect("limits");
        assert_eq!((l.timeout_ms, l.memory_mb), (300, 512));
        assert_eq!(l.max_workers, DEFAULT_MAX_WORKERS);
        assert_eq!(
            m.effective_limits(&toml::Table::new()).expect("limits"),
            m.limits
        );
        // A manifest stored before limits_set was kept keeps all of its own.
        let old = Manifest {
            limits_set: None,
            ..m.clone()
        };
        assert_eq!(old.effective_limits(&defaults).expect("limits"), m.limits);
        let bad: toml::Table = "timeout_ms = 0\n".parse().expect("table");
        assert!(check_limit_defaults(&bad).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "hello"
runtime = "python"
entry = "main.handler"
app = "demo"
category = "examples"
description = "Says hello"

[limits]
timeout_ms = 2000
memory_mb = 128
max_workers = 2
"#;

    #[test]
    fn parses_a_full_manifest() {
        let m = parse(GOOD).expect("valid");
        assert_eq!(m.name, "hello");
        assert_eq!(m.runtime, RuntimeKind::Python);
        assert_eq!(m.entry_parts(), ("main", "handler"));
        assert_eq!(m.limits.max_workers, 2);
    }

    #[test]
    fn defaults_apply() {
        let m = parse("name='a'\nruntime='lua'\nentry='m.h'").expect("valid");
        assert_eq!(m.app, DEFAULT_APP);
        assert_eq!(m.limits, Limits::default());
    }

    #[test]
    fn missing_entry_names_the_key() {
        let err = parse("name='a'\nruntime='python'").expect_err("invalid");
        assert_eq!(
            err,
            ManifestError::Missing {
                key: "entry",
                example: "for example entry = \"main.handler\""
            }
        );
        assert!(err.to_string().contains("`entry`"));
    }

    #[test]
    fn unknown_runtime_lists_the_known_ones() {
        let err = parse("name='a'\nruntime='ruby'\nentry='m.h'").expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("ruby") && text.contains("python, node, lua"),
            "{text}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        assert!(parse("name='Hello'\nruntime='python'\nentry='m.h'")
            .expect_err("x")
            .to_string()
            .contains("`name`"));
        assert!(parse("name='a'\nruntime='python'\nentry='handler'")
            .expect_err("x")
            .to_string()
            .contains("module.function"));
        let e = parse("name='a'\nruntime='python'\nentry='m.h'\n[limits]\ntimeout_ms=0")
            .expect_err("x");
        assert!(e.to_string().contains("limits.timeout_ms"), "{e}");
        let e = parse("name='a'\nruntime='python'\nentry='m.h'\ntimout=3").expect_err("x");
        assert_eq!(e, ManifestError::UnknownKey("timout".into()));
        assert!(matches!(
            parse("name = ").expect_err("x"),
            ManifestError::Syntax(_)
        ));
    }
}

#[cfg(test)]
mod metadata_tests {
    use super::*;

    const BASE: &str = "name='p'\nruntime='python'\nentry='main.h'\n";

    #[test]
    fn schemas_errors_and_type_parse() {
        let m = parse(&format!(
            r#"{BASE}type = "datasource"
[input]
type = "object"
required = ["id"]
properties.id = {{ type = "integer", minimum = 1 }}
examples = [{{ id = 42 }}]
[output]
type = "object"
[errors.NOT_FOUND]
status = 404
message = "no such program"
"#
        ))
        .expect("valid");
        assert_eq!(m.kind, FunctionType::Datasource);
        let input = m.input.as_ref().expect("input");
        assert_eq!(input["properties"]["id"]["minimum"], 1);
        assert_eq!(input["examples"][0]["id"], 42);
        assert_eq!(m.errors["NOT_FOUND"].status, 404);
        assert!(!m.errors["NOT_FOUND"].retryable);
        // A datasource checks its output by default.
        assert_eq!(m.output_validation, OutputValidation::Log);
        // Stored and read back as JSON, it is the same.
        let json = serde_json::to_string(&m).expect("json");
        assert!(json.contains("\"type\":\"datasource\""), "{json}");
        let back: Manifest = serde_json::from_str(&json).expect("back");
        assert_eq!(back, m);
        // A manifest stored before these keys reads with their defaults.
        let old: Manifest = serde_json::from_str(
            &serde_json::to_string(&parse(BASE).expect("plain")).expect("json"),
        )
        .expect("old");
        assert_eq!(old.kind, FunctionType::Function);
        assert!(old.input.is_none() && old.errors.is_empty());
    }

    #[test]
    fn schema_files_are_read_from_the_directory() {
        let text = format!("{BASE}[input]\nschema = \"schema/input.json\"\n");
        let files = |path: &str| {
            (path == "schema/input.json")
                .then(|| br#"{"type": "object", "required": ["id"]}"#.to_vec())
        };
        let m = parse_with_files(&text, &files).expect("valid");
        assert_eq!(m.input.as_ref().expect("input")["required"][0], "id");
        assert_eq!(m.schema_files.input.as_deref(), Some("schema/input.json"));
        let e = parse(&text).expect_err("no file");
        assert!(e.to_string().contains("schema/input.json"), "{e}");
        let bad = |_: &str| Some(b"{\"type\": ".to_vec());
        let e = parse_with_files(&text, &bad).expect_err("bad json");
        assert!(
            e.to_string().contains("not valid JSON") && e.to_string().contains("line 1"),
            "{e}"
        );
    }

    #[test]
    fn bad_metadata_names_the_key() {
        let cases = [
            ("type = \"widget\"", "`type`"),
            ("type = \"datasource\"", "`output`"),
            ("[input]\ntype = \"obj\"", "/type"),
            (
                "[input]\nschema = \"a.json\"\ntype = \"object\"",
                "either name a file",
            ),
            ("input = 3", "must be a table"),
            (
                "[errors.NOT_FOUND]\nstatus = 200\nmessage = \"x\"",
                "errors.NOT_FOUND.status",
            ),
            (
                "[errors.NOT_FOUND]\nstatus = 404",
                "errors.NOT_FOUND.message",
            ),
            (
                "[errors.NOT_FOUND]\nstatus = 404\nmessage = \"x\"\nretry = true",
                "errors.NOT_FOUND.retry",
            ),
            (
                "[errors.\"not found\"]\nstatus = 404\nmessage = \"x\"",
                "errors.not found",
            ),
            (
                "[errors.timeout]\nstatus = 504\nmessage = \"x\"",
                "hearth's own",
            ),
            ("output_validation = \"enforce\"", "no [output]"),
            ("[output]\ntype = \"object\"\n", ""),
        ];
        for (extra, wanted) in cases {
            let text = format!("{BASE}{extra}\n");
            match parse(&text) {
                Ok(_) if wanted.is_empty() => {}
                Ok(m) => panic!("{extra}: accepted {m:?}"),
                Err(e) => assert!(
                    !wanted.is_empty() && e.to_string().contains(wanted),
                    "{extra}: {e}"
                ),
            }
        }
    }
}
