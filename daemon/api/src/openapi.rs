//! The OpenAPI 3.1 document of hearth's HTTP API, served at
//! `GET /api/v1/openapi.json`. Nothing in it is written by hand: its paths
//! and operations come from the route table ([`ROUTES`]), its schemas from
//! the API types (`#[derive(JsonSchema)]`, JSON Schema 2020-12, what
//! OpenAPI 3.1 uses).
//!
//! A route names its request and response types by name; [`payload`] maps
//! each name to its schema. A new route whose type is new needs the derive
//! on the type (and on everything it holds) and its name in [`payload`]: a
//! unit test below fails naming any route whose type has none.
//!
//! Answers are described as they are serialized, requests as they are
//! deserialized (a field with a default may be left out of a request, but
//! an answer always has it).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::auth::{Access, Scope};
use crate::error::ErrorCode;
use crate::routes::{Route, RouteId, ROUTES};

/// Where the document puts the schemas of the types.
const SCHEMAS: &str = "/components/schemas";
/// The name of the security scheme (a hearth token as a bearer token).
const SECURITY: &str = "hearthToken";
/// The same token in the cookie the function pages set.
const COOKIE: &str = "hearthCookie";

/// A schema of a type, from a generator (which keeps the schemas it
/// refers to in its definitions).
type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

/// What a route's `request` or `response` name stands for.
#[derive(Debug, Clone, Copy)]
pub enum Payload {
    /// The JSON of a type of this crate.
    Json(SchemaOf),
    /// Any JSON document (a function's event and its result).
    AnyJson,
    /// A JSON object the name describes (the OpenAPI document itself).
    Object,
    /// Prometheus' text format 0.0.4.
    PrometheusText,
    /// Server-sent events whose `data` is the JSON of a type.
    Events(SchemaOf),
    /// A page for people (its errors are pages too).
    Html,
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// The schema of every name a route uses as its `request` or `response`.
/// A new type: derive `JsonSchema` on it and add its name to the list.
pub fn payload(name: &str) -> Option<Payload> {
    macro_rules! json_types {
        ($($t:ident),* $(,)?) => {
            $(if name == stringify!($t) {
                return Some(Payload::Json(schema::<crate::$t>));
            })*
        };
    }
    json_types!(
        AliasList,
        AliasOutcome,
        AliasRequest,
        AppBudgetOutcome,
        AppBudgetRequest,
        AppList,
        AppStats,
        BatchPublishOutcome,
        BatchPublishRequest,
        CallList,
        CallRecord,
        DeployOutcome,
        DeployRequest,
        ErrorBody,
        FunctionEdit,
        FunctionInfo,
        FunctionList,
        FunctionStateOutcome,
        FunctionStats,
        GcReport,
        GcRequest,
        HealthInfo,
        PageAnswer,
        PublishRequest,
        ReleaseList,
        ReleaseOutcome,
        RollbackRequest,
        SaveTemplateRequest,
        TemplateDeleted,
        TemplateDetail,
        TemplateInfo,
        TemplateList,
        TokenCreated,
        TokenList,
        TokenRequest,
        TokenRevoked,
        VersionDiff,
        VersionList,
        WorkersInfo,
    );
    match name {
        "the event (any JSON)" | "the function's result" | "the page request (any JSON)" => {
            Some(Payload::AnyJson)
        }
        "the OpenAPI 3.1 document" | "an OpenAPI 3.1 document" => Some(Payload::Object),
        "text/html" => Some(Payload::Html),
        "Prometheus text (format 0.0.4)" => Some(Payload::PrometheusText),
        "server-sent events of CallRecord" => Some(Payload::Events(schema::<crate::CallRecord>)),
        _ => None,
    }
}

/// The query parameters a route reads: the fields of a type of this crate
/// (each field one parameter), or, for a GET call, the event itself.
enum Query {
    Fields(SchemaOf),
    Event,
}

fn inline<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    T::json_schema(g)
}

