//! `GET /api/v1/openapi.json`: the document is valid OpenAPI 3.1 (checked
//! by openapi-spec-validator, from PyPI), and real answers of a real daemon
//! (every JSON route, and some errors) match the schemas it gives for their
//! operation and status (checked with the `jsonschema` crate).

mod common;

use std::process::Command;

use common::{deploy_body, eventually, http, http_anon, Daemon, Reply};
use serde_json::{json, Value};

const DOC: &str = "/api/v1/openapi.json";

fn python() -> String {
    std::env::var("HEARTH_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The document the daemon serves.
fn fetch(d: &Daemon) -> Value {
    let reply = d.get(DOC);
    assert_eq!(reply.status, 200, "{DOC}: {}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{DOC}'s content type"
    );
    reply.json()
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let d = Daemon::start();
    let doc = fetch(&d);
    assert_eq!(doc["openapi"], "3.1.0");
    let py = python();
    let importable = Command::new(&py)
        .args(["-c", "import openapi_spec_validator"])
        .output();
    match importable {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipping: {py} cannot import openapi_spec_validator ({}); `scripts/setup --deps` installs it (pip install openapi-spec-validator)",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no error message")
            );
            return;
        }
        Err(e) => {
            eprintln!("skipping: cannot run {py} ({e}); set HEARTH_PYTHON or install Python 3 and `scripts/setup --deps`");
            return;
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, d.get(DOC).body).expect("write the document");
    let out = Command::new(&py)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The document, and what each real answer was checked against.
struct Spec {
    doc: Value,
    checked: Vec<String>,
}

impl Spec {
    /// Check `reply`, the answer to `method` on the route `template`,
    /// against the document: its status must be listed for the operation,
    /// its content type too, and its body must match the schema there.
    fn check(&mut self, method: &str, template: &str, reply: &Reply) {
        let route = format!("{method} {template}");
        let op = &self.doc["paths"][template][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{route} is not in the document");
        let status = reply.status.to_string();
        let response = op["responses"].get(&status).unwrap_or_else(|| {
            panic!(
                "{route} answered {status}, which its operation does not list (it lists {:?}): {}",
                op["responses"]
                    .as_object()
                    .map(|r| r.keys().cloned().collect::<Vec<_>>()),
                reply.text()
            )
        });
        let media = reply
            .header("content-type")
            .and_then(|c| c.split(';').next())
            .map(str::trim)
            .unwrap_or("")
            .to_owned();
        let content = &response["content"][&media];
        assert!(
            content.is_object(),
            "{route} answered {status} with content type {media:?}, which the document does not give: {}",
            response["content"]
        );
        if media == "application/json" {
            if let Some(codes) = response["x-hearth-codes"].as_array() {
                let code = reply.code();
                assert!(
                    codes.contains(&json!(code)),
                    "{route} answered {status} with error code {code}, which the document does not list for it ({codes:?})"
                );
            }
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
                panic!("{route} answered {status} with a body that is not JSON ({e})")
            });
            let errors = self.mismatches(&content["schema"], &body, &route);
            assert!(
                errors.is_empty(),
                "{route} answered {status} with a body that does not match the document:\n  {}\nbody: {body}",
                errors.join("\n  ")
            );
        }
        self.checked.push(format!("{route} {status}"));
    }

    /// How `body` does not match `schema` (a schema of the document,
    /// whose `$ref`s point into its components), one line each.
    fn mismatches(&self, schema: &Value, body: &Value, route: &str) -> Vec<String> {
        let whole = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": {"schemas": self.doc["components"]["schemas"]},
        });
        let validator = jsonschema::draft202012::options()
            .build(&whole)
            .unwrap_or_else(|e| {
                panic!("{route}: the document's schema {schema} does not compile: {e}")
            });
        validator
            .iter_errors(body)
            .map(|e| format!("at {}: {e}", e.instance_path()))
            .collect()
    }

    /// The JSON schema of `method template`'s answer with `status`.
    fn schema_of(&self, method: &str, template: &str, status: &str) -> &Value {
        let schema = &self.doc["paths"][template][method.to_ascii_lowercase()]["responses"][status]
            ["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {template} has no JSON answer {status}"
        );
        schema
    }
}

