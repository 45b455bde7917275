//! Functions and their versions, as the management API lists them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::calls::{encode, QueryError};
use crate::manifest::{Manifest, RuntimeKind};
use crate::metadata::FunctionType;

/// One function.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FunctionInfo {
    pub name: String,
    pub runtime: String,
    pub app: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub description: String,
    /// draft (nothing published yet), live, offline (`hearth offline`:
    /// every call is refused with 503 `function_offline`), or crash-loop
    /// while the live version is paused.
    pub state: String,
    /// The live version's `type` (the latest version's while none is live).
    #[serde(default, rename = "type")]
    pub kind: FunctionType,
    pub live_version: Option<u32>,
    pub versions: u32,
    pub created_at: i64,
    pub updated_at: i64,
    /// Present while the live version is paused in a crash loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<CrashLoopInfo>,
    /// The functions its live version says it calls (`calls` in its
    /// hearth.toml).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// The live functions that say they call it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub called_by: Vec<String>,
}

/// A crash-loop pause: how many workers died in a row, how long until the
/// next try, and why the last one died.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CrashLoopInfo {
    pub crashes: u32,
    pub retry_in_ms: u64,
    pub last_error: String,
}

/// The query of a function's generated documents (its OpenAPI document,
/// its page): which version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VersionQuery {
    /// The version to describe (default: the live one, else the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// `GET /api/v1/functions`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FunctionList {
    pub functions: Vec<FunctionInfo>,
}

/// One stored version (without its files).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VersionInfo {
    pub version: u32,
    pub hash: String,
    pub message: String,
    pub size_bytes: u64,
    pub file_count: u32,
    pub created_at: i64,
    pub manifest: Manifest,
}

/// `GET /api/v1/functions/{name}/versions`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VersionList {
    pub function: String,
    pub live_version: Option<u32>,
    pub versions: Vec<VersionInfo>,
}

/// The states a function is listed in (`state` of [`FunctionInfo`]).
pub const FUNCTION_STATES: [&str; 4] = ["draft", "live", "offline", "crash-loop"];

/// `GET /api/v1/functions?app=&category=&type=&runtime=&state=&search=`:
/// which functions to list (every condition given must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FunctionFilter {
    /// The application, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The category, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The type of the live version (the latest version's while none is
    /// live).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<FunctionType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeKind>,
    /// draft, live, offline or crash-loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(draft|live|offline|crash-loop)$"))]
    pub state: Option<String>,
    /// Text found, ignoring case, in the name, description or category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
}

/// The query of `DELETE /api/v1/functions/{name}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteQuery {
    /// Delete it even while other functions declare they call it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

impl FunctionFilter {
    /// Does `f` meet every condition?
    pub fn matches(&self, f: &FunctionInfo) -> bool {
        let has = |text: &str, needle: &str| text.to_lowercase().contains(needle);
        let search = self.search.as_ref().map(|s| s.to_lowercase());
        self.app.as_ref().is_none_or(|a| *a == f.app)
            && self
                .category
                .as_ref()
                .is_none_or(|c| c.to_lowercase() == f.category.to_lowercase())
            && self.kind.is_none_or(|k| k == f.kind)
            && self.runtime.is_none_or(|r| r.as_str() == f.runtime)
            && self.state.as_ref().is_none_or(|s| *s == f.state)
            && search
                .as_ref()
                .is_none_or(|s| has(&f.name, s) || has(&f.description, s) || has(&f.category, s))
    }

