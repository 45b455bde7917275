//! Generated documents of functions: `GET /api/v1/functions/{name}/openapi.json`,
//! `GET /api/v1/apps/{app}/openapi.json`, the page `GET /docs/{name}`,
//! and `GET /api/v1/functions/{name}/diff?from=A&to=B`.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use hearth_api::{ApiError, ErrorCode, FileDiff, InvokeMode, ManifestChange, VersionDiff};

use crate::docs::{self, FunctionDoc};
use crate::gateway::http::{ok, Resp};
use crate::gateway::Gateway;

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("cannot read the store: {e}"))
}

/// `?key=value` of a request's query.
fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| crate::gateway::call::percent_decode(v))
    })
}

fn version_param(req: &Request<Incoming>, key: &str) -> Result<Option<u32>, ApiError> {
    match query_param(req, key) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(
                format!("?{key}={v} is not a version number"),
                format!("give a version number, for example ?{key}=2 (`hearth versions NAME` lists them)"),
            )
        }),
    }
}

/// A stored version of `name`, or a 404 naming it.
async fn stored_version(
    gw: &Gateway,
    name: &str,
    version: u32,
) -> Result<hearth_store::VersionRecord, ApiError> {
    gw.engine
        .store()
        .version(name, version)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::VersionNotFound,
                format!("{name} has no version {version}"),
                format!(
                    "`hearth versions {name}` lists its versions (gc may have removed old ones)"
                ),
            )
            .function(name, Some(version))
        })
}

/// What the document of `name` (at `version`, else its live version, else
/// its latest) is made from.
pub async fn function_doc(
    gw: &Gateway,
    name: &str,
    version: Option<u32>,
) -> Result<FunctionDoc, ApiError> {
    let info = gw.engine.function(name).await?;
    doc_of(gw, info, version).await
}

/// The same, from the function's information as listed.
async fn doc_of(
    gw: &Gateway,
    info: hearth_api::FunctionInfo,
    version: Option<u32>,
) -> Result<FunctionDoc, ApiError> {
    let name = info.name.as_str();
    let version = match version.or(info.live_version) {
        Some(v) => v,
        None if info.versions > 0 => info.versions,
        None => return Err(ApiError::function_not_found(name)),
    };
    let record = stored_version(gw, name, version).await?;
    let open = gw.engine.apps.invoke_mode(&info.app) == InvokeMode::Open;
    Ok(FunctionDoc {
        name: info.name.clone(),
        version,
        category: info.category,
        description: info.description,
        manifest: record.manifest,
        called_by: info.called_by,
        open,
    })
}

pub async fn function_openapi(
    gw: &Gateway,
    name: &str,
    req: &Request<Incoming>,
) -> Result<Resp, ApiError> {
    let version = version_param(req, "version")?;
    let doc = function_doc(gw, name, version).await?;
    Ok(ok(&docs::openapi::function(&doc)))
}

pub async fn app_openapi(gw: &Gateway, app: &str) -> Result<Resp, ApiError> {
    let list = gw.engine.functions().await?;
    let mut functions = Vec::new();
    let mut known = false;
    for f in list.functions {
        if f.app != app {
            continue;
        }
        known = true;
        if f.live_version.is_some() {
            functions.push(doc_of(gw, f, None).await?);
        }
    }
    let apps = gw.engine.store().apps().await.map_err(store_error)?;
    if !known && !apps.iter().any(|a| a.name == app) {
        return Err(ApiError::new(
            ErrorCode::AppNotFound,
            format!("no application named \"{app}\""),
            "`hearth app` lists the applications there are",
        ));
    }
    Ok(ok(&docs::openapi::app(app, &functions)))
}

fn html(status: StatusCode, body: String) -> Resp {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(docs::html::CSP),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

/// The token of the page's own cookie (`hearth_token`, set by its sign-in
/// form), as a bearer header when the request has none.
fn with_cookie_token(req: &Request<Incoming>) -> hyper::HeaderMap {
    let mut headers = req.headers().clone();
    if headers.contains_key(AUTHORIZATION) {
        return headers;
    }
    let token = req
        .headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("hearth_token="))
        .map(crate::gateway::call::percent_decode);
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert(AUTHORIZATION, v);
        }
    }
    headers
}

/// `GET /docs/{name}`: the page, or a page asking for a token.
pub async fn page(
    gw: &Gateway,
    route: &hearth_api::routes::Route,
    name: &str,
    req: Request<Incoming>,
) -> Resp {
    let headers = with_cookie_token(&req);
    if let Err(e) = gw.guard.management(route.access, req.method(), &headers) {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::UNAUTHORIZED);
        let body = if e.status == 401 || e.status == 403 {
            docs::html::sign_in(name, &e.detail.message)
        } else {
            docs::html::error_page(name, &e.detail.message, &e.detail.hint)
        };
        return html(status, body);
    }
    let version = match version_param(&req, "version") {
        Ok(v) => v,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                docs::html::error_page(name, &e.detail.message, &e.detail.hint),
            )
        }
    };
    match function_doc(gw, name, version).await {
        Ok(doc) => match docs::html::render(&docs::openapi::function(&doc)) {
            Some(page) => html(StatusCode::OK, page),
            None => html(
                StatusCode::INTERNAL_SERVER_ERROR,
                docs::html::error_page(
                    name,
                    "the document could not be made",
                    "report this as a bug",
                ),
            ),
        },
        Err(e) => html(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::NOT_FOUND),
            docs::html::error_page(name, &e.detail.message, &e.detail.hint),
        ),
    }
}

