//! The route table of the HTTP API: every route with its method, path,
//! request and response types. The gateway dispatches from it (a path that
//! matches with another method is a 405 naming the methods that it takes),
//! docs/API.md describes it, and `openapi.rs` generates the OpenAPI document
//! (`GET /api/v1/openapi.json`) from it.
//! Each route's [`Access`] (the scope its token needs) comes from
//! [`access_of`]: the gateway checks it before any handler runs.

use crate::auth::{Access, Scope};

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    pub fn parse(method: &str) -> Option<Method> {
        match method {
            "GET" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }
}

/// Which handler serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    /// `/fn/{target}`: call a function.
    Call,
    /// `POST /page/{target}`: call a page.
    CallPage,
    Health,
    /// `GET /api/v1/openapi.json`: this API as an OpenAPI 3.1 document.
    OpenApi,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    Workers,
    ListApps,
    SetApp,
    ListFunctions,
    GetFunction,
    ListVersions,
    ListReleases,
    Publish,
    Rollback,
    BatchPublish,
    ListAliases,
    SetAlias,
    Deploy,
    ListTokens,
    CreateToken,
    RevokeToken,
    Gc,
    AppStats,
    FunctionStats,
    ListCalls,
    FollowCalls,
    GetCall,
    FunctionOpenApi,
    AppOpenApi,
    FunctionDocs,
    VersionDiff,
    DeleteFunction,
    EditFunction,
    FunctionOffline,
    FunctionOnline,
    ListTemplates,
    GetTemplate,
    SaveTemplate,
    DeleteTemplate,
}

/// What each route asks of its caller's token. `deploy` routes limited to
/// some applications are checked again by their handler against the
/// function's application.
pub const fn access_of(id: RouteId) -> Access {
    match id {
        RouteId::Call | RouteId::CallPage => Access::Call,
        RouteId::Health => Access::Public,
        RouteId::Workers
        | RouteId::OpenApi
        | RouteId::Metrics
        | RouteId::ListApps
        | RouteId::ListFunctions
        | RouteId::GetFunction
        | RouteId::ListVersions
        | RouteId::ListReleases
        | RouteId::ListAliases
        | RouteId::AppStats
        | RouteId::FunctionStats => Access::Scope(Scope::Read),
        RouteId::ListCalls | RouteId::FollowCalls | RouteId::GetCall => Access::Scope(Scope::Read),
        RouteId::FunctionOpenApi
        | RouteId::AppOpenApi
        | RouteId::FunctionDocs
        | RouteId::VersionDiff => Access::Scope(Scope::Read),
        RouteId::ListTemplates | RouteId::GetTemplate => Access::Scope(Scope::Read),
        RouteId::SaveTemplate | RouteId::DeleteTemplate => Access::Scope(Scope::Deploy),
        RouteId::Publish
        | RouteId::Rollback
        | RouteId::BatchPublish
        | RouteId::SetAlias
        | RouteId::Deploy => Access::Scope(Scope::Deploy),
        RouteId::DeleteFunction
        | RouteId::EditFunction
        | RouteId::FunctionOffline
        | RouteId::FunctionOnline => Access::Scope(Scope::Deploy),
        RouteId::SetApp
        | RouteId::ListTokens
        | RouteId::CreateToken
        | RouteId::RevokeToken
        | RouteId::Gc => Access::Scope(Scope::Admin),
    }
}

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub id: RouteId,
    pub method: Method,
    /// Segments in braces are parameters: `/api/v1/functions/{name}`.
    pub path: &'static str,
    /// The request body's type in this crate (None: no body). A name the
    /// OpenAPI document knows: `openapi::payload` maps it to its schema.
    pub request: Option<&'static str>,
    /// The 2xx answer's type in this crate (also mapped by
    /// `openapi::payload`).
    pub response: &'static str,
    pub summary: &'static str,
    /// The scope the route needs (from [`access_of`]).
    pub access: Access,
}