fn query_of(route: &Route) -> Option<Query> {
    match route.id {
        RouteId::ListCalls | RouteId::FollowCalls => {
            Some(Query::Fields(inline::<crate::CallQuery>))
        }
        RouteId::AppStats | RouteId::FunctionStats => {
            Some(Query::Fields(inline::<crate::StatsQuery>))
        }
        RouteId::FunctionOpenApi | RouteId::FunctionDocs => {
            Some(Query::Fields(inline::<crate::VersionQuery>))
        }
        RouteId::VersionDiff => Some(Query::Fields(inline::<crate::DiffQuery>)),
        RouteId::ListFunctions => Some(Query::Fields(inline::<crate::FunctionFilter>)),
        RouteId::DeleteFunction => Some(Query::Fields(inline::<crate::DeleteQuery>)),
        RouteId::Call if route.method == crate::routes::Method::Get => Some(Query::Event),
        _ => None,
    }
}

/// Request headers a route reads, beyond `Authorization`.
fn headers_of(id: RouteId) -> Vec<Value> {
    match id {
        RouteId::Call | RouteId::CallPage => vec![json!({
            "name": "x-hearth-log",
            "in": "header",
            "required": false,
            "description": "send it (any value) to get what the call printed: in the answer's x-hearth-log header (base64), or in error.log",
            "schema": {"type": "string"},
        })],
        RouteId::FollowCalls => vec![json!({
            "name": "Last-Event-ID",
            "in": "header",
            "required": false,
            "description": "resume after this record (the `id` of the last event received); it wins over after_seq",
            "schema": {"type": "integer", "minimum": 0},
        })],
        RouteId::Deploy => vec![json!({
            "name": "Accept",
            "in": "header",
            "required": false,
            "description": "application/x-ndjson: answer with a stream of progress lines ending in the result",
            "schema": {"type": "string"},
        })],
        _ => Vec::new(),
    }
}

/// The 2xx statuses a route answers with, and what each means.
fn successes_of(id: RouteId) -> &'static [(u16, &'static str)] {
    match id {
        RouteId::Deploy => &[
            (201, "a new version was stored"),
            (
                200,
                "the same code was already stored as this version (or, with Accept: application/x-ndjson, the progress stream)",
            ),
        ],
        RouteId::CreateToken => &[(201, "the token was created; the answer holds it, shown this once")],
        RouteId::SaveTemplate => &[(201, "the template was saved")],
        _ => &[(200, "")],
    }
}

/// The error codes a route may answer with (any route may answer others,
/// described by the `default` answer).
fn errors_of(route: &Route) -> Vec<ErrorCode> {
    use ErrorCode::*;
    let mut codes = vec![Internal];
    match route.access {
        Access::Scope(_) => codes.extend([Unauthorized, Forbidden, RateLimited]),
        // A foreign Host or Origin.
        Access::Public => codes.push(Forbidden),
        Access::Call => codes.extend([Unauthorized, Forbidden]),
    }
    if route.request.is_some() {
        codes.extend([BadJson, BadRequest, BodyTooLarge, BodyTimeout]);
        if route.access != Access::Call {
            codes.push(UnsupportedMediaType);
        }
    }
    if route.path.starts_with("/api/v1/functions/{name}") {
        codes.push(FunctionNotFound);
    }
    codes.extend_from_slice(match route.id {
        RouteId::Call => &[
            FunctionNotFound,
            VersionNotFound,
            AliasNotFound,
            NotPublished,
            FunctionError,
            LoadFailed,
            WorkerDied,
            ProtocolError,
            OutOfMemory,
            ResponseTooLarge,
            RuntimeUnavailable,
            WorkerStartFailed,
            Overloaded,
            QueueFull,
            AppOverBudget,
            CrashLoop,
            RateLimited,
            TooManyConnections,
            Timeout,
            InvalidInput,
            InvalidOutput,
            UndeclaredError,
            FunctionOffline,
        ],
        RouteId::CallPage => &[
            FunctionNotFound,
            VersionNotFound,
            AliasNotFound,
            NotPublished,
            NotAPage,
            FieldFailed,
            FieldTimeout,
            ResponseTooLarge,
            Overloaded,
            RateLimited,
            TooManyConnections,
            InvalidInput,
            FunctionOffline,
            Recursion,
        ],
        RouteId::Deploy => &[
            BadManifest,
            BadBundle,
            LoadFailed,
            DependencyInstallFailed,
            RuntimeUnavailable,
            WorkerStartFailed,
            Overloaded,
            BreakingChange,
        ],
        RouteId::Publish => &[
            VersionNotFound,
            BreakingChange,
            LoadFailed,
            DependencyInstallFailed,
            RuntimeUnavailable,
            WorkerStartFailed,
        ],
        RouteId::Rollback => &[NotPublished, NothingToRollBack, LoadFailed],
        RouteId::BatchPublish => &[
            FunctionNotFound,
            VersionNotFound,
            BatchFailed,
            BreakingChange,
        ],
        RouteId::SetAlias => &[BadAlias, VersionNotFound, LoadFailed],
        RouteId::RevokeToken => &[TokenNotFound],
        RouteId::DeleteFunction => &[FunctionInUse, BadRequest],
        RouteId::ListFunctions | RouteId::EditFunction => &[BadRequest],
        RouteId::GetCall => &[CallNotFound],
        RouteId::GetTemplate => &[TemplateNotFound],
        RouteId::SaveTemplate => &[
            BadRequest,
            FunctionNotFound,
            VersionNotFound,
            NotPublished,
            TemplateExists,
        ],
        RouteId::DeleteTemplate => &[TemplateNotFound, TemplateBuiltin],
        RouteId::AppStats => &[AppNotFound, BadRequest],
        RouteId::AppOpenApi => &[AppNotFound],
        RouteId::FunctionOpenApi | RouteId::VersionDiff => &[VersionNotFound, BadRequest],
        RouteId::FunctionDocs => &[FunctionNotFound, VersionNotFound, BadRequest],
        RouteId::FunctionStats | RouteId::ListCalls | RouteId::FollowCalls | RouteId::SetApp => {
            &[BadRequest]
        }
        // Metrics turned off.
        RouteId::Metrics => &[RouteNotFound],
        _ => &[],
    });
    let mut seen = Vec::new();
    codes.retain(|c| {
        let new = !seen.contains(c);
        seen.push(*c);
        new
    });
    codes
}