/// Largest file shown as a diff, in bytes (larger ones only say so).
const MAX_DIFF_FILE: usize = 512 * 1024;

/// A file's text, if it is text small enough to diff.
fn text(d: &[u8]) -> Option<&str> {
    std::str::from_utf8(d)
        .ok()
        .filter(|_| d.len() <= MAX_DIFF_FILE)
}

pub async fn diff(gw: &Gateway, name: &str, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let (Some(from), Some(to)) = (version_param(req, "from")?, version_param(req, "to")?) else {
        return Err(ApiError::bad_request(
            "the diff needs two versions, ?from=A&to=B",
            format!("for example /api/v1/functions/{name}/diff?from=1&to=2, or `hearth diff {name} 1 2`"),
        ));
    };
    let store = gw.engine.store();
    gw.engine.function(name).await?;
    let mut manifests = Vec::with_capacity(2);
    let mut files = Vec::with_capacity(2);
    for v in [from, to] {
        let record = stored_version(gw, name, v).await?;
        manifests.push(record.manifest);
        files.push(store.version_files(name, v).await.map_err(store_error)?);
    }
    let (old_files, new_files) = (&files[0], &files[1]);
    let mut paths: Vec<&str> = old_files
        .iter()
        .chain(new_files.iter())
        .map(|f| f.path.as_str())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let mut file_diffs = Vec::new();
    for path in paths {
        let old = old_files.iter().find(|f| f.path == path);
        let new = new_files.iter().find(|f| f.path == path);
        let change = match (old, new) {
            (Some(a), Some(b)) if a.data == b.data && a.executable == b.executable => continue,
            (Some(_), Some(_)) => "changed",
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (None, None) => continue,
        };
        let empty: &[u8] = &[];
        let a = old.map_or(empty, |f| &f.data[..]);
        let b = new.map_or(empty, |f| &f.data[..]);
        let (diff, binary) = match (text(a), text(b)) {
            (Some(a_text), Some(b_text)) => {
                let d = similar::TextDiff::from_lines(a_text, b_text);
                let from_label = format!("{name}@{from}/{path}");
                let to_label = format!("{name}@{to}/{path}");
                let unified = d
                    .unified_diff()
                    .context_radius(3)
                    .header(&from_label, &to_label)
                    .to_string();
                (unified, false)
            }
            _ => (
                String::new(),
                std::str::from_utf8(a).is_err() || std::str::from_utf8(b).is_err(),
            ),
        };
        file_diffs.push(FileDiff {
            path: path.to_owned(),
            change: change.to_owned(),
            diff,
            binary,
            from_bytes: a.len() as u64,
            to_bytes: b.len() as u64,
        });
    }
    let manifest = manifest_changes(&manifests[0], &manifests[1]);
    let breaking = hearth_api::metadata::breaking_changes(
        manifests[0].input.as_ref(),
        manifests[1].input.as_ref(),
    );
    Ok(ok(&VersionDiff {
        function: name.to_owned(),
        from,
        to,
        files: file_diffs,
        manifest,
        breaking,
    }))
}

/// hearth.toml's keys that differ, tables (limits, errors) key by key.
fn manifest_changes(
    a: &hearth_api::manifest::Manifest,
    b: &hearth_api::manifest::Manifest,
) -> Vec<ManifestChange> {
    let (a, b) = match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) => (a, b),
        _ => return Vec::new(),
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let null = serde_json::Value::Null;
    let mut out = Vec::new();
    for key in keys {
        if key == "limits_set" {
            continue;
        }
        let (x, y) = (a.get(key).unwrap_or(&null), b.get(key).unwrap_or(&null));
        if x == y {
            continue;
        }
        match (x, y, key.as_str()) {
            (_, _, "limits" | "errors") if x.is_object() || y.is_object() => {
                let empty = serde_json::Map::new();
                let (xo, yo) = (
                    x.as_object().unwrap_or(&empty),
                    y.as_object().unwrap_or(&empty),
                );
                let mut sub: Vec<&String> = xo.keys().chain(yo.keys()).collect();
                sub.sort();
                sub.dedup();
                for k in sub {
                    let (xv, yv) = (xo.get(k).unwrap_or(&null), yo.get(k).unwrap_or(&null));
                    if xv != yv {
                        out.push(ManifestChange {
                            key: format!("{key}.{k}"),
                            from: xv.clone(),
                            to: yv.clone(),
                        });
                    }
                }
            }
            _ => out.push(ManifestChange {
                key: key.clone(),
                from: x.clone(),
                to: y.clone(),
            }),
        }
    }
    out
}