const fn route(
    id: RouteId,
    method: Method,
    path: &'static str,
    request: Option<&'static str>,
    response: &'static str,
    summary: &'static str,
) -> Route {
    Route {
        id,
        method,
        path,
        request,
        response,
        summary,
        access: access_of(id),
    }
}

use Method::{Delete, Get, Post, Put};
use RouteId::*;

/// Every route, in the order they are documented.
pub const ROUTES: &[Route] = &[
    route(
        Call,
        Post,
        "/fn/{target}",
        Some("the event (any JSON)"),
        "the function's result",
        "call a function (NAME, NAME@VERSION or NAME@ALIAS) with the JSON body as the event",
    ),
    route(
        Call,
        Get,
        "/fn/{target}",
        None,
        "the function's result",
        "call a function with the query parameters as the event",
    ),
    route(
        CallPage,
        Post,
        "/page/{target}",
        Some("the page request (any JSON)"),
        "PageAnswer",
        "call a page (NAME, NAME@VERSION or NAME@ALIAS): every field filled by its function, as {data, errors}",
    ),
    route(
        Health,
        Get,
        "/api/v1/health",
        None,
        "HealthInfo",
        "status, version, runtimes found",
    ),
    route(
        OpenApi,
        Get,
        "/api/v1/openapi.json",
        None,
        "the OpenAPI 3.1 document",
        "this API as an OpenAPI 3.1 document, generated from the route table and the API types",
    ),
    route(
        Metrics,
        Get,
        "/metrics",
        None,
        "Prometheus text (format 0.0.4)",
        "calls, durations, cold starts, rejections, workers and the process, for Prometheus (docs/METRICS.md)",
    ),
    route(
        Workers,
        Get,
        "/api/v1/workers",
        None,
        "WorkersInfo",
        "pools, pre-started workers and the global budget",
    ),
    route(
        ListApps,
        Get,
        "/api/v1/apps",
        None,
        "AppList",
        "applications with their budgets and workers",
    ),
    route(
        SetApp,
        Put,
        "/api/v1/apps/{name}",
        Some("AppBudgetRequest"),
        "AppBudgetOutcome",
        "set an application's budget (creates it if new)",
    ),
    route(
        SetApp,
        Post,
        "/api/v1/apps/{name}",
        Some("AppBudgetRequest"),
        "AppBudgetOutcome",
        "the same as PUT",
    ),
    route(
        AppStats,
        Get,
        "/api/v1/apps/{name}/stats",
        None,
        "AppStats",
        "an application's calls, success rate, durations, cold starts and rejections over ?window=1m|1h|24h|7d (default 1h), with each function's",
    ),
    route(
        AppOpenApi,
        Get,
        "/api/v1/apps/{name}/openapi.json",
        None,
        "an OpenAPI 3.1 document",
        "OpenAPI 3.1 of calling each live function of the application",
    ),
    route(
        ListFunctions,
        Get,
        "/api/v1/functions",
        None,
        "FunctionList",
        "every function",
    ),
    route(
        GetFunction,
        Get,
        "/api/v1/functions/{name}",
        None,
        "FunctionInfo",
        "one function",
    ),
    route(
        EditFunction,
        Put,
        "/api/v1/functions/{name}",
        Some("FunctionEdit"),
        "FunctionInfo",
        "set a function's description and category (not part of any version)",
    ),
    route(
        DeleteFunction,
        Delete,
        "/api/v1/functions/{name}",
        None,
        "FunctionStateOutcome",
        "delete a function: its workers end, calls get 404, its versions and history stay (?force=true: even while live functions call it)",
    ),
    route(
        FunctionOffline,
        Post,
        "/api/v1/functions/{name}/offline",
        None,
        "FunctionStateOutcome",
        "take a function offline: its workers end and every call gets 503 function_offline",
    ),
    route(
        FunctionOnline,
        Post,
        "/api/v1/functions/{name}/online",
        None,
        "FunctionStateOutcome",
        "bring an offline function back: calls go to its live version again",
    ),
    route(
        FunctionStats,
        Get,
        "/api/v1/functions/{name}/stats",
        None,
        "FunctionStats",
        "a function's calls, success rate, durations, cold starts and rejections over ?window=1m|1h|24h|7d (default 1h), split by version",
    ),
    route(
        FunctionOpenApi,
        Get,
        "/api/v1/functions/{name}/openapi.json",
        None,
        "an OpenAPI 3.1 document",
        "OpenAPI 3.1 of calling the function (its live version, or ?version=N): [input] as the body, [output] as the answer, [errors] by status, an example request",
    ),
    route(
        FunctionDocs,
        Get,
        "/docs/{name}",
        None,
        "text/html",
        "the function's interface document as a page with a call form made from its input schema (the token may come in the hearth_token cookie the page sets)",
    ),
    route(
        VersionDiff,
        Get,
        "/api/v1/functions/{name}/diff",
        None,
        "VersionDiff",
        "what changed between two versions (?from=A&to=B): files as unified diffs, hearth.toml keys, breaking input changes",
    ),
    route(
        ListVersions,
        Get,
        "/api/v1/functions/{name}/versions",
        None,
        "VersionList",
        "a function's versions",
    ),
    route(
        ListReleases,
        Get,
        "/api/v1/functions/{name}/releases",
        None,
        "ReleaseList",
        "a function's release history, newest first",
    ),
    route(
        Publish,
        Post,
        "/api/v1/functions/{name}/publish",
        Some("PublishRequest"),
        "ReleaseOutcome",
        "make a version live",
    ),
    route(
        Rollback,
        Post,
        "/api/v1/functions/{name}/rollback",
        Some("RollbackRequest"),
        "ReleaseOutcome",
        "make the version live that was live before the current one",
    ),
    route(
        BatchPublish,
        Post,
        "/api/v1/publish",
        Some("BatchPublishRequest"),
        "BatchPublishOutcome",
        "several versions live at once, all or none",
    ),
    route(
        ListCalls,
        Get,
        "/api/v1/functions/{name}/calls",
        None,
        "CallList",
        "a function's call records, newest first (filters: since_ms, request_id, status, version, after_seq, limit)",
    ),
    route(
        FollowCalls,
        Get,
        "/api/v1/functions/{name}/calls/stream",
        None,
        "server-sent events of CallRecord",
        "a function's call records as they are written (same filters; resumes after Last-Event-ID)",
    ),
    route(
        GetCall,
        Get,
        "/api/v1/calls/{request_id}",
        None,
        "CallRecord",
        "one call's record",
    ),
    route(
        ListAliases,
        Get,
        "/api/v1/functions/{name}/aliases",
        None,
        "AliasList",
        "a function's aliases",
    ),
    route(
        SetAlias,
        Put,
        "/api/v1/functions/{name}/aliases/{alias}",
        Some("AliasRequest"),
        "AliasOutcome",
        "create or move an alias",
    ),
    route(
        SetAlias,
        Post,
        "/api/v1/functions/{name}/aliases/{alias}",
        Some("AliasRequest"),
        "AliasOutcome",
        "the same as PUT",
    ),
    route(
        Deploy,
        Post,
        "/api/v1/deploy",
        Some("DeployRequest"),
        "DeployOutcome",
        "store a bundle as a version and (by default) publish it",
    ),
    route(
        ListTemplates,
        Get,
        "/api/v1/templates",
        None,
        "TemplateList",
        "every template, built-in and saved (name, description, runtime, type, builtin, from)",
    ),
    route(
        GetTemplate,
        Get,
        "/api/v1/templates/{name}",
        None,
        "TemplateDetail",
        "one template with its variables and files (placeholders unreplaced)",
    ),
    route(
        SaveTemplate,
        Post,
        "/api/v1/templates",
        Some("SaveTemplateRequest"),
        "TemplateInfo",
        "save a function's version (FUNCTION[@VERSION]) as a template; its name and app become {{name}} and {{app}}",
    ),
    route(
        DeleteTemplate,
        Delete,
        "/api/v1/templates/{name}",
        None,
        "TemplateDeleted",
        "delete a saved template (built-in ones cannot be)",
    ),
    route(
        ListTokens,
        Get,
        "/api/v1/tokens",
        None,
        "TokenList",
        "every token (names, scopes, last use; never the secrets)",
    ),
    route(
        CreateToken,
        Post,
        "/api/v1/tokens",
        Some("TokenRequest"),
        "TokenCreated",
        "create a token; the answer holds it, shown this once",
    ),
    route(
        RevokeToken,
        Delete,
        "/api/v1/tokens/{name}",
        None,
        "TokenRevoked",
        "revoke a token at once",
    ),
    route(
        Gc,
        Post,
        "/api/v1/gc",
        Some("GcRequest"),
        "GcReport",
        "remove stored versions no retention rule keeps and directories no kept version needs (dry_run: only list them)",
    ),
];