/// The statuses an error code answers with on a route: two codes have a
/// second one (see [`ErrorCode::status`]).
fn statuses_of(code: ErrorCode, route: &Route) -> Vec<u16> {
    match code {
        ErrorCode::LoadFailed if route.id == RouteId::Call => vec![500],
        ErrorCode::DependencyInstallFailed => vec![422, 503],
        _ => vec![code.status()],
    }
}

/// The document could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error(
        "route {method} {path} names its {role} `{name}`, which has no schema: derive schemars::JsonSchema on that type (and on what it holds) and add its name to `payload` in daemon/api/src/openapi.rs"
    )]
    NoSchema {
        method: &'static str,
        path: &'static str,
        role: &'static str,
        name: &'static str,
    },
    #[error("the OpenAPI document cannot be encoded as JSON: {0}; report this as a bug")]
    Encode(#[from] serde_json::Error),
}

/// The route's id in lower camel case (`ListFunctions` → `listFunctions`),
/// with its method when the id serves several (`setAppPut`, `setAppPost`).
fn operation_id(route: &Route) -> String {
    let id = format!("{:?}", route.id);
    let mut out: String = id
        .chars()
        .enumerate()
        .map(|(i, c)| if i == 0 { c.to_ascii_lowercase() } else { c })
        .collect();
    if ROUTES.iter().filter(|r| r.id == route.id).count() > 1 {
        let method = route.method.as_str();
        out.push_str(&method[..1]);
        out.push_str(&method[1..].to_ascii_lowercase());
    }
    out
}

/// The resource a route is about: the last fixed segment of its path
/// (`/api/v1/functions/{name}/aliases/{alias}` → aliases), releases for
/// publish and rollback, calls for the stream, invoke for `/fn/`.
fn tag_of(path: &str) -> &str {
    let last = path
        .split('/')
        .rfind(|s| !s.is_empty() && !s.starts_with('{'))
        .unwrap_or("api");
    match last {
        "publish" | "rollback" => "releases",
        "stream" => "calls",
        "fn" => "invoke",
        "openapi.json" => "docs",
        other => other,
    }
}

