//! Function metadata that does work: input schemas refuse bad events before
//! the function runs (HTTP and nested calls), output schemas are checked as
//! `output_validation` says, declared error codes reach callers with their
//! status from every runtime, and bad metadata is refused at deploy.

mod common;

use common::{Daemon, FnDir};

/// A Python function counting its calls in a file of its private /tmp, so
/// a test can tell whether it ran.
const COUNTING: &str = r#"
import json, os
def handler(event):
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "calls")
    n = int(open(path).read()) + 1 if os.path.exists(path) else 1
    open(path, "w").write(str(n))
    return {"calls": n, "got": event}
"#;

const INPUT: &str = r#"
[input]
type = "object"
required = ["id", "user"]
additionalProperties = false
properties.id = { type = "integer", minimum = 1 }
properties.tags = { type = "array", items = { type = "string" } }
[input.properties.user]
type = "object"
required = ["name"]
properties.name = { type = "string", minLength = 1 }
"#;

fn pointers(reply: &common::Reply) -> Vec<String> {
    reply.json()["error"]["failures"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["pointer"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn invalid_inputs_get_400_with_pointers_and_the_function_never_runs() {
    let d = Daemon::start();
    let f = FnDir::python_with("checked", COUNTING, INPUT);
    d.ok(&["deploy", f.path()]);

    let good = d.post("/fn/checked", r#"{"id": 3, "user": {"name": "Ada"}}"#);
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(good.json()["calls"], 1);

    // Missing required, wrong type, extra field where forbidden, nested.
    let cases: [(&str, &[&str]); 5] = [
        (r#"{"user": {"name": "Ada"}}"#, &[""]),
        (r#"{"id": "3", "user": {"name": "Ada"}}"#, &["/id"]),
        (r#"{"id": 3, "user": {"name": "Ada"}, "extra": 1}"#, &[""]),
        (
            r#"{"id": 3, "user": {"name": ""}, "tags": ["a", 7]}"#,
            &["/user/name", "/tags/1"],
        ),
        (r#"[1, 2]"#, &[""]),
    ];
    for (body, wanted) in cases {
        let r = d.post("/fn/checked", body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["code"], "invalid_input", "{body}: {e}");
        assert_eq!(e["function"], "checked");
        let got = pointers(&r);
        for w in wanted {
            assert!(got.iter().any(|p| p == w), "{body}: wanted {w} in {got:?}");
        }
        for f in e["failures"].as_array().expect("failures") {
            assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()), "{f}");
            assert!(f["keyword"].as_str().is_some(), "{f}");
        }
        assert!(
            e["hint"]
                .as_str()
                .is_some_and(|h| h.contains("hearth docs checked")),
            "{e}"
        );
    }
    // The function ran once, for the good call only.
    let again = d.post("/fn/checked", r#"{"id": 4, "user": {"name": "Bo"}}"#);
    assert_eq!(again.json()["calls"], 2, "{}", again.text());

    // The refused calls are recorded as invalid_input.
    let refused = || {
        let list = d.get("/api/v1/functions/checked/calls?status=error").json();
        list["calls"]
            .as_array()
            .map(|calls| {
                calls
                    .iter()
                    .filter(|c| c["code"] == "invalid_input")
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(common::eventually(5, || refused() >= 5), "{}", refused());
}

#[test]
fn nested_calls_are_validated_against_the_callees_schema() {
    let d = Daemon::start();
    let callee = FnDir::python_with("strict", COUNTING, INPUT);
    d.ok(&["deploy", callee.path()]);
    let caller = FnDir::python_with(
        "asker",
        r#"
import hearth
def handler(event, context):
    try:
        return {"value": context.invoke("strict", event)}
    except hearth.InvokeError as e:
        return {"code": e.code, "message": e.message, "retryable": e.retryable}
"#,
        "calls = [\"strict\"]",
    );
    d.ok(&["deploy", caller.path()]);
    let r = d.post("/fn/asker", r#"{"id": 0, "user": {"name": "Ada"}}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], "invalid_input", "{v}");
    assert!(
        v["message"].as_str().is_some_and(|m| m.contains("/id")),
        "{v}"
    );
    assert_eq!(v["retryable"], false);
    let ok = d.post("/fn/asker", r#"{"id": 1, "user": {"name": "Ada"}}"#);
    assert_eq!(ok.json()["value"]["calls"], 1, "{}", ok.text());
}

const OUTPUT: &str = r#"
[output]
type = "object"
required = ["title"]
properties.title = { type = "string" }
"#;

const SOMETIMES_BAD: &str = r#"
def handler(event):
    if event.get("bad"):
        return {"title": 42}
    return {"title": "ok"}
"#;

#[test]
fn output_validation_is_off_log_or_enforce() {
    let d = Daemon::start();
    for mode in ["off", "log", "enforce"] {
        let name = format!("out-{mode}");
        let f = FnDir::python_with(
            &name,
            SOMETIMES_BAD,
            &format!("output_validation = \"{mode}\"\n{OUTPUT}"),
        );
        d.ok(&["deploy", f.path()]);
        let good = d.post(&format!("/fn/{name}"), "{}");
        assert_eq!(good.status, 200, "{mode}: {}", good.text());
        let bad = d.post(&format!("/fn/{name}"), r#"{"bad": true}"#);
        match mode {
            "enforce" => {
                assert_eq!(bad.status, 500, "{}", bad.text());
                let e = &bad.json()["error"];
                assert_eq!(e["code"], "invalid_output");
                assert_eq!(pointers(&bad), vec!["/title".to_owned()]);
            }
            _ => {
                assert_eq!(bad.status, 200, "{mode}: {}", bad.text());
                assert_eq!(bad.json()["title"], 42);
            }
        }
    }
    // log and enforce count what did not match; off checks nothing.
    let auth = format!("Bearer {}", d.token);
    let metrics =
        common::http_anon(&d.addr, "GET", "/metrics", b"", &[("Authorization", &auth)]).text();
    let count = |mode: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("hearth_output_invalid_total")
                    && l.contains(&format!("function=\"out-{mode}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    assert_eq!(count("log"), Some(1.0), "{metrics}");
    assert_eq!(count("enforce"), Some(1.0));
    assert_eq!(count("off"), None);
    assert!(d
        .log()
        .contains("does not match the function's [output] schema"));
}

#[test]
fn bad_metadata_is_refused_at_deploy_naming_the_key() {
    let d = Daemon::start();
    let cases = [
        ("[input]\ntype = \"objekt\"", "/type"),
        ("type = \"datasource\"", "`output`"),
        ("[input]\nschema = \"schema/in.json\"", "schema/in.json"),
        (
            "[errors.NOT_FOUND]\nstatus = 700\nmessage = \"x\"",
            "errors.NOT_FOUND.status",
        ),
        (
            "[errors.timeout]\nstatus = 504\nmessage = \"x\"",
            "hearth's own",
        ),
        ("output_validation = \"always\"", "output_validation"),
    ];
    for (extra, wanted) in cases {
        let f = FnDir::python_with("bad-meta", "def handler(e):\n    return 1\n", extra);
        let err = d.fails(&["deploy", f.path()]);
        assert!(err.contains(wanted), "{extra}: {err}");
    }
    // Nothing was stored.
    assert_eq!(d.get("/api/v1/functions/bad-meta").status, 404);

    // A schema in a file shipped with the code; a bad one says where.
    let f = FnDir::python_with("filed", COUNTING, "[input]\nschema = \"schema/input.json\"");
    std::fs::create_dir_all(f.dir.path().join("schema")).expect("mkdir");
    f.write(
        "schema/input.json",
        r#"{"type": "object", "properties": {"id": {"type": "integer", "minimum": "one"}}}"#,
    );
    let err = d.fails(&["deploy", f.path()]);
    assert!(
        err.contains("schema/input.json") && err.contains("/properties/id/minimum"),
        "{err}"
    );
    f.write(
        "schema/input.json",
        r#"{"type": "object", "required": ["id"]}"#,
    );
    d.ok(&["deploy", f.path()]);
    assert_eq!(d.post("/fn/filed", "{}").status, 400);
    assert_eq!(d.post("/fn/filed", r#"{"id": 1}"#).status, 200);
    // The version keeps the schema itself, and where it came from.
    let versions = d.get("/api/v1/functions/filed/versions").json();
    let m = &versions["versions"][0]["manifest"];
    assert_eq!(m["input"]["required"][0], "id", "{m}");
    assert_eq!(m["schema_files"]["input"], "schema/input.json");
}

fn schema_fn(name: &str, input: &str) -> FnDir {
    FnDir::python_with(
        name,
        "def handler(event):\n    return event\n",
        &format!("[input]\ntype = \"object\"\n{input}"),
    )
}

#[test]
fn publishing_a_breaking_input_schema_needs_allow_breaking() {
    let d = Daemon::start();
    let v1 = schema_fn(
        "guarded",
        "required = [\"id\"]\nproperties.id = { type = \"integer\" }\nproperties.q = { type = \"string\" }",
    );
    d.ok(&["deploy", v1.path()]);

    // A compatible change (a new optional field, a wider type) goes live.
    let v2 = schema_fn(
        "guarded",
        "required = [\"id\"]\nproperties.id = { type = \"number\" }\nproperties.q = { type = \"string\" }\nproperties.limit = { type = \"integer\" }",
    );
    let out = d.ok(&["deploy", v2.path()]);
    assert!(out.contains("version 2") && out.contains("live"), "{out}");

    // A new required field, a removed one, a narrowed type: stored, not live.
    let v3 = schema_fn(
        "guarded",
        "required = [\"id\", \"user\"]\nproperties.id = { type = \"integer\" }\nproperties.user = { type = \"string\" }\nproperties.limit = { type = \"integer\" }",
    );
    let err = d.fails(&["deploy", v3.path()]);
    assert!(
        err.contains("breaking") || err.contains("can break"),
        "{err}"
    );
    assert!(err.contains("/user") && err.contains("required"), "{err}");
    assert!(err.contains("/q") && err.contains("removed"), "{err}");
    assert!(err.contains("/id") && err.contains("narrowed"), "{err}");
    assert!(err.contains("--allow-breaking"), "{err}");
    let f = d.get("/api/v1/functions/guarded").json();
    assert_eq!(f["live_version"], 2, "{f}");
    assert_eq!(f["versions"], 3, "{f}");

    // The API says the same, with the code.
    let r = d.post("/api/v1/functions/guarded/publish", r#"{"version": 3}"#);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "breaking_change");
    let r = d.post(
        "/api/v1/publish",
        r#"{"releases": [{"function": "guarded", "version": 3}]}"#,
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("can break"), "{}", r.text());

    // With --allow-breaking it goes live, and the changes are warned of.
    let out = d.cli(&["publish", "guarded", "--version", "3", "--allow-breaking"]);
    assert!(out.status.success(), "{out:?}");
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("warning") && warned.contains("/user"),
        "{warned}"
    );
    assert_eq!(d.get("/api/v1/functions/guarded").json()["live_version"], 3);
    // Rolling back is never held up.
    d.ok(&["rollback", "guarded"]);
    assert_eq!(d.get("/api/v1/functions/guarded").json()["live_version"], 2);
    // Deploy --allow-breaking publishes at once.
    let v4 = schema_fn(
        "guarded",
        "required = [\"id\", \"token\"]\nproperties.id = { type = \"integer\" }",
    );
    let out = d.cli(&["deploy", v4.path(), "--allow-breaking"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/token"));
    assert_eq!(d.get("/api/v1/functions/guarded").json()["live_version"], 4);
}

const ERRORS: &str = r#"
[errors.NOT_FOUND]
status = 404
message = "no such program"
[errors.BUSY]
status = 503
message = "the catalogue is being rebuilt"
retryable = true
"#;

/// A function in `runtime` that raises the code named by the event's
/// `code` (or answers when there is none).
fn raiser(runtime: &str, name: &str) -> FnDir {
    let manifest = |entry: &str| {
        format!("name = \"{name}\"\nruntime = \"{runtime}\"\nentry = \"{entry}\"\napp = \"tests\"\n{ERRORS}")
    };
    match runtime {
        "python" => FnDir::new(
            &manifest("main.handler"),
            &[(
                "main.py",
                "import hearth\n\ndef handler(event):\n    if event.get(\"code\"):\n        raise hearth.Error(event[\"code\"], \"no program %s\" % event.get(\"id\"))\n    return {\"ok\": True}\n",
            )],
        ),
        "node" => FnDir::new(
            &manifest("main.handler"),
            &[(
                "main.js",
                "const { HearthError } = require('hearth');\nexports.handler = async (event, context) => {\n  if (event.code === 'BUSY') throw new context.HearthError('BUSY', `no program ${event.id}`);\n  if (event.code) throw new HearthError(event.code, `no program ${event.id}`);\n  return { ok: true };\n};\n",
            )],
        ),
        _ => FnDir::new(
            &manifest("main.handler"),
            &[(
                "main.lua",
                "local M = {}\nfunction M.handler(event)\n  if event.code then\n    error({ code = event.code, message = \"no program \" .. tostring(event.id) })\n  end\n  return { ok = true }\nend\nreturn M\n",
            )],
        ),
    }
}

#[test]
fn declared_error_codes_reach_the_caller_with_their_status_from_every_runtime() {
    let d = Daemon::start();
    for runtime in ["python", "node", "lua"] {
        let name = format!("raise-{runtime}");
        let f = raiser(runtime, &name);
        d.ok(&["deploy", f.path()]);
        let path = format!("/fn/{name}");
        assert_eq!(d.post(&path, "{}").status, 200, "{runtime}");

        let r = d.post(&path, r#"{"code": "NOT_FOUND", "id": 42}"#);
        assert_eq!(r.status, 404, "{runtime}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["code"], "NOT_FOUND", "{runtime}: {e}");
        assert_eq!(e["message"], "no program 42", "{runtime}: {e}");
        assert_eq!(e["retryable"], false, "{runtime}: {e}");
        assert_eq!(e["function"], name.as_str());
        assert!(
            e["hint"]
                .as_str()
                .is_some_and(|h| h.contains("no such program")),
            "{e}"
        );

        let r = d.post(&path, r#"{"code": "BUSY", "id": 1}"#);
        assert_eq!(r.status, 503, "{runtime}: {}", r.text());
        assert_eq!(r.json()["error"]["retryable"], true, "{runtime}");

        // An undeclared code is a 500 that says so.
        let r = d.post(&path, r#"{"code": "GONE", "id": 1}"#);
        assert_eq!(r.status, 500, "{runtime}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["code"], "undeclared_error", "{runtime}: {e}");
        let m = e["message"].as_str().unwrap_or_default();
        assert!(
            m.contains("GONE") && m.contains("does not declare") && m.contains("NOT_FOUND"),
            "{runtime}: {m}"
        );
    }
    // The records and statistics count the function's own code.
    let found = || {
        d.get("/api/v1/functions/raise-lua/calls?status=error")
            .json()["calls"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["code"] == "NOT_FOUND"))
    };
    assert!(common::eventually(5, found));
}

#[test]
fn a_nested_caller_gets_the_callees_declared_code() {
    let d = Daemon::start();
    let callee = raiser("lua", "lookup");
    d.ok(&["deploy", callee.path()]);
    let caller = FnDir::python_with(
        "asks-lookup",
        r#"
import hearth
def handler(event, context):
    try:
        return context.invoke("lookup", event)
    except hearth.InvokeError as e:
        return {"code": e.code, "message": e.message, "retryable": e.retryable}
"#,
        "calls = [\"lookup\"]",
    );
    d.ok(&["deploy", caller.path()]);
    let v = d
        .post("/fn/asks-lookup", r#"{"code": "BUSY", "id": 7}"#)
        .json();
    assert_eq!(v["code"], "BUSY", "{v}");
    assert_eq!(v["message"], "no program 7");
    assert_eq!(v["retryable"], true);
    let v = d
        .post("/fn/asks-lookup", r#"{"code": "NOT_FOUND", "id": 7}"#)
        .json();
    assert_eq!(
        (v["code"].as_str(), v["retryable"].as_bool()),
        (Some("NOT_FOUND"), Some(false)),
        "{v}"
    );
}