/// What a request's method and path come to.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched<'a> {
    /// A route, with its parameters in path order.
    Route(&'static Route, Vec<&'a str>),
    /// The path is served, with other methods (listed as "GET or POST").
    WrongMethod(String),
    NotFound,
}

/// Match a path (trailing slashes ignored) against the table.
pub fn find<'a>(method: &str, path: &'a str) -> Matched<'a> {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let mut allowed: Vec<&'static str> = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.path, path) else {
            continue;
        };
        if route.method.as_str() == method {
            return Matched::Route(route, params);
        }
        if !allowed.contains(&route.method.as_str()) {
            allowed.push(route.method.as_str());
        }
    }
    if allowed.is_empty() {
        Matched::NotFound
    } else {
        Matched::WrongMethod(allowed.join(" or "))
    }
}

/// The parameters of `path` if it has the shape of `pattern`. The last
/// parameter of `/fn/{target}` takes the rest of the path.
fn match_path<'a>(pattern: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let mut params = Vec::new();
    let mut rest = path.strip_prefix('/')?;
    let segments: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let (here, after) = if last {
            (rest, "")
        } else {
            let (h, a) = rest.split_once('/')?;
            (h, a)
        };
        if segment.starts_with('{') {
            if here.is_empty() || (here.contains('/') && *segment != "{target}") {
                return None;
            }
            params.push(here);
        } else if *segment != here {
            return None;
        }
        rest = after;
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(m: Matched<'_>) -> Option<(RouteId, Vec<String>)> {
        match m {
            Matched::Route(r, p) => Some((r.id, p.into_iter().map(String::from).collect())),
            _ => None,
        }
    }

    #[test]
    fn paths_match_their_routes() {
        assert_eq!(
            id(find("GET", "/api/v1/functions/hello/versions/")),
            Some((ListVersions, vec!["hello".into()]))
        );
        assert_eq!(
            id(find("PUT", "/api/v1/functions/hello/aliases/prod")),
            Some((SetAlias, vec!["hello".into(), "prod".into()]))
        );
        assert_eq!(
            id(find("POST", "/fn/hello@3")),
            Some((Call, vec!["hello@3".into()]))
        );
        assert_eq!(
            find("PATCH", "/api/v1/functions"),
            Matched::WrongMethod("GET".into())
        );
        assert_eq!(
            find("GET", "/api/v1/deploy"),
            Matched::WrongMethod("POST".into())
        );
        assert_eq!(find("GET", "/api/v1/nothing"), Matched::NotFound);
        assert_eq!(find("GET", "/api/v1/functions/a/b/c"), Matched::NotFound);
    }

    #[test]
    fn every_route_is_reachable() {
        for route in ROUTES {
            let path = route
                .path
                .replace("{name}", "hello")
                .replace("{alias}", "prod")
                .replace("{target}", "hello");
            match find(route.method.as_str(), &path) {
                Matched::Route(found, _) => assert_eq!(found.id, route.id, "{}", route.path),
                other => panic!("{} {}: {other:?}", route.method.as_str(), route.path),
            }
        }
    }
}