/// What the route asks of its caller, for people.
fn access_text(access: Access) -> String {
    match access {
        Access::Public => "Public: needs no token.".to_owned(),
        Access::Scope(needed) => {
            let holders: Vec<String> = Scope::ALL
                .iter()
                .filter(|s| **s != needed && s.grants(needed))
                .map(|s| format!("`{s}`"))
                .collect();
            let also = if holders.is_empty() {
                String::new()
            } else {
                format!(" (or one that holds it: {})", holders.join(", "))
            };
            format!("Needs a token with scope `{needed}`{also}: `Authorization: Bearer TOKEN`.")
        }
        Access::Call => "Open, unless the function's application is key-protected (`hearth app NAME --invoke key`): then a token with scope `invoke` for the application (or `admin`) as `Authorization: Bearer TOKEN`.".to_owned(),
    }
}

fn scope_of(access: Access) -> Option<Scope> {
    match access {
        Access::Public => None,
        Access::Scope(s) => Some(s),
        Access::Call => Some(Scope::Invoke),
    }
}

/// A parameter's schema without `null`: a query parameter is absent, never
/// null.
fn without_null(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.get("default") == Some(&Value::Null) {
        obj.remove("default");
    }
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            obj.insert("type".into(), only);
        }
    }
    let any_of = obj.get("anyOf").and_then(Value::as_array).cloned();
    if let Some(mut options) = any_of {
        options.retain(|o| o != &json!({"type": "null"}));
        if options.len() == 1 {
            obj.remove("anyOf");
            if let Some(Value::Object(only)) = options.pop() {
                for (k, v) in only {
                    obj.entry(k).or_insert(v);
                }
            }
        } else {
            obj.insert("anyOf".into(), Value::Array(options));
        }
    }
}

/// The parameters in a route's path.
fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let description = match name {
                "target" => "the function: NAME, NAME@VERSION or NAME@ALIAS",
                "alias" => "the alias (`prod`, `canary`, ...)",
                "request_id" => "the call's request id (its answer's x-request-id)",
                "name" if path.starts_with("/api/v1/apps/") => "the application's name",
                "name" if path.starts_with("/api/v1/tokens/") => "the token's name",
                "name" => "the function's name",
                _ => "",
            };
            let mut param = json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": {"type": "string"},
            });
            if let (false, Some(p)) = (description.is_empty(), param.as_object_mut()) {
                p.insert("description".into(), description.into());
            }
            param
        })
        .collect()
}

fn query_params(query: Query, requests: &mut SchemaGenerator) -> Vec<Value> {
    let fields = match query {
        Query::Event => {
            return vec![json!({
                "name": "event",
                "in": "query",
                "required": false,
                "description": "the event: each query parameter becomes a string field of it",
                "style": "form",
                "explode": true,
                "schema": {"type": "object", "additionalProperties": {"type": "string"}},
            })]
        }
        Query::Fields(of) => of(requests).to_value(),
    };
    let required: Vec<&str> = fields
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = fields.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, schema)| {
            let mut schema = schema.clone();
            without_null(&mut schema);
            let description = schema.as_object_mut().and_then(|o| o.remove("description"));
            let mut param = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": schema,
            });
            if let (Some(d), Some(p)) = (description, param.as_object_mut()) {
                p.insert("description".into(), d);
            }
            param
        })
        .collect()
}

fn request_id_header() -> Value {
    json!({"x-request-id": {"$ref": "#/components/headers/RequestId"}})
}

/// The content of a route's answer (or request) as `payload` describes it.
fn content(name: &str, payload: Payload, g: &mut SchemaGenerator) -> Value {
    match payload {
        Payload::Json(of) => json!({"application/json": {"schema": of(g).to_value()}}),
        Payload::AnyJson => json!({"application/json": {"schema": {"description": name}}}),
        Payload::Object => {
            json!({"application/json": {"schema": {"type": "object", "description": name}}})
        }
        Payload::PrometheusText => json!({"text/plain": {"schema": {
            "type": "string",
            "description": "Prometheus text exposition format 0.0.4 (docs/METRICS.md)",
        }}}),
        Payload::Events(of) => json!({"text/event-stream": {
            "schema": {
                "type": "string",
                "description": "server-sent events: `id: SEQ`, `event: call`, `data:` the JSON of a record (x-hearth-event-data), and a `: keep-alive` comment every 15 s",
            },
            "x-hearth-event-data": of(g).to_value(),
        }}),
        Payload::Html => json!({"text/html": {"schema": {"type": "string", "description": name}}}),
    }
}