/// The head of a server-sent events answer, as a reply without a body,
/// and the `data` of the events that came within 10 s (at least `want`).
fn events(d: &Daemon, path: &str, want: usize) -> (Reply, Vec<Value>) {
    use std::io::Read;
    let mut stream = common::start_request(&d.addr, "GET", path, 0, &[], b"");
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .expect("read timeout");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let data = |raw: &[u8]| -> Vec<Value> {
        String::from_utf8_lossy(raw)
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("an event's data is JSON"))
            .collect()
    };
    while std::time::Instant::now() < end && data(&raw).len() < want {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no answer to GET {path}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let events = data(&raw[split..]);
    let reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    (reply, events)
}

fn send(d: &Daemon, method: &str, path: &str, body: &str) -> Reply {
    http(&d.addr, method, path, body.as_bytes())
}

/// A deploy body for a Python function `name` of application `tests`,
/// whose input is an object with an optional string `name`.
fn function(name: &str, code: &str) -> String {
    let manifest = format!(
        "name = \"{name}\"\nruntime = \"python\"\nentry = \"main.handler\"\napp = \"tests\"\n\n[input]\ntype = \"object\"\nproperties.name = {{ type = \"string\" }}\n"
    );
    deploy_body(&[
        ("hearth.toml", manifest.as_bytes()),
        ("main.py", code.as_bytes()),
    ])
}

fn with_message(body: &str, message: &str, publish: bool) -> String {
    let mut v: Value = serde_json::from_str(body).expect("deploy body");
    v["message"] = json!(message);
    v["publish"] = json!(publish);
    v.to_string()
}

