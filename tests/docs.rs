//! Generated documents of functions: the OpenAPI 3.1 document of each
//! function and application (checked with openapi-spec-validator from
//! PyPI), `hearth docs`, the page at /docs/{name} with its call form, and
//! `hearth diff` between two versions.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{Daemon, FnDir};

/// Validate an OpenAPI document with openapi-spec-validator; None (and a
/// line saying why) when it is not installed.
fn validate_openapi(doc: &serde_json::Value) -> Option<Result<(), String>> {
    let python = std::env::var("HEARTH_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipping the OpenAPI validation: {python} cannot import openapi_spec_validator (scripts/setup --deps installs it)");
        return None;
    }
    let mut child = Command::new(&python)
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\nprint('valid')",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc.to_string().as_bytes())
        .expect("write document");
    let out = child.wait_with_output().expect("validator");
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

const PROGRAMS: &str = r#"
import hearth
PROGRAMS = {1: "News", 2: "Weather"}
def handler(event):
    title = PROGRAMS.get(event["id"])
    if title is None:
        raise hearth.Error("NOT_FOUND", "no program %d" % event["id"])
    return {"id": event["id"], "title": title}
"#;

const META: &str = r#"
type = "datasource"
category = "catalog"
description = "Programs by id"
[input]
type = "object"
required = ["id"]
properties.id = { type = "integer", minimum = 1, description = "the program's id", examples = [1] }
properties.lang = { type = "string", enum = ["en", "fr"], default = "en" }
properties.detail = { type = "boolean" }
[output]
type = "object"
required = ["id", "title"]
properties.id = { type = "integer" }
properties.title = { type = "string" }
[errors.NOT_FOUND]
status = 404
message = "no such program"
[errors.BUSY]
status = 503
message = "the catalog is busy"
retryable = true
"#;

#[test]
fn each_function_and_app_has_a_valid_openapi_document() {
    let d = Daemon::start();
    let f = FnDir::python_with("programs", PROGRAMS, META);
    d.ok(&["deploy", f.path()]);
    // A schema with internal references keeps them working.
    let g = FnDir::python_with(
        "tagged",
        "def handler(event):\n    return event\n",
        r##"[input]
type = "object"
properties.tag = { "$ref" = "#/$defs/tag" }
"$defs".tag = { type = "string", maxLength = 8 }
"##,
    );
    d.ok(&["deploy", g.path()]);
    // A page: called at /page/, its answer {data, errors}, its fields.
    let page = FnDir::new(
        "name = \"front\"\ntype = \"page\"\napp = \"tests\"\n[input]\ntype = \"object\"\nproperties.id = { type = \"integer\" }\n[fields.item]\nfn = \"programs\"\ninput = { id = \"$request.id\" }\nfallback = \"omit\"\n",
        &[],
    );
    d.ok(&["deploy", page.path()]);
    let page_doc = d.get("/api/v1/functions/front/openapi.json").json();
    let op = &page_doc["paths"]["/page/front"]["post"];
    assert_eq!(
        op["responses"]["200"]["content"]["application/json"]["schema"]["required"],
        serde_json::json!(["data", "errors"]),
        "{page_doc}"
    );
    assert_eq!(page_doc["x-hearth"]["fields"][0]["fn"], "programs");
    assert!(op["responses"]["502"]["description"]
        .as_str()
        .is_some_and(|t| t.contains("field_failed")));

    let doc = d.get("/api/v1/functions/programs/openapi.json");
    assert_eq!(doc.status, 200, "{}", doc.text());
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let op = &doc["paths"]["/fn/programs"]["post"];
    let body = &op["requestBody"]["content"]["application/json"];
    assert_eq!(body["schema"]["required"][0], "id", "{op}");
    assert_eq!(body["example"], serde_json::json!({"id": 1, "lang": "en"}));
    assert_eq!(
        op["responses"]["200"]["content"]["application/json"]["schema"]["required"][1],
        "title"
    );
    assert!(op["responses"]["404"]["description"]
        .as_str()
        .is_some_and(|t| t.contains("NOT_FOUND")));
    assert!(op["responses"]["400"]["description"]
        .as_str()
        .is_some_and(|t| t.contains("invalid_input")));
    assert_eq!(op["x-hearth-errors"]["BUSY"]["retryable"], true);
    assert_eq!(doc["x-hearth"]["type"], "datasource");
    // The example request is a call that works.
    let r = d.post("/fn/programs", &body["example"].to_string());
    assert_eq!(r.status, 200, "{}", r.text());

    let app = d.get("/api/v1/apps/tests/openapi.json").json();
    assert!(
        app["paths"]["/fn/programs"].is_object() && app["paths"]["/fn/tagged"].is_object(),
        "{app}"
    );
    assert_eq!(d.get("/api/v1/apps/nothing-here/openapi.json").status, 404);
    assert_eq!(d.get("/api/v1/functions/nothing/openapi.json").status, 404);

    assert!(app["paths"]["/page/front"].is_object(), "{app}");
    for doc in [
        doc,
        d.get("/api/v1/functions/tagged/openapi.json").json(),
        page_doc,
        app,
    ] {
        if let Some(result) = validate_openapi(&doc) {
            result.unwrap_or_else(|e| panic!("invalid OpenAPI document: {e}\n{doc}"));
        }
    }
}