fn no_schema(route: &Route, role: &'static str, name: &'static str) -> OpenApiError {
    OpenApiError::NoSchema {
        method: route.method.as_str(),
        path: route.path,
        role,
        name,
    }
}

/// One operation of the document.
fn operation(
    route: &Route,
    answers: &mut SchemaGenerator,
    requests: &mut SchemaGenerator,
    error_body: &Value,
) -> Result<Value, OpenApiError> {
    let mut op = Map::new();
    op.insert("operationId".into(), operation_id(route).into());
    op.insert("summary".into(), route.summary.into());
    op.insert(
        "description".into(),
        format!("{}.\n\n{}", route.summary, access_text(route.access)).into(),
    );
    op.insert("tags".into(), json!([tag_of(route.path)]));

    let mut parameters = path_params(route.path);
    if let Some(query) = query_of(route) {
        parameters.extend(query_params(query, requests));
    }
    parameters.extend(headers_of(route.id));
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }

    if let Some(name) = route.request {
        let payload = payload(name).ok_or_else(|| no_schema(route, "request", name))?;
        op.insert(
            "requestBody".into(),
            json!({
                "required": route.access != Access::Call,
                "description": name,
                "content": content(name, payload, requests),
            }),
        );
    }

    let answer =
        payload(route.response).ok_or_else(|| no_schema(route, "response", route.response))?;
    let error_content = match answer {
        Payload::Html => json!({"text/html": {"schema": {
            "type": "string",
            "description": "a page saying what went wrong (for 401 and 403, a form asking for a token)",
        }}}),
        _ => json!({"application/json": {"schema": error_body}}),
    };
    let mut responses = Map::new();
    for (status, meaning) in successes_of(route.id) {
        let description = if meaning.is_empty() {
            route.response.to_owned()
        } else {
            format!("{}: {meaning}", route.response)
        };
        let mut content = content(route.response, answer, answers);
        if route.id == RouteId::Deploy && *status == 200 {
            if let Some(c) = content.as_object_mut() {
                c.insert("application/x-ndjson".into(), json!({"schema": {
                    "type": "string",
                    "description": "with Accept: application/x-ndjson, one JSON document a line: {\"progress\": \"...\"} lines, then {\"result\": DeployOutcome} or {\"error\": {...}, \"status\": N}",
                }}));
            }
        }
        let mut headers = request_id_header();
        if route.id == RouteId::CallPage {
            if let Some(h) = headers.as_object_mut() {
                h.insert(
                    "x-hearth-function".into(),
                    json!({"description": "the page that answered", "schema": {"type": "string"}}),
                );
                h.insert("x-hearth-version".into(), json!({"description": "the page's version that answered", "schema": {"type": "integer", "minimum": 0}}));
                h.insert("Server-Timing".into(), json!({"description": "page (the whole call), critical (the sum of the critical path's member calls, its fields in desc) and one entry per field (field.PATH, its function@version in desc)", "schema": {"type": "string"}}));
            }
        }
        if route.id == RouteId::Call {
            if let Some(h) = headers.as_object_mut() {
                h.insert("x-hearth-function".into(), json!({"description": "the function that answered", "schema": {"type": "string"}}));
                h.insert("x-hearth-version".into(), json!({"description": "the version that answered", "schema": {"type": "integer", "minimum": 0}}));
                h.insert("x-hearth-start".into(), json!({"description": "how the call's worker came: warm, generic or fresh", "schema": {"type": "string", "enum": ["warm", "generic", "fresh"]}}));
                h.insert("Server-Timing".into(), json!({"description": "the call's phases (queue, spawn, load, run)", "schema": {"type": "string"}}));
            }
        }
        responses.insert(
            status.to_string(),
            json!({"description": description, "headers": headers, "content": content}),
        );
    }

    let mut by_status: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    for code in errors_of(route) {
        for status in statuses_of(code, route) {
            by_status.entry(status).or_default().push(code.as_str());
        }
    }
    for (status, codes) in by_status {
        let mut headers = request_id_header();
        if matches!(status, 429 | 503) {
            if let Some(h) = headers.as_object_mut() {
                h.insert("Retry-After".into(), json!({"description": "seconds to wait before trying again, where the error says when", "schema": {"type": "integer", "minimum": 0}}));
            }
        }
        let list: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
        responses.insert(
            status.to_string(),
            json!({
                "description": format!("error.code {} (docs/API.md, \"Errors\")", list.join(", ")),
                "headers": headers,
                "content": error_content,
                "x-hearth-codes": codes,
            }),
        );
    }
    responses.insert(
        "default".into(),
        json!({
            "description": "any other error, in the same shape (docs/API.md, \"Errors\")",
            "headers": request_id_header(),
            "content": error_content,
        }),
    );
    op.insert("responses".into(), Value::Object(responses));

    let security = match route.access {
        Access::Public => json!([]),
        // A page takes the token from its cookie too.
        Access::Scope(s) if matches!(answer, Payload::Html) => {
            json!([{ SECURITY: [s.as_str()] }, { COOKIE: [s.as_str()] }])
        }
        Access::Scope(s) => json!([{ SECURITY: [s.as_str()] }]),
        // Open, or a token when the application is key-protected.
        Access::Call => json!([{}, { SECURITY: ["invoke"] }]),
    };
    op.insert("security".into(), security);
    if let Some(scope) = scope_of(route.access) {
        op.insert("x-hearth-scope".into(), scope.as_str().into());
    }
    Ok(Value::Object(op))
}