#[test]
fn real_answers_match_the_document() {
    let d = Daemon::start();
    let mut spec = Spec {
        doc: fetch(&d),
        checked: Vec::new(),
    };
    let s = &mut spec;

    // The document itself, and health without a token.
    s.check("GET", DOC, &d.get(DOC));
    let health = http_anon(&d.addr, "GET", "/api/v1/health", b"", &[]);
    s.check("GET", "/api/v1/health", &health);

    // Deploy: a new version (201), the same code again (200), a draft.
    let v1 = function(
        "hello",
        "def handler(event):\n    print('greeting', event.get('name'))\n    return {'greeting': 'Hello, ' + str(event.get('name', 'world'))}\n",
    );
    let reply = send(&d, "POST", "/api/v1/deploy", &v1);
    assert_eq!(reply.status, 201, "{}", reply.text());
    s.check("POST", "/api/v1/deploy", &reply);
    let reply = send(&d, "POST", "/api/v1/deploy", &v1);
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("POST", "/api/v1/deploy", &reply);
    let v2 = function(
        "hello",
        "def handler(event):\n    return {'greeting': 'Hi, ' + str(event.get('name', 'world'))}\n",
    );
    let reply = send(
        &d,
        "POST",
        "/api/v1/deploy",
        &with_message(&v2, "say hi", false),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    s.check("POST", "/api/v1/deploy", &reply);
    let boom = function(
        "boom",
        "def handler(event):\n    raise ValueError('bad input')\n",
    );
    let reply = send(&d, "POST", "/api/v1/deploy", &boom);
    s.check("POST", "/api/v1/deploy", &reply);

    // Calls: POST with a JSON body, GET with a query; a function's error.
    let call = d.post("/fn/hello", r#"{"name":"Ada"}"#);
    assert_eq!(call.status, 200, "{}", call.text());
    s.check("POST", "/fn/{target}", &call);
    let request_id = call
        .header("x-request-id")
        .expect("x-request-id on a call's answer")
        .to_owned();
    let reply = d.get("/fn/hello@1?name=Grace");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("GET", "/fn/{target}", &reply);
    let reply = d.post("/fn/boom", "{}");
    assert_eq!(reply.code(), "function_error", "{}", reply.text());
    s.check("POST", "/fn/{target}", &reply);

    // A page: its answer, a partial one, a required field failing it, and
    // a function called at /page/.
    let page = deploy_body(&[(
        "hearth.toml",
        b"name = \"home\"\ntype = \"page\"\napp = \"tests\"\n[fields.greeting]\nfn = \"hello\"\ninput = { name = \"$request.who\" }\n[fields.rows.broken]\nfn = \"boom\"\nfallback = \"omit\"\n",
    )]);
    let reply = send(&d, "POST", "/api/v1/deploy", &page);
    assert_eq!(reply.status, 201, "{}", reply.text());
    let reply = d.post("/page/home", r#"{"who":"Ada"}"#);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["errors"][0]["field"], "rows.broken");
    s.check("POST", "/page/{target}", &reply);
    let reply = d.post("/page/hello", "{}");
    assert_eq!(reply.code(), "not_a_page", "{}", reply.text());
    s.check("POST", "/page/{target}", &reply);
    let required = deploy_body(&[(
        "hearth.toml",
        b"name = \"home\"\ntype = \"page\"\napp = \"tests\"\n[fields.broken]\nfn = \"boom\"\nrequired = true\n",
    )]);
    let reply = send(&d, "POST", "/api/v1/deploy", &required);
    assert_eq!(reply.status, 201, "{}", reply.text());
    let reply = d.post("/page/home", "{}");
    assert_eq!(reply.code(), "field_failed", "{}", reply.text());
    assert_eq!(reply.json()["error"]["field"], "broken");
    s.check("POST", "/page/{target}", &reply);
    let reply = d.post("/fn/hello", r#"{"name": 5}"#);
    assert_eq!(reply.code(), "invalid_input", "{}", reply.text());
    assert!(
        reply.json()["error"]["failures"].is_array(),
        "{}",
        reply.text()
    );
    s.check("POST", "/fn/{target}", &reply);
    let reply = d.post("/fn/nobody", "{}");
    assert_eq!(reply.code(), "function_not_found", "{}", reply.text());
    s.check("POST", "/fn/{target}", &reply);

    // Functions, versions, releases.
    let functions = d.get("/api/v1/functions");
    s.check("GET", "/api/v1/functions", &functions);
    // The check itself refuses what does not match: a count as text, a
    // field left out, an error without its code.
    let mut wrong = functions.json();
    wrong["functions"][0]["versions"] = json!("two");
    let schema = s.schema_of("GET", "/api/v1/functions", "200");
    let found = s.mismatches(schema, &wrong, "GET /api/v1/functions");
    assert!(
        found.iter().any(|e| e.contains("/functions/0/versions")),
        "a wrong list passed: {found:?}"
    );
    let mut wrong = functions.json();
    if let Some(f) = wrong["functions"][0].as_object_mut() {
        f.remove("runtime");
    }
    assert!(!s
        .mismatches(schema, &wrong, "GET /api/v1/functions")
        .is_empty());
    let schema = s.schema_of("GET", "/api/v1/functions/{name}", "404");
    let no_code = json!({"error": {"message": "no function named \"nope\""}});
    assert!(!s
        .mismatches(schema, &no_code, "GET /api/v1/functions/{name}")
        .is_empty());
    s.check(
        "GET",
        "/api/v1/functions/{name}",
        &d.get("/api/v1/functions/hello"),
    );
    s.check(
        "GET",
        "/api/v1/functions/{name}/versions",
        &d.get("/api/v1/functions/hello/versions"),
    );
    let reply = send(
        &d,
        "POST",
        "/api/v1/functions/hello/publish",
        r#"{"version": 2, "message": "go"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("POST", "/api/v1/functions/{name}/publish", &reply);
    let reply = send(&d, "POST", "/api/v1/functions/hello/rollback", "{}");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("POST", "/api/v1/functions/{name}/rollback", &reply);
    let reply = send(&d, "POST", "/api/v1/functions/boom/rollback", "{}");
    assert_eq!(reply.code(), "nothing_to_roll_back", "{}", reply.text());
    s.check("POST", "/api/v1/functions/{name}/rollback", &reply);
    let reply = send(
        &d,
        "POST",
        "/api/v1/publish",
        r#"{"releases": [{"function": "hello", "version": 2}], "message": "batch"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("POST", "/api/v1/publish", &reply);
    s.check(
        "GET",
        "/api/v1/functions/{name}/releases",
        &d.get("/api/v1/functions/hello/releases"),
    );

    // Generated documents of functions, and a diff of two versions.
    let reply = d.get("/api/v1/functions/hello/openapi.json?version=2");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("GET", "/api/v1/functions/{name}/openapi.json", &reply);
    let reply = d.get("/api/v1/apps/tests/openapi.json");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("GET", "/api/v1/apps/{name}/openapi.json", &reply);
    let reply = d.get("/api/v1/functions/hello/diff?from=1&to=2");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("GET", "/api/v1/functions/{name}/diff", &reply);
    let reply = d.get("/api/v1/functions/hello/diff?from=1&to=9");
    assert_eq!(reply.code(), "version_not_found", "{}", reply.text());
    s.check("GET", "/api/v1/functions/{name}/diff", &reply);
    let admin = format!("Bearer {}", d.token);
    let page = common::http_with(
        &d.addr,
        "GET",
        "/docs/hello",
        b"",
        &[("Authorization", &admin)],
    );
    assert_eq!(page.status, 200, "{}", page.text());
    s.check("GET", "/docs/{name}", &page);
    let page = common::http_with(
        &d.addr,
        "GET",
        "/docs/nope",
        b"",
        &[("Authorization", &admin)],
    );
    assert_eq!(page.status, 404, "{}", page.text());
    s.check("GET", "/docs/{name}", &page);

    // Aliases, with a canary split.
    let reply = send(
        &d,
        "PUT",
        "/api/v1/functions/hello/aliases/prod",
        r#"{"version": 1, "split": {"version": 2, "weight": 10}, "message": "canary"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("PUT", "/api/v1/functions/{name}/aliases/{alias}", &reply);
    let reply = send(
        &d,
        "POST",
        "/api/v1/functions/hello/aliases/prod",
        r#"{"version": 2}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("POST", "/api/v1/functions/{name}/aliases/{alias}", &reply);
    s.check(
        "GET",
        "/api/v1/functions/{name}/aliases",
        &d.get("/api/v1/functions/hello/aliases"),
    );
    let reply = d.post("/fn/hello@prod", "{}");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("POST", "/fn/{target}", &reply);

    // Applications.
    s.check("GET", "/api/v1/apps", &d.get("/api/v1/apps"));
    let reply = send(
        &d,
        "PUT",
        "/api/v1/apps/tests",
        r#"{"max_workers": 8, "invoke": "open"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("PUT", "/api/v1/apps/{name}", &reply);
    let reply = send(&d, "POST", "/api/v1/apps/tests", r#"{"max_workers": 6}"#);
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("POST", "/api/v1/apps/{name}", &reply);

    // Tokens: a read token may fetch the document, then it is revoked.
    let reply = send(
        &d,
        "POST",
        "/api/v1/tokens",
        r#"{"name": "reader", "scopes": ["read"]}"#,
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    s.check("POST", "/api/v1/tokens", &reply);
    let reader = reply.json()["token"]
        .as_str()
        .expect("the token in the answer")
        .to_owned();
    let bearer = format!("Bearer {reader}");
    let with_read = http_anon(&d.addr, "GET", DOC, b"", &[("Authorization", &bearer)]);
    assert_eq!(with_read.status, 200, "a read token: {}", with_read.text());
    s.check("GET", DOC, &with_read);
    let denied = http_anon(
        &d.addr,
        "POST",
        "/api/v1/gc",
        br#"{"dry_run": true}"#,
        &[("Authorization", &bearer)],
    );
    assert_eq!(denied.code(), "forbidden", "{}", denied.text());
    s.check("POST", "/api/v1/gc", &denied);
    s.check("GET", "/api/v1/tokens", &d.get("/api/v1/tokens"));
    let reply = send(&d, "DELETE", "/api/v1/tokens/reader", "");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("DELETE", "/api/v1/tokens/{name}", &reply);
    let reply = send(&d, "DELETE", "/api/v1/tokens/reader", "");
    assert_eq!(reply.code(), "token_not_found", "{}", reply.text());
    s.check("DELETE", "/api/v1/tokens/{name}", &reply);
    let anon = http_anon(&d.addr, "GET", DOC, b"", &[]);
    assert_eq!(anon.code(), "unauthorized", "{}", anon.text());
    s.check("GET", DOC, &anon);

    // Workers and statistics.
    s.check("GET", "/api/v1/workers", &d.get("/api/v1/workers"));
    let reply = d.get("/api/v1/apps/tests/stats?window=24h");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.json()["calls"].as_u64() > Some(0), "{}", reply.text());
    s.check("GET", "/api/v1/apps/{name}/stats", &reply);
    let reply = d.get("/api/v1/functions/hello/stats");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("GET", "/api/v1/functions/{name}/stats", &reply);
    let reply = d.get("/api/v1/functions/hello/stats?window=2h");
    assert_eq!(reply.code(), "bad_request", "{}", reply.text());
    s.check("GET", "/api/v1/functions/{name}/stats", &reply);
    let reply = d.get("/api/v1/apps/nothing-here/stats");
    assert_eq!(reply.code(), "app_not_found", "{}", reply.text());
    s.check("GET", "/api/v1/apps/{name}/stats", &reply);

    // Call records: the list (once the first call's record is written)
    // and one record.
    let mut list = None;
    assert!(
        eventually(10, || {
            let reply = d.get("/api/v1/functions/hello/calls?status=ok&limit=10");
            let found = reply.json()["calls"]
                .as_array()
                .is_some_and(|c| c.iter().any(|r| r["request_id"] == request_id.as_str()));
            list = Some(reply);
            found
        }),
        "the record of call {request_id} was not listed"
    );
    let list = list.expect("a list");
    s.check("GET", "/api/v1/functions/{name}/calls", &list);
    let reply = d.get(&format!("/api/v1/calls/{request_id}"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        !reply.json()["log"].as_array().is_some_and(Vec::is_empty),
        "the record keeps what the call printed: {}",
        reply.text()
    );
    s.check("GET", "/api/v1/calls/{request_id}", &reply);
    let reply = d.get("/api/v1/calls/no-such-call");
    assert_eq!(reply.code(), "call_not_found", "{}", reply.text());
    s.check("GET", "/api/v1/calls/{request_id}", &reply);
    let reply = d.get("/api/v1/functions/hello/calls?colour=red");
    assert_eq!(reply.code(), "bad_request", "{}", reply.text());
    s.check("GET", "/api/v1/functions/{name}/calls", &reply);

    // The stream of records, from the first: text/event-stream, and each
    // event's data a record as the document gives it.
    let (head, records) = events(&d, "/api/v1/functions/hello/calls/stream?after_seq=0", 2);
    s.check("GET", "/api/v1/functions/{name}/calls/stream", &head);
    assert!(records.len() >= 2, "the stream sent {records:?}");
    let data = &s.doc["paths"]["/api/v1/functions/{name}/calls/stream"]["get"]["responses"]["200"]
        ["content"]["text/event-stream"]["x-hearth-event-data"];
    for record in &records {
        let errors = s.mismatches(data, record, "GET /api/v1/functions/{name}/calls/stream");
        assert!(
            errors.is_empty(),
            "GET /api/v1/functions/{{name}}/calls/stream sent a record that does not match the document:\n  {}\nrecord: {record}",
            errors.join("\n  ")
        );
    }

    // gc, as a dry run.
    let reply = send(&d, "POST", "/api/v1/gc", r#"{"dry_run": true}"#);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["dry_run"], true);
    s.check("POST", "/api/v1/gc", &reply);

    // Errors: no such function, a body that is not JSON, not JSON at all.
    let reply = d.get("/api/v1/functions/nope");
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(reply.code(), "function_not_found");
    s.check("GET", "/api/v1/functions/{name}", &reply);
    let reply = send(&d, "POST", "/api/v1/functions/hello/publish", "{not json");
    assert_eq!(reply.code(), "bad_json", "{}", reply.text());
    s.check("POST", "/api/v1/functions/{name}/publish", &reply);
    let reply = send(
        &d,
        "POST",
        "/api/v1/functions/hello/publish",
        r#"{"version": 99}"#,
    );
    assert_eq!(reply.code(), "version_not_found", "{}", reply.text());
    s.check("POST", "/api/v1/functions/{name}/publish", &reply);
    let reply = common::http_with(
        &d.addr,
        "PUT",
        "/api/v1/apps/tests",
        b"max_workers=3",
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(reply.code(), "unsupported_media_type", "{}", reply.text());
    s.check("PUT", "/api/v1/apps/{name}", &reply);

    // Templates: built-in and saved ones, one saved from hello and deleted.
    s.check("GET", "/api/v1/templates", &d.get("/api/v1/templates"));
    let reply = d.get("/api/v1/templates/python-field");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("GET", "/api/v1/templates/{name}", &reply);
    let reply = d.get("/api/v1/templates/no-such-template");
    assert_eq!(reply.code(), "template_not_found", "{}", reply.text());
    s.check("GET", "/api/v1/templates/{name}", &reply);
    let save = r#"{"name": "hello-tpl", "from": "hello@1", "description": "hello, saved"}"#;
    let reply = send(&d, "POST", "/api/v1/templates", save);
    assert_eq!(reply.status, 201, "{}", reply.text());
    s.check("POST", "/api/v1/templates", &reply);
    let reply = send(&d, "POST", "/api/v1/templates", save);
    assert_eq!(reply.code(), "template_exists", "{}", reply.text());
    s.check("POST", "/api/v1/templates", &reply);
    let reply = d.get("/api/v1/templates/hello-tpl");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("GET", "/api/v1/templates/{name}", &reply);
    let reply = send(&d, "DELETE", "/api/v1/templates/hello-tpl", "");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("DELETE", "/api/v1/templates/{name}", &reply);
    let reply = send(&d, "DELETE", "/api/v1/templates/python-hello", "");
    assert_eq!(reply.code(), "template_builtin", "{}", reply.text());
    s.check("DELETE", "/api/v1/templates/{name}", &reply);

    // Metrics: text, as the document says.
    let reply = common::http_with(
        &d.addr,
        "GET",
        "/metrics",
        b"",
        &[("Authorization", &admin)],
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("GET", "/metrics", &reply);

    // Managing functions: conditions, edit, offline and online, delete.
    let reply = d.get("/api/v1/functions?app=tests&state=live&search=HEL");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("GET", "/api/v1/functions", &reply);
    let reply = d.get("/api/v1/functions?type=blob");
    assert_eq!(reply.code(), "bad_request", "{}", reply.text());
    s.check("GET", "/api/v1/functions", &reply);
    let reply = send(
        &d,
        "PUT",
        "/api/v1/functions/hello",
        r#"{"category": "greeting"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("PUT", "/api/v1/functions/{name}", &reply);
    let spare = function("spare", "def handler(event):\n    return {}\n");
    let reply = send(&d, "POST", "/api/v1/deploy", &spare);
    assert_eq!(reply.status, 201, "{}", reply.text());
    let reply = send(&d, "POST", "/api/v1/functions/spare/offline", "");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("POST", "/api/v1/functions/{name}/offline", &reply);
    let reply = d.post("/fn/spare", "{}");
    assert_eq!(reply.code(), "function_offline", "{}", reply.text());
    s.check("POST", "/fn/{target}", &reply);
    let reply = send(&d, "POST", "/api/v1/functions/spare/online", "");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("POST", "/api/v1/functions/{name}/online", &reply);
    let reply = send(&d, "DELETE", "/api/v1/functions/spare?force=true", "");
    assert_eq!(reply.status, 200, "{}", reply.text());
    s.check("DELETE", "/api/v1/functions/{name}", &reply);
    let reply = send(&d, "DELETE", "/api/v1/functions/spare", "");
    assert_eq!(reply.code(), "function_not_found", "{}", reply.text());
    s.check("DELETE", "/api/v1/functions/{name}", &reply);

    // Every JSON operation of the document this test does not reach is
    // named, so a new route gets a request here.
    let mut missed = Vec::new();
    for (path, item) in spec.doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let json_answer =
                op["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .any(|(status, r)| {
                        status.starts_with('2') && r["content"]["application/json"].is_object()
                    });
            let route = format!("{} {path} 2", method.to_ascii_uppercase());
            if json_answer && !spec.checked.iter().any(|c| c.starts_with(&route)) {
                missed.push(route.trim_end_matches(" 2").to_owned());
            }
        }
    }
    assert!(
        missed.is_empty(),
        "no successful answer of these JSON routes was checked against the document; add a request for each to tests/openapi.rs: {missed:?}"
    );
    eprintln!(
        "checked {} answers: {:#?}",
        spec.checked.len(),
        spec.checked
    );
}
