//! Pages (`type = "page"`): a page's fields filled by member calls in one
//! call, against a real daemon with real workers. Parallelism and ordering
//! are read from the timestamps the members themselves report, never from
//! the page's wall time.

mod common;

use common::{Daemon, FnDir};
use serde_json::Value;

/// A Python member: sleeps `ms`, answers its `v` and when it ran.
const PROBE: &str = r#"
import time
def handler(event):
    start = time.time()
    time.sleep(event.get("ms", 0) / 1000)
    return {"v": event.get("v"), "start": start, "end": time.time(), "got": event}
"#;

fn probe(name: &str) -> FnDir {
    FnDir::python_with(name, PROBE, "[limits]\nmax_workers = 4\n")
}

/// A page directory: its hearth.toml only.
fn page(manifest: &str) -> FnDir {
    FnDir::new(manifest, &[])
}

/// Deploy the functions a page test uses.
fn deploy_all(d: &Daemon, dirs: &[&FnDir]) {
    for dir in dirs {
        d.ok(&["deploy", dir.path()]);
    }
}

fn call(d: &Daemon, target: &str, body: &str) -> common::Reply {
    d.post(&format!("/page/{target}"), body)
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The records of `function`'s calls made by the call `parent`, once
/// `want` of them are stored (records are written in the background).
fn members(d: &Daemon, function: &str, parent: &str, want: usize) -> Vec<Value> {
    let mut found = Vec::new();
    common::eventually(10, || {
        let reply = d.get(&format!(
            "/api/v1/functions/{function}/calls?parent={parent}"
        ));
        assert_eq!(reply.status, 200, "{}", reply.text());
        found = reply.json()["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        found.len() >= want
    });
    found
}

#[test]
fn independent_fields_overlap_and_dependent_ones_wait_for_their_inputs() {
    let d = Daemon::start();
    let a = probe("pg-a");
    let b = probe("pg-b");
    let c = probe("pg-c");
    deploy_all(&d, &[&a, &b, &c]);
    let p = page(
        r#"
name = "pg-order"
type = "page"
timeout_ms = 5000

[fields.a]
fn = "pg-a"
input = { ms = 300, v = "$request.x" }

[fields.b]
fn = "pg-b"
input = { ms = 300, v = 2 }

[fields.c]
fn = "pg-c"
input = { a = "$fields.a.v", b = "$fields.b.v", lit = "$$x" }
"#,
    );
    d.ok(&["deploy", p.path()]);
    // Warm every member first: the timing below is of warm calls.
    let warm = call(&d, "pg-order", r#"{"x": 0}"#);
    assert_eq!(warm.status, 200, "{}", warm.text());

    let reply = call(&d, "pg-order", r#"{"x": 7}"#);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    let data = &body["data"];
    assert_eq!(body["errors"], serde_json::json!([]), "{body}");
    let (a, b, c) = (&data["a"], &data["b"], &data["c"]);
    // a and b ran at the same time: each started before the other ended.
    assert!(
        num(&a["start"]) < num(&b["end"]) && num(&b["start"]) < num(&a["end"]),
        "a and b did not overlap: {data}"
    );
    // c started after both of its inputs were done, and got their values.
    assert!(
        num(&c["start"]) >= num(&a["end"]) && num(&c["start"]) >= num(&b["end"]),
        "c started before its inputs were ready: {data}"
    );
    assert_eq!(
        c["got"],
        serde_json::json!({"a": 7, "b": 2, "lit": "$x"}),
        "{data}"
    );
    // The headers of a call, with each field in Server-Timing and the
    // critical path (a or b, then c).
    assert_eq!(reply.header("x-hearth-function"), Some("pg-order"));
    assert_eq!(reply.header("x-hearth-version"), Some("1"));
    let timing = reply.header("server-timing").expect("server-timing");
    for part in ["page;dur=", "critical;dur=", "field.a;dur=", "field.c;dur="] {
        assert!(timing.contains(part), "{timing}");
    }
    assert!(
        timing.contains(" > c\"") && timing.contains("desc=\"pg-c@1\""),
        "{timing}"
    );

    // Each member call is a record of its own, linked to the page call.
    let id = reply.header("x-request-id").expect("request id").to_owned();
    for f in ["pg-a", "pg-b", "pg-c"] {
        let recs = members(&d, f, &id, 1);
        assert_eq!(recs.len(), 1, "{f}: {recs:?}");
        assert_eq!(recs[0]["caller"], "page", "{recs:?}");
        assert_eq!(recs[0]["parent_id"], id.as_str(), "{recs:?}");
    }
    let page_rec = d.get(&format!("/api/v1/calls/{id}")).json();
    assert_eq!(page_rec["function"], "pg-order", "{page_rec}");
    assert_eq!(page_rec["caller"], "http", "{page_rec}");
    assert_eq!(page_rec["status"], 200, "{page_rec}");

    // `hearth invoke` calls a page too, and /fn/ serves it.
    let out = d.ok(&["invoke", "pg-order", "--data", r#"{"x": 3}"#]);
    assert!(out.contains("\"got\""), "{out}");
    let via_fn = d.post("/fn/pg-order", r#"{"x": 1}"#);
    assert_eq!(via_fn.status, 200, "{}", via_fn.text());
    // /page/ serves only pages.
    let not_page = call(&d, "pg-a", "{}");
    assert_eq!(not_page.status, 404, "{}", not_page.text());
    assert_eq!(not_page.code(), "not_a_page");
    assert!(not_page.text().contains("/fn/pg-a"), "{}", not_page.text());

    // Its docs: the page's call and its fields.
    let docs = d.ok(&["docs", "pg-order"]);
    assert!(docs.contains("POST /page/pg-order"), "{docs}");
    assert!(
        docs.contains("## Fields") && docs.contains("| `c` | pg-c | a, b |"),
        "{docs}"
    );
    let openapi = d.get("/api/v1/functions/pg-order/openapi.json").json();
    assert!(
        openapi["paths"]["/page/pg-order"]["post"].is_object(),
        "{openapi}"
    );
    assert_eq!(openapi["x-hearth"]["fields"][2]["path"], "c", "{openapi}");

    // Pages are listed, with the functions they call.
    let list = d.ok(&["list", "--type", "page"]);
    assert!(list.contains("pg-order") && list.contains("pg-a"), "{list}");

    // Statistics and metrics count the page.
    let stats = d.get("/api/v1/functions/pg-order/stats").json();
    assert!(stats.to_string().contains("\"calls\""), "{stats}");
    let metrics = common::http_with(
        &d.addr,
        "GET",
        "/metrics",
        b"",
        &[("authorization", &format!("Bearer {}", d.token))],
    )
    .text();
    assert!(
        metrics.contains("hearth_page_member_calls_total{page=\"pg-order\"}"),
        "no member-call counter"
    );
}

#[test]
fn identical_calls_run_once_and_failures_get_their_fallbacks() {
    let d = Daemon::start();
    let a = probe("pg-same");
    let slow = probe("pg-slow");
    let broken = FnDir::new(
        "name = \"pg-broken\"\nruntime = \"node\"\nentry = \"main.handler\"\n[errors.GONE]\nstatus = 404\nmessage = \"it is gone\"\n",
        &[(
            "main.js",
            "const { HearthError } = require('hearth');\nexports.handler = async () => { throw new HearthError('GONE', 'no such thing'); };\n",
        )],
    );
    deploy_all(&d, &[&a, &slow, &broken]);
    let p = page(
        r#"
name = "pg-fallbacks"
type = "page"
timeout_ms = 3000

[fields.one]
fn = "pg-same"
input = { v = 1 }

[fields.two]
fn = "pg-same"
input = { v = 1 }

[fields.other]
fn = "pg-same"
input = { v = 2 }

[fields.rows.static]
fn = "pg-broken"
fallback = { title = "Popular now" }

[fields.rows.omitted]
fn = "pg-broken"
input = { k = 1 }
fallback = "omit"

[fields.rows.plain]
fn = "pg-broken"
input = { k = 2 }

[fields.rows.needs]
fn = "pg-same"
input = { from = "$fields.rows.plain" }
fallback = []

[fields.late]
fn = "pg-slow"
input = { ms = 5000 }
timeout_ms = 200
fallback = "late"
"#,
    );
    d.ok(&["deploy", p.path()]);
    let reply = call(&d, "pg-fallbacks", "{}");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    let data = &body["data"];
    // one and two made the same call: one record, the same answer.
    assert_eq!(data["one"], data["two"], "{data}");
    let id = reply.header("x-request-id").expect("id").to_owned();
    let recs = members(&d, "pg-same", &id, 2);
    assert_eq!(
        recs.len(),
        2,
        "one call for one/two, one for other: {recs:?}"
    );
    let timing = reply.header("server-timing").unwrap_or_default();
    assert!(timing.contains(" shared\""), "{timing}");

    let errors = body["errors"].as_array().expect("errors");
    let entry = |field: &str| {
        errors
            .iter()
            .find(|e| e["field"] == field)
            .unwrap_or_else(|| panic!("no error entry for {field}: {body}"))
            .clone()
    };
    // A static fallback: the value, and the entry saying why.
    assert_eq!(data["rows"]["static"]["title"], "Popular now", "{data}");
    let e = entry("rows.static");
    assert_eq!(e["code"], "GONE");
    assert_eq!(e["function"], "pg-broken");
    assert_eq!(e["version"], 1);
    assert_eq!(e["fallback"], "static");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("no such thing"),
        "{e}"
    );
    // omit: left out, and said.
    assert!(data["rows"].get("omitted").is_none(), "{data}");
    assert_eq!(entry("rows.omitted")["fallback"], "omit");
    // No fallback: left out; the field that needs it is not called.
    assert!(data["rows"].get("plain").is_none(), "{data}");
    assert_eq!(entry("rows.plain")["fallback"], "none");
    assert_eq!(entry("rows.needs")["code"], "dependency_failed");
    assert_eq!(data["rows"]["needs"], serde_json::json!([]), "{data}");
    // A late field is cut at its own timeout; its worker's call ended
    // then, well before the 5 s it would have slept.
    assert_eq!(data["late"], "late", "{data}");
    let e = entry("late");
    assert_eq!(e["code"], "timeout", "{e}");
    let late = members(&d, "pg-slow", &id, 1);
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0]["code"], "timeout", "{late:?}");
    assert!(
        num(&late[0]["duration_ms"]) < 2500.0,
        "the late member was not cut at its field's timeout: {late:?}"
    );

    // The page's metrics count the dedup and the failures.
    let metrics = common::http_with(
        &d.addr,
        "GET",
        "/metrics",
        b"",
        &[("authorization", &format!("Bearer {}", d.token))],
    )
    .text();
    assert!(
        metrics.contains("hearth_page_deduped_fields_total{page=\"pg-fallbacks\"} 1"),
        "dedup not counted"
    );
    assert!(
        metrics.contains(
            "hearth_page_field_failures_total{code=\"GONE\",field=\"rows.static\",page=\"pg-fallbacks\"} 1"
        ),
        "field failure not counted"
    );
}

#[test]
fn a_required_field_that_fails_fails_the_page_naming_it() {
    let d = Daemon::start();
    let slow = probe("pg-req-slow");
    let boom = FnDir::python(
        "pg-req-boom",
        "def handler(event):\n    raise ValueError('bad data')\n",
    );
    deploy_all(&d, &[&slow, &boom]);
    let failing = page(
        r#"
name = "pg-required"
type = "page"

[fields.title]
fn = "pg-req-boom"
required = true

[fields.other]
fn = "pg-req-slow"
"#,
    );
    d.ok(&["deploy", failing.path()]);
    let reply = call(&d, "pg-required", "{}");
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.code(), "field_failed");
    let err = &reply.json()["error"];
    assert_eq!(err["field"], "title", "{err}");
    assert_eq!(err["function"], "pg-required", "{err}");
    let message = err["message"].as_str().unwrap_or("");
    assert!(
        message.contains("title")
            && message.contains("pg-req-boom")
            && message.contains("bad data"),
        "{message}"
    );

    let late = page(
        r#"
name = "pg-required-late"
type = "page"
timeout_ms = 2000

[fields.slow]
fn = "pg-req-slow"
input = { ms = 4000 }
timeout_ms = 150
required = true
"#,
    );
    d.ok(&["deploy", late.path()]);
    let reply = call(&d, "pg-required-late", "{}");
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert_eq!(reply.code(), "field_timeout");
    assert_eq!(reply.json()["error"]["field"], "slow");

    // The page's own deadline bounds its fields too.
    let short = page(
        r#"
name = "pg-short"
type = "page"
timeout_ms = 150

[fields.slow]
fn = "pg-req-slow"
input = { ms = 4000 }
fallback = "cut"
"#,
    );
    d.ok(&["deploy", short.path()]);
    let reply = call(&d, "pg-short", "{}");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["data"]["slow"], "cut", "{body}");
    assert_eq!(body["errors"][0]["code"], "timeout", "{body}");
}

#[test]
fn bad_pages_are_refused_at_deploy_naming_the_path() {
    let d = Daemon::start();
    let a = probe("pg-bad-a");
    deploy_all(&d, &[&a]);
    let cases = [
        (
            "[fields.x]\nfn = \"pg-bad-a\"\ninput = { v = \"$fields.y.v\" }\n[fields.y]\nfn = \"pg-bad-a\"\ninput = { v = \"$fields.x\" }\n",
            "cycle",
        ),
        (
            "[fields.x]\nfn = \"pg-bad-a\"\ninput = { v = \"$fields.nope\" }\n",
            "fields.x.input.v",
        ),
        ("[fields.x]\nfn = \"pg-missing\"\n", "fields.x.fn"),
        ("[fields.x]\nfn = \"pg-bad-a@9\"\n", "no version 9"),
        ("[fields.x]\nfn = \"pg-bad-a@prod\"\n", "no alias prod"),
        ("[fields.x]\nfn = \"pg-bad-a\"\nretries = 3\n", "fields.x.retries"),
        ("runtime = \"python\"\n[fields.x]\nfn = \"pg-bad-a\"\n", "runtime"),
        ("", "fields"),
    ];
    for (body, wanted) in cases {
        let p = page(&format!("name = \"pg-bad\"\ntype = \"page\"\n{body}"));
        let out = d.fails(&["deploy", p.path()]);
        assert!(out.contains(wanted), "{wanted}: {out}");
    }
    // Nothing was stored.
    let listed = d.get("/api/v1/functions/pg-bad");
    assert_eq!(listed.status, 404, "{}", listed.text());

    // A function cannot be deleted while a live page uses it.
    let p = page("name = \"pg-uses\"\ntype = \"page\"\n[fields.x]\nfn = \"pg-bad-a\"\n");
    d.ok(&["deploy", p.path()]);
    let out = d.fails(&["delete", "pg-bad-a"]);
    assert!(out.contains("pg-uses"), "{out}");
}

#[test]
fn publishing_a_field_function_changes_the_next_page_call_and_pages_roll_back() {
    let d = Daemon::start();
    let title = FnDir::python(
        "pg-title",
        "def handler(event):\n    return 'Hello ' + event['who']\n",
    );
    deploy_all(&d, &[&title]);
    let p = page(
        r#"
name = "pg-home"
type = "page"

[fields.title]
fn = "pg-title"
input = { who = "$request.user" }
fallback = "stale"
"#,
    );
    d.ok(&["deploy", p.path()]);
    let first = call(&d, "pg-home", r#"{"user": "Ada"}"#).json();
    assert_eq!(first["data"]["title"], "Hello Ada", "{first}");

    // A new version of the field's function is live for the next call,
    // the page untouched.
    title.write(
        "main.py",
        "def handler(event):\n    return 'Welcome ' + event['who']\n",
    );
    d.ok(&["deploy", title.path()]);
    let second = call(&d, "pg-home", r#"{"user": "Ada"}"#).json();
    assert_eq!(second["data"]["title"], "Welcome Ada", "{second}");

    // A broken version: the field gets its last good value for this input.
    title.write(
        "main.py",
        "def handler(event):\n    raise RuntimeError('oops')\n",
    );
    d.ok(&["deploy", title.path()]);
    let stale = call(&d, "pg-home", r#"{"user": "Ada"}"#).json();
    assert_eq!(stale["data"]["title"], "Welcome Ada", "{stale}");
    assert_eq!(stale["errors"][0]["fallback"], "stale", "{stale}");
    assert_eq!(stale["errors"][0]["version"], 3, "{stale}");
    // No good value for another input yet: left out.
    let none = call(&d, "pg-home", r#"{"user": "Bob"}"#).json();
    assert!(none["data"].get("title").is_none(), "{none}");
    assert_eq!(none["errors"][0]["fallback"], "none", "{none}");
    d.ok(&["rollback", "pg-title"]);

    // A second version of the page, then its rollback, and its alias.
    let v2 = page(
        r#"
name = "pg-home"
type = "page"

[fields.headline]
fn = "pg-title@1"
input = { who = "$request.user" }
"#,
    );
    d.ok(&["deploy", v2.path()]);
    let now = call(&d, "pg-home", r#"{"user": "Ada"}"#);
    assert_eq!(now.header("x-hearth-version"), Some("2"));
    assert_eq!(now.json()["data"]["headline"], "Hello Ada");
    d.ok(&["rollback", "pg-home"]);
    let back = call(&d, "pg-home", r#"{"user": "Ada"}"#);
    assert_eq!(back.header("x-hearth-version"), Some("1"));
    assert_eq!(back.json()["data"]["title"], "Welcome Ada");
    d.ok(&["alias", "pg-home", "next", "--version", "2"]);
    let aliased = call(&d, "pg-home@next", r#"{"user": "Ada"}"#);
    assert_eq!(aliased.header("x-hearth-version"), Some("2"));
    let pinned = call(&d, "pg-home@2", r#"{"user": "Ada"}"#);
    assert_eq!(pinned.json()["data"]["headline"], "Hello Ada");
    let versions = d.ok(&["versions", "pg-home"]);
    assert!(versions.contains('2'), "{versions}");
}