/// Point every `$ref` to a renamed schema at its new name.
fn rename_refs(value: &mut Value, renamed: &BTreeMap<String, String>) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj.iter_mut() {
                if k == "$ref" {
                    if let Some(target) = v
                        .as_str()
                        .and_then(|r| r.strip_prefix(&format!("#{SCHEMAS}/")))
                        .and_then(|name| renamed.get(name))
                    {
                        *v = Value::String(format!("#{SCHEMAS}/{target}"));
                    }
                } else {
                    rename_refs(v, renamed);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_refs(v, renamed)),
        _ => {}
    }
}

/// The whole document.
pub fn document() -> Result<Value, OpenApiError> {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = SCHEMAS.into();
        s.meta_schema = None;
    });
    let mut answers = settings.clone().for_serialize().into_generator();
    let mut requests = settings.for_deserialize().into_generator();
    let error_body = schema::<crate::ErrorBody>(&mut answers).to_value();

    let mut paths = Map::new();
    let mut tags: Vec<&str> = Vec::new();
    for route in ROUTES {
        let op = operation(route, &mut answers, &mut requests, &error_body)?;
        let item = paths
            .entry(route.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(item) = item.as_object_mut() {
            item.insert(route.method.as_str().to_ascii_lowercase(), op);
        }
        let tag = tag_of(route.path);
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }

    // One set of schemas: a type that reads differently as a request than
    // as an answer gets a second name for its request form.
    let mut schemas = answers.take_definitions(true);
    let mut from_requests = requests.take_definitions(true);
    let mut renamed = BTreeMap::new();
    for (name, schema) in &from_requests {
        if schemas.get(name).is_some_and(|s| s != schema) {
            let mut new = format!("{name}Input");
            let mut n = 2;
            while schemas.contains_key(&new) || from_requests.contains_key(&new) {
                new = format!("{name}Input{n}");
                n += 1;
            }
            renamed.insert(name.clone(), new);
        }
    }
    if !renamed.is_empty() {
        for schema in from_requests.values_mut() {
            rename_refs(schema, &renamed);
        }
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                for key in ["requestBody", "parameters"] {
                    if let Some(v) = op.get_mut(key) {
                        rename_refs(v, &renamed);
                    }
                }
            }
        }
    }
    for (name, schema) in from_requests {
        let name = renamed.get(&name).cloned().unwrap_or(name);
        schemas.entry(name).or_insert(schema);
    }
    schemas.sort_keys();

    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "hearth",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "a function runtime: warm pools of Python, Node and Lua workers behind an HTTP gateway",
            "description": "hearth's HTTP API: calls to functions under /fn/, the management API under /api/v1/ and Prometheus metrics at /metrics. Generated from the daemon's route table and API types; docs/API.md describes each route and every error code.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                SECURITY: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a hearth token (`hearth token create NAME --scope read|deploy|admin|invoke`; the daemon's local admin token is in DATA_DIR/admin.token). Scopes nest: admin holds deploy, deploy holds read; each operation names the scope it needs in x-hearth-scope.",
                },
                COOKIE: {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "hearth_token",
                    "description": "the same token, in the cookie a function's page (/docs/{name}) sets from its sign-in form",
                },
            },
            "headers": {
                "RequestId": {
                    "description": "the request's id (the one sent in x-request-id, or one the daemon made); error bodies name it too",
                    "schema": {"type": "string"},
                },
            },
        },
    }))
}

