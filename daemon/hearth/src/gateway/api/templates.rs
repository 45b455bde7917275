//! `GET /api/v1/templates`, `GET /api/v1/templates/{name}`,
//! `POST /api/v1/templates` (save a function's version as a template) and
//! `DELETE /api/v1/templates/{name}`. Built-in templates come from the
//! binary (`crate::templates`), saved ones from the store.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use hearth_api::templates::{parse_from, templatize, validate_template_name};
use hearth_api::{
    ApiError, ErrorCode, SaveTemplateRequest, Scope, TemplateDeleted, TemplateDetail, TemplateInfo,
    TemplateList,
};
use hearth_auth::Principal;
use hearth_store::{StoreError, TemplateRecord};

use super::{read_api_body, require_deploy};
use crate::gateway::http::{json, ok, parse_json, Resp};
use crate::gateway::Gateway;
use crate::templates::{builtin, builtins};

fn store_failed(e: StoreError) -> ApiError {
    ApiError::internal(format!("cannot read or write the store's templates: {e}"))
}

pub fn not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TemplateNotFound,
        format!("there is no template named \"{name}\""),
        "`hearth template list` shows the built-in and saved templates",
    )
}

pub async fn list(gw: &Gateway) -> Result<Resp, ApiError> {
    let mut templates: Vec<TemplateInfo> = builtins().iter().map(|b| b.info.clone()).collect();
    let saved = gw.engine.store().templates().await.map_err(store_failed)?;
    templates.extend(saved.into_iter().map(TemplateInfo::from));
    Ok(ok(&TemplateList { templates }))
}

pub async fn get(gw: &Gateway, name: &str) -> Result<Resp, ApiError> {
    if let Some(b) = builtin(name) {
        return Ok(ok(&b.detail()));
    }
    let (record, files) = gw
        .engine
        .store()
        .template(name)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| not_found(name))?;
    Ok(ok(&TemplateDetail {
        info: record.into(),
        variables: Vec::new(),
        files,
    }))
}

pub async fn save(gw: &Gateway, who: &Principal, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let body: SaveTemplateRequest =
        parse_json(&read_api_body(gw, req).await?, "the template request")?;
    validate_template_name(&body.name).map_err(|e| {
        ApiError::bad_request(
            e.to_string(),
            "name templates like functions, for example \"catalog-source\"",
        )
    })?;
    if builtin(&body.name).is_some() {
        return Err(taken(&body.name, "a built-in template"));
    }
    let (function, version) = parse_from(&body.from).map_err(|m| {
        ApiError::bad_request(
            format!("from: {m}"),
            "give the function to save as FUNCTION (its live version) or FUNCTION@VERSION",
        )
    })?;
    let store = gw.engine.store();
    let record = store
        .function(&function)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| ApiError::function_not_found(&function))?;
    require_deploy(gw, who, &function).await?;
    let number = match version.or(record.live_version) {
        Some(n) => n,
        None => {
            return Err(ApiError::new(
                ErrorCode::NotPublished,
                format!("{function} has no live version to save"),
                format!(
                "name the version: --from {function}@N (`hearth versions {function}` lists them)"
            ),
            )
            .function(&function, None))
        }
    };
    let stored = store
        .version(&function, number)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::VersionNotFound,
                format!("{function} has no version {number}"),
                format!("`hearth versions {function}` lists its versions"),
            )
            .function(&function, None)
        })?;
    let files = store
        .version_files(&function, number)
        .await
        .map_err(store_failed)?;
    let manifest = &stored.manifest;
    let template = TemplateRecord {
        name: body.name.clone(),
        description: if body.description.trim().is_empty() {
            manifest.description.clone()
        } else {
            body.description.clone()
        },
        runtime: manifest.runtime.as_str().to_owned(),
        kind: manifest.kind.as_str().to_owned(),
        from_function: function.clone(),
        from_version: number,
        app: manifest.app.clone(),
        created_at: now_ms(),
        created_by: who.name.clone(),
    };
    let files = templatize(&files, &function);
    if !store
        .put_template(&template, &files)
        .await
        .map_err(store_failed)?
    {
        return Err(taken(&body.name, "a saved template"));
    }
    tracing::info!(template = %template.name, from = %format!("{function}@{number}"), by = %who.name, "template saved");
    Ok(json(StatusCode::CREATED, &TemplateInfo::from(template)))
}

pub async fn delete(gw: &Gateway, who: &Principal, name: &str) -> Result<Resp, ApiError> {
    if builtin(name).is_some() {
        return Err(ApiError::new(
            ErrorCode::TemplateBuiltin,
            format!(
                "\"{name}\" is a built-in template: it ships with hearth and cannot be deleted"
            ),
            "only saved templates can be deleted; `hearth template list` marks which are built in",
        ));
    }
    let store = gw.engine.store();
    let (record, _) = store
        .template(name)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| not_found(name))?;
    // A token limited to some applications deletes only what was saved
    // from their functions.
    who.require(Scope::Deploy, Some(&record.app))?;
    if !store.delete_template(name).await.map_err(store_failed)? {
        return Err(not_found(name));
    }
    tracing::info!(template = %name, by = %who.name, "template deleted");
    Ok(ok(&TemplateDeleted {
        name: name.to_owned(),
        deleted: true,
    }))
}

fn taken(name: &str, by: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TemplateExists,
        format!("the template name \"{name}\" is taken by {by}"),
        "choose another name, or delete the saved template first with `hearth template delete NAME`",
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