    /// From a query string (already split on `&` and `=`, decoded). An
    /// empty value is no condition.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Result<FunctionFilter, QueryError> {
        fn one_of<T>(
            param: &str,
            v: &str,
            parsed: Option<T>,
            values: &[&str],
        ) -> Result<T, QueryError> {
            parsed.ok_or_else(|| QueryError {
                param: param.to_owned(),
                problem: format!("`{v}` is not one of {}", values.join(", ")),
            })
        }
        let mut f = FunctionFilter::default();
        for (k, v) in pairs {
            if v.is_empty() {
                continue;
            }
            match k {
                "app" => f.app = Some(v),
                "category" => f.category = Some(v),
                "search" => f.search = Some(v),
                "type" => {
                    let names = FunctionType::ALL.map(FunctionType::as_str);
                    f.kind = Some(one_of(k, &v, FunctionType::parse(&v), &names)?)
                }
                "runtime" => {
                    let names = RuntimeKind::ALL.map(RuntimeKind::as_str);
                    f.runtime = Some(one_of(k, &v, RuntimeKind::parse(&v), &names)?)
                }
                "state" => {
                    let known = FUNCTION_STATES.contains(&v.as_str()).then_some(());
                    one_of(k, &v, known, &FUNCTION_STATES)?;
                    f.state = Some(v)
                }
                other => return Err(QueryError {
                    param: other.to_owned(),
                    problem:
                        "unknown; the conditions are app, category, type, runtime, state and search"
                            .into(),
                }),
            }
        }
        Ok(f)
    }

    /// As a query string (without `?`), for the CLI.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                parts.push(format!("{k}={}", encode(v)));
            }
        };
        add("app", self.app.as_deref());
        add("category", self.category.as_deref());
        add("type", self.kind.map(FunctionType::as_str));
        add("runtime", self.runtime.map(RuntimeKind::as_str));
        add("state", self.state.as_deref());
        add("search", self.search.as_deref());
        parts.join("&")
    }
}

/// `PUT /api/v1/functions/{name}`: a function's information, which is not
/// part of any version (a field left out stays as it is).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionEdit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// What `DELETE /api/v1/functions/{name}`, `POST .../offline` and
/// `POST .../online` did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FunctionStateOutcome {
    pub function: String,
    /// `deleted`, `offline`, or the state it is back in (`live`, `draft`).
    pub state: String,
    /// The live version (for a delete: the one that was live).
    pub live_version: Option<u32>,
    /// false when it already was in that state (nothing was recorded).
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, category: &str, description: &str) -> FunctionInfo {
        FunctionInfo {
            name: name.into(),
            runtime: "python".into(),
            app: "shop".into(),
            category: category.into(),
            description: description.into(),
            state: "live".into(),
            kind: FunctionType::Datasource,
            live_version: Some(1),
            versions: 1,
            created_at: 0,
            updated_at: 0,
            backoff: None,
            calls: Vec::new(),
            called_by: Vec::new(),
        }
    }

    fn pairs(q: &str) -> Result<FunctionFilter, QueryError> {
        FunctionFilter::from_pairs(q.split('&').filter(|p| !p.is_empty()).map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k, v.replace("%20", " "))
        }))
    }

    #[test]
    fn filters_match_and_round_trip() {
        let f = info("cart-items", "Commerce", "Lists what is in a cart");
        let q = pairs(
            "app=shop&category=commerce&type=datasource&runtime=python&state=live&search=IN%20A",
        )
        .expect("parse");
        assert!(q.matches(&f));
        assert_eq!(pairs(&q.to_query()).expect("again"), q);
        for miss in [
            "app=other",
            "category=comm",
            "type=field",
            "runtime=lua",
            "state=offline",
            "search=basket",
        ] {
            assert!(!pairs(miss).expect("parse").matches(&f), "{miss}");
        }
        assert!(pairs("app=&search=").expect("empty").matches(&f));
    }

    #[test]
    fn unknown_values_name_the_parameter_and_its_values() {
        let e = pairs("type=page2").expect_err("bad type");
        assert_eq!(e.param, "type");
        assert!(e.problem.contains("datasource"), "{}", e.problem);
        let e = pairs("runtime=ruby").expect_err("bad runtime");
        assert!(e.problem.contains("python, node, lua"), "{}", e.problem);
        let e = pairs("state=gone").expect_err("bad state");
        assert!(e.problem.contains("offline"), "{}", e.problem);
        assert_eq!(pairs("colour=red").expect_err("unknown").param, "colour");
    }
}