static DOCUMENT: LazyLock<Result<Vec<u8>, OpenApiError>> =
    LazyLock::new(|| Ok(serde_json::to_vec(&document()?)?));

/// The document as JSON, made once, on first use.
pub fn document_json() -> Result<&'static [u8], &'static OpenApiError> {
    DOCUMENT.as_ref().map(Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_names_types_with_a_schema() {
        for route in ROUTES {
            assert!(
                payload(route.response).is_some(),
                "{}",
                no_schema(route, "response", route.response)
            );
            if let Some(name) = route.request {
                assert!(
                    payload(name).is_some(),
                    "{}",
                    no_schema(route, "request", name)
                );
            }
        }
        assert!(payload("NoSuchType").is_none());
    }

    #[test]
    fn every_route_is_in_the_document_with_its_method() {
        let doc = document().expect("the document");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = Vec::new();
        for route in ROUTES {
            let method = route.method.as_str().to_ascii_lowercase();
            let op = &doc["paths"][route.path][&method];
            assert!(
                op.is_object(),
                "{} {} is not in the document",
                route.method.as_str(),
                route.path
            );
            assert_eq!(op["summary"], route.summary, "{}", route.path);
            let id = op["operationId"].as_str().expect("operationId").to_owned();
            assert!(!ids.contains(&id), "operationId {id} is used twice");
            ids.push(id);
            match scope_of(route.access) {
                Some(scope) => {
                    assert_eq!(op["x-hearth-scope"], scope.as_str(), "{}", route.path);
                    assert!(
                        op["description"]
                            .as_str()
                            .is_some_and(|d| d.contains(&format!("`{scope}`"))),
                        "{} {}: the description does not name scope {scope}",
                        route.method.as_str(),
                        route.path
                    );
                }
                None => assert_eq!(op["security"], json!([]), "{}", route.path),
            }
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for segment in route.path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    assert!(
                        params.contains(&name),
                        "{}: no parameter {name}",
                        route.path
                    );
                }
            }
        }
        let paths = doc["paths"].as_object().expect("paths");
        let operations: usize = paths
            .values()
            .map(|item| item.as_object().map_or(0, Map::len))
            .sum();
        assert_eq!(operations, ROUTES.len(), "an operation that is no route");
    }

    /// Every `$ref` in the document, where it is.
    fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match value {
            Value::Object(obj) => {
                for (k, v) in obj {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push((at.clone(), r)),
                        _ => refs(v, format!("{at}/{k}"), out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    refs(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document().expect("the document");
        let mut found = Vec::new();
        refs(&doc, String::new(), &mut found);
        assert!(found.len() > 20, "too few references: {found:?}");
        for (at, reference) in found {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{at}: {reference} is not local"));
            assert!(
                doc.pointer(pointer).is_some(),
                "{at}: {reference} points at nothing"
            );
        }
    }

    #[test]
    fn queries_and_errors_are_described() {
        let doc = document().expect("the document");
        let list = &doc["paths"]["/api/v1/functions/{name}/calls"]["get"];
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "since_ms",
                "request_id",
                "parent",
                "status",
                "version",
                "after_seq",
                "limit"
            ]
        );
        let stats = &doc["paths"]["/api/v1/apps/{name}/stats"]["get"]["parameters"];
        let window = stats
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == "window")
            .expect("a window parameter");
        assert!(window["schema"].get("type") != Some(&json!(["string", "null"])));
        let errors = &list["responses"]["404"];
        assert!(errors["x-hearth-codes"]
            .as_array()
            .expect("codes")
            .contains(&json!("function_not_found")));
        assert_eq!(
            errors["content"]["application/json"]["schema"]["$ref"],
            format!("#{SCHEMAS}/ErrorBody")
        );
        assert!(doc["paths"]["/api/v1/deploy"]["post"]["responses"]["201"].is_object());
        assert!(document_json().is_ok());
    }
}