#[test]
fn hearth_docs_prints_how_to_call_the_function() {
    let d = Daemon::start();
    let f = FnDir::python_with("programs", PROGRAMS, META);
    d.ok(&["deploy", f.path()]);
    let text = d.ok(&["docs", "programs"]);
    for wanted in [
        "# programs — datasource python, version 1",
        "Programs by id",
        "hearth invoke programs -d '{\"id\":1,\"lang\":\"en\"}'",
        "## Input",
        "| `/id` | integer | yes | minimum 1 | the program's id |",
        "| `/lang` | string | no |",
        "## Output",
        "| `NOT_FOUND` | 404 | no | no such program |",
        "| `BUSY` | 503 | yes |",
        "invalid_input",
        "Timeout 10000 ms",
        "/docs/programs",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
    }
    let openapi = d.ok(&["docs", "programs", "--openapi"]);
    let parsed: serde_json::Value = serde_json::from_str(&openapi).expect("json");
    assert_eq!(parsed["openapi"], "3.1.0");
    let err = d.fails(&["docs", "nothing"]);
    assert!(err.contains("nothing"), "{err}");
}

#[test]
fn the_docs_page_has_a_call_form_and_needs_a_token() {
    let d = Daemon::start();
    let f = FnDir::python_with("programs", PROGRAMS, META);
    d.ok(&["deploy", f.path()]);
    let auth = format!("Bearer {}", d.token);

    let page = common::http_anon(
        &d.addr,
        "GET",
        "/docs/programs",
        b"",
        &[("Authorization", &auth)],
    );
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text();
    for wanted in [
        r#"data-target="/fn/programs""#,
        r#"<input type="number" data-pointer="/id" data-type="integer" required min="1" step="1" value="1">"#,
        r#"<select data-pointer="/lang" data-type="json">"#,
        r#"<input type="checkbox" data-pointer="/detail" data-type="boolean">"#,
        "NOT_FOUND",
        "no such program",
        "<script>",
    ] {
        assert!(
            html.contains(wanted),
            "missing {wanted:?} in the page:\n{html}"
        );
    }
    // Nothing is fetched from elsewhere.
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );

    // Without a token: a sign-in page; with the page's cookie: the docs.
    let anon = common::http_anon(&d.addr, "GET", "/docs/programs", b"", &[]);
    assert_eq!(anon.status, 401);
    assert!(anon.text().contains("id=\"signin\""), "{}", anon.text());
    let cookie = format!("theme=dark; hearth_token={}", d.token);
    let by_cookie = common::http_anon(
        &d.addr,
        "GET",
        "/docs/programs",
        b"",
        &[("Cookie", &cookie)],
    );
    assert_eq!(by_cookie.status, 200, "{}", by_cookie.text());
    let bad = common::http_anon(
        &d.addr,
        "GET",
        "/docs/programs",
        b"",
        &[("Cookie", "hearth_token=hearth_nope_nope")],
    );
    assert_eq!(bad.status, 401);
    let missing = common::http_anon(
        &d.addr,
        "GET",
        "/docs/nothing",
        b"",
        &[("Authorization", &auth)],
    );
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("hearth deploy"),
        "{}",
        missing.text()
    );
}

#[test]
fn hearth_diff_shows_code_schema_and_limit_changes() {
    let d = Daemon::start();
    let v1 = FnDir::python_with(
        "changing",
        "def handler(event):\n    return {\"n\": 1}\n",
        "[limits]\ntimeout_ms = 1000\n[input]\ntype = \"object\"\nproperties.q = { type = \"string\" }",
    );
    d.ok(&["deploy", v1.path()]);
    let v2 = FnDir::python_with(
        "changing",
        "def handler(event):\n    return {\"n\": 2}\n",
        "[limits]\ntimeout_ms = 2000\n[input]\ntype = \"object\"\nrequired = [\"q\"]\nproperties.q = { type = \"string\" }",
    );
    v2.write("extra.txt", "new file\n");
    d.ok(&["deploy", v2.path(), "--no-publish"]);

    let out = d.ok(&["diff", "changing", "1", "2"]);
    for wanted in [
        "version 1 → 2",
        "limits.timeout_ms: 1000 → 2000",
        "input:",
        "/q: property `q` is now required",
        "changed main.py",
        "added extra.txt",
        "-    return {\"n\": 1}",
        "+    return {\"n\": 2}",
        "--- changing@1/main.py",
    ] {
        assert!(out.contains(wanted), "missing {wanted:?} in:\n{out}");
    }
    let api = d.get("/api/v1/functions/changing/diff?from=1&to=2").json();
    assert_eq!(api["files"].as_array().map(Vec::len), Some(3), "{api}"); // hearth.toml, main.py, extra.txt
    assert!(d.ok(&["diff", "changing", "2", "2"]).contains("no changes"));
    let err = d.fails(&["diff", "changing", "1", "9"]);
    assert!(err.contains("no version 9"), "{err}");
    assert_eq!(d.get("/api/v1/functions/changing/diff?from=1").status, 400);
}
