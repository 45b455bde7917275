//! Templates, end to end: every built-in template is written with `hearth
//! new`, deployed and called; `hearth new` refuses what it must; a deployed
//! function saved as a template makes another function under another name
//! and application that answers like it; saved templates are deleted, and
//! built-in ones cannot be; a read-only token can list but not change them.

mod common;

use std::path::Path;

use common::{http_anon, Daemon, FnDir};
use serde_json::Value;

fn dir_of(root: &Path, name: &str) -> String {
    root.join(name).to_str().expect("utf-8 path").to_owned()
}

/// `hearth new` then `hearth deploy`; returns what `new` printed.
fn new_and_deploy(d: &Daemon, root: &Path, dir: &str, args: &[&str]) -> String {
    let path = dir_of(root, dir);
    let mut all = vec!["new", path.as_str()];
    all.extend_from_slice(args);
    let out = d.ok(&all);
    assert!(
        out.contains(&format!("next: hearth deploy {path}")),
        "new must say what to do next: {out}"
    );
    d.ok(&["deploy", &path]);
    out
}

fn call(d: &Daemon, name: &str, event: &str) -> Value {
    let r = d.post(&format!("/fn/{name}"), event);
    assert_eq!(r.status, 200, "{name} {event}: {}", r.text());
    r.json()
}

fn manifest(d: &Daemon, name: &str) -> Value {
    let versions = d.get(&format!("/api/v1/functions/{name}/versions")).json();
    versions["versions"][0]["manifest"].clone()
}

fn check_datasource(d: &Daemon, name: &str) {
    let news = call(d, name, r#"{"genre":"news","limit":2}"#);
    let news = news.as_array().expect("a datasource answers a list");
    assert_eq!(news.len(), 2, "{name}: {news:?}");
    assert!(
        news.iter().all(|p| p["genre"] == "news"),
        "{name}: {news:?}"
    );
    assert_eq!(news[0]["id"], "p01");
    let all = call(d, name, "{}");
    assert_eq!(all.as_array().map(Vec::len), Some(10), "{name}: {all}");
    let none = call(d, name, r#"{"genre":"opera"}"#);
    assert_eq!(none, serde_json::json!([]), "{name}: an empty list");
    let m = manifest(d, name);
    assert_eq!(m["type"], "datasource", "{m}");
    assert_eq!(m["input"]["properties"]["limit"]["type"], "integer", "{m}");
    assert_eq!(m["output"]["type"], "array", "{m}");
}

fn check_field(d: &Daemon, name: &str, source: &str) {
    let row = call(d, name, r#"{"genre":"news"}"#);
    assert_eq!(row["field"], name, "{row}");
    assert_eq!(row["title"], "News", "{row}");
    assert!(
        row.get("error").is_none(),
        "{name} could not call {source}: {row}"
    );
    let items = row["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "the three news programs: {row}");
    assert_eq!(items[0]["label"], "Morning Headlines", "{row}");
    assert_eq!(items[0]["link"], "/programs/p01", "{row}");
    assert_eq!(items[0]["detail"], "30 min", "{row}");
    let m = manifest(d, name);
    assert_eq!(m["type"], "field", "{m}");
    assert_eq!(m["calls"], serde_json::json!([source]), "{m}");
    // Its nested call has a record of its own, on the data source.
    let nested = common::eventually(10, || {
        let calls = d
            .get(&format!("/api/v1/functions/{source}/calls?limit=1"))
            .json();
        calls["calls"][0]["caller"] == "nested"
    });
    assert!(nested, "{source} has no record of {name}'s nested call");
}

fn check_errors(d: &Daemon, name: &str) {
    let found = call(d, name, r#"{"id":"p01"}"#);
    assert_eq!(found["title"], "Morning Headlines", "{found}");
    assert_eq!(found["id"], "p01", "{found}");
    let missing = d.post(&format!("/fn/{name}"), r#"{"id":"p42"}"#);
    // The declared code, with its status, from every runtime.
    assert_eq!(missing.status, 404, "{name}: {}", missing.text());
    assert_eq!(missing.code(), "NOT_FOUND", "{}", missing.text());
    assert_eq!(missing.json()["error"]["retryable"], false);
    let m = manifest(d, name);
    assert_eq!(m["errors"]["NOT_FOUND"]["status"], 404, "{m}");
    assert_eq!(m["errors"]["NOT_FOUND"]["retryable"], false, "{m}");
}

#[test]
fn every_built_in_template_is_written_deployed_and_answers() {
    let d = Daemon::start();
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let list = d.get("/api/v1/templates").json();
    let builtins: Vec<(String, String)> = list["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .filter(|t| t["builtin"] == true)
        .map(|t| {
            assert!(
                t["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{t}"
            );
            (
                t["name"].as_str().expect("name").to_owned(),
                t["runtime"].as_str().expect("runtime").to_owned(),
            )
        })
        .collect();
    assert!(builtins.len() >= 12, "{list}");
    // The field templates' default data source.
    new_and_deploy(&d, root, "programs", &["--template", "python-datasource"]);
    let mut covered = 0;
    for (template, runtime) in &builtins {
        let kind = template
            .strip_prefix(&format!("{runtime}-"))
            .unwrap_or_else(|| panic!("{template} is not named RUNTIME-KIND"));
        let name = format!("{runtime}-{kind}-fn");
        match kind {
            "hello" => {
                new_and_deploy(&d, root, &name, &["--template", template, "--app", "tpl"]);
                let out = call(&d, &name, r#"{"name":"Ada"}"#);
                assert_eq!(out["greeting"], "Hello, Ada!", "{template}: {out}");
                let f = d.get(&format!("/api/v1/functions/{name}")).json();
                assert_eq!(f["app"], "tpl", "--app: {f}");
                assert_eq!(f["runtime"], runtime.as_str(), "{f}");
            }
            "datasource" => {
                new_and_deploy(&d, root, &name, &["--template", template]);
                check_datasource(&d, &name);
            }
            "field" => {
                let source = if runtime == "python" {
                    // The default: the `programs` deployed above.
                    new_and_deploy(&d, root, &name, &["--template", template]);
                    "programs".to_owned()
                } else {
                    // Its own runtime's data source, named with --var.
                    let source = format!("{runtime}-source");
                    new_and_deploy(
                        &d,
                        root,
                        &source,
                        &["--template", &format!("{runtime}-datasource")],
                    );
                    let var = format!("datasource={source}");
                    new_and_deploy(&d, root, &name, &["--template", template, "--var", &var]);
                    source
                };
                check_field(&d, &name, &source);
            }
            "errors" => {
                new_and_deploy(&d, root, &name, &["--template", template]);
                check_errors(&d, &name);
            }
            other => panic!("built-in template {template} of kind {other} has no test here"),
        }
        covered += 1;
    }
    assert_eq!(covered, builtins.len());
}

#[test]
fn new_refuses_a_non_empty_dir_a_bad_name_and_unknown_templates_and_works_offline() {
    let d = Daemon::start();
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();

    let busy = dir_of(root, "busy");
    std::fs::create_dir(&busy).expect("mkdir");
    std::fs::write(root.join("busy/notes.txt"), "mine").expect("write");
    let err = d.fails(&["new", &busy, "--template", "python-hello"]);
    assert!(err.contains("not empty"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&busy).expect("read").collect();
    assert_eq!(
        left.len(),
        1,
        "nothing is written into a non-empty directory"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("busy/notes.txt")).expect("read"),
        "mine"
    );

    // An empty directory is fine.
    let empty = dir_of(root, "empty-one");
    std::fs::create_dir(&empty).expect("mkdir");
    d.ok(&["new", &empty, "--template", "node-hello"]);
    assert!(root.join("empty-one/main.js").is_file());

    let bad = dir_of(root, "Bad_Name");
    let err = d.fails(&["new", &bad, "--template", "python-hello"]);
    assert!(err.contains("--name"), "says how to name it: {err}");
    assert!(!root.join("Bad_Name").exists(), "nothing written");
    let err = d.fails(&[
        "new",
        &dir_of(root, "ok-dir"),
        "--template",
        "python-hello",
        "--name",
        "Nope!",
    ]);
    assert!(err.contains("--name"), "{err}");
    assert!(!root.join("ok-dir").exists());
    // With --name, the directory's own name does not matter.
    d.ok(&["new", &bad, "--template", "python-hello", "--name", "fine"]);
    let toml = std::fs::read_to_string(root.join("Bad_Name/hearth.toml")).expect("read");
    assert!(toml.contains("name = \"fine\""), "{toml}");
    assert!(toml.contains("app = \"default\""), "{toml}");
    assert!(!toml.contains("{{"), "{toml}");

    let err = d.fails(&["new", &dir_of(root, "x"), "--template", "cobol-hello"]);
    assert!(err.contains("cobol-hello"), "{err}");
    let err = d.fails(&[
        "new",
        &dir_of(root, "y"),
        "--template",
        "python-field",
        "--var",
        "colour=red",
    ]);
    assert!(
        err.contains("colour") && err.contains("datasource"),
        "{err}"
    );
    let err = d.fails(&[
        "new",
        &dir_of(root, "z"),
        "--template",
        "python-field",
        "--var",
        "datasource=Not A Name",
    ]);
    assert!(
        err.contains("calls"),
        "the rendered hearth.toml is checked: {err}"
    );
    for gone in ["x", "y", "z"] {
        assert!(!root.join(gone).exists(), "{gone} written after an error");
    }

    // No daemon: built-in templates still work, saved ones cannot.
    let offline = dir_of(root, "offline");
    let out = d.cli(&[
        "--addr",
        "127.0.0.1:1",
        "new",
        &offline,
        "--template",
        "lua-datasource",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.join("offline/data/programs.json").is_file());
    assert!(root.join("offline/lib/json.lua").is_file());
    d.ok(&["deploy", &offline]);
    assert_eq!(
        call(&d, "offline", r#"{"limit":1}"#)
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let out = d.cli(&[
        "--addr",
        "127.0.0.1:1",
        "new",
        &dir_of(root, "w"),
        "--template",
        "mine",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("saved templates are kept by the daemon"),
        "{err}"
    );
    let out = d.cli(&["--addr", "127.0.0.1:1", "template", "list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("python-errors"));
}

const GREETER: &str = r#"import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def handler(event, context):
    with open(os.path.join(HERE, "words.json"), encoding="utf-8") as f:
        words = json.load(f)
    # greeter: says hello in the words of words.json
    return {"by": "greeter", "greeting": "%s, %s!" % (words["hello"], event.get("name", "you")), "me": context.function_name}
"#;

#[test]
fn a_saved_template_makes_a_function_that_answers_like_the_original() {
    let d = Daemon::start();
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let original = FnDir::new(
        "name = \"greeter\"  # the URL\nruntime = \"python\"\nentry = \"main.handler\"\napp = \"crm\"\ndescription = \"Greets in its own words\"\n\n[limits]\ntimeout_ms = 2000\n",
        &[("main.py", GREETER), ("words.json", "{\"hello\": \"Howdy\", \"greeter\": 1}")],
    );
    d.ok(&["deploy", original.path()]);
    let before = call(&d, "greeter", r#"{"name":"Ada"}"#);
    assert_eq!(before["greeting"], "Howdy, Ada!");

    let out = d.ok(&["template", "save", "greeting", "--from", "greeter"]);
    assert!(out.contains("greeter@1"), "{out}");
    let listed = d.ok(&["template", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("greeting") && l.contains("saved from greeter@1")),
        "{listed}"
    );
    let t = d.get("/api/v1/templates/greeting").json();
    assert_eq!(
        (t["builtin"].clone(), t["from"].clone()),
        (Value::Bool(false), "greeter@1".into()),
        "{t}"
    );
    assert_eq!(
        t["description"], "Greets in its own words",
        "the function's own: {t}"
    );
    assert_eq!(
        (t["runtime"].clone(), t["type"].clone()),
        ("python".into(), "function".into())
    );
    assert_eq!(t["app"], "crm");
    let file = |path: &str| -> String {
        use base64::Engine as _;
        let f = t["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("no {path} in {t}"));
        let data = base64::engine::general_purpose::STANDARD
            .decode(f["data"].as_str().expect("data"))
            .expect("base64");
        String::from_utf8(data).expect("utf-8")
    };
    let toml = file("hearth.toml");
    assert!(
        toml.starts_with("name = \"{{name}}\"  # the URL\n"),
        "{toml}"
    );
    assert!(toml.contains("app = \"{{app}}\"\n"), "{toml}");
    assert!(toml.contains("timeout_ms = 2000"), "{toml}");
    let code = file("main.py");
    assert!(
        code.contains("\"by\": \"{{name}}\""),
        "the code names itself: {code}"
    );
    assert!(
        code.contains("# greeter: says hello"),
        "comments are left: {code}"
    );
    assert_eq!(
        file("words.json"),
        "{\"hello\": \"Howdy\", \"greeter\": 1}",
        "data is left"
    );
    let shown = d.ok(&["template", "show", "greeting"]);
    assert!(
        shown.contains("saved from greeter@1") && shown.contains("words.json"),
        "{shown}"
    );

    let copy = dir_of(root, "welcomer");
    new_and_deploy(
        &d,
        root,
        "welcomer",
        &["--template", "greeting", "--app", "shop"],
    );
    let after = call(&d, "welcomer", r#"{"name":"Ada"}"#);
    assert_eq!(after["greeting"], before["greeting"], "{after}");
    assert_eq!(after["by"], "welcomer", "{after}");
    assert_eq!(after["me"], "welcomer", "{after}");
    let f = d.get("/api/v1/functions/welcomer").json();
    assert_eq!(f["app"], "shop", "{f}");
    assert!(
        std::fs::read_to_string(Path::new(&copy).join("hearth.toml"))
            .expect("read")
            .contains("name = \"welcomer\"  # the URL")
    );
    // The original is untouched.
    assert_eq!(call(&d, "greeter", r#"{"name":"Ada"}"#), before);

    // A version by number; names taken, bad names and unknown functions.
    d.ok(&[
        "template",
        "save",
        "greeting-v1",
        "--from",
        "greeter@1",
        "--description",
        "v1",
    ]);
    assert_eq!(
        d.get("/api/v1/templates/greeting-v1").json()["description"],
        "v1"
    );
    let post = |body: &str| d.post("/api/v1/templates", body);
    let r = post(r#"{"name":"greeting","from":"greeter"}"#);
    assert_eq!(
        (r.status, r.code()),
        (409, "template_exists".into()),
        "{}",
        r.text()
    );
    let r = post(r#"{"name":"python-hello","from":"greeter"}"#);
    assert_eq!(
        (r.status, r.code()),
        (409, "template_exists".into()),
        "{}",
        r.text()
    );
    assert!(r.text().contains("built-in"), "{}", r.text());
    let r = post(r#"{"name":"Not Good","from":"greeter"}"#);
    assert_eq!(
        (r.status, r.code()),
        (400, "bad_request".into()),
        "{}",
        r.text()
    );
    let r = post(r#"{"name":"other","from":"nobody"}"#);
    assert_eq!(
        (r.status, r.code()),
        (404, "function_not_found".into()),
        "{}",
        r.text()
    );
    let r = post(r#"{"name":"other","from":"greeter@9"}"#);
    assert_eq!(
        (r.status, r.code()),
        (404, "version_not_found".into()),
        "{}",
        r.text()
    );
    let r = post(r#"{"name":"other","from":"greeter@prod"}"#);
    assert_eq!(
        (r.status, r.code()),
        (400, "bad_request".into()),
        "{}",
        r.text()
    );

    // A function with no live version is saved by its version number.
    let draft = FnDir::python(
        "drafty",
        "def handler(event, context):\n    return 'drafty'\n",
    );
    d.ok(&["deploy", draft.path(), "--no-publish"]);
    let r = post(r#"{"name":"from-draft","from":"drafty"}"#);
    assert_eq!(
        (r.status, r.code()),
        (404, "not_published".into()),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("drafty@N"),
        "says what to give: {}",
        r.text()
    );
    let r = post(r#"{"name":"from-draft","from":"drafty@1"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["from"], "drafty@1");

    // Deleting: a saved one goes, a built-in one cannot.
    let out = d.ok(&["template", "delete", "greeting"]);
    assert!(out.contains("deleted"), "{out}");
    let r = d.get("/api/v1/templates/greeting");
    assert_eq!(
        (r.status, r.code()),
        (404, "template_not_found".into()),
        "{}",
        r.text()
    );
    let err = d.fails(&["new", &dir_of(root, "again"), "--template", "greeting"]);
    assert!(err.contains("greeting"), "{err}");
    let err = d.fails(&["template", "delete", "greeting"]);
    assert!(err.contains("no template named \"greeting\""), "{err}");
    let err = d.fails(&["template", "delete", "python-hello"]);
    assert!(
        err.contains("built-in") && err.contains("cannot be deleted"),
        "{err}"
    );
    let r = d.post("/api/v1/templates", "");
    assert_ne!(r.status, 200);
    let r = common::http(&d.addr, "DELETE", "/api/v1/templates/python-hello", b"");
    assert_eq!(
        (r.status, r.code()),
        (409, "template_builtin".into()),
        "{}",
        r.text()
    );
    assert_eq!(d.get("/api/v1/templates/python-hello").status, 200);
    assert!(
        d.get("/api/v1/templates/greeting-v1").status == 200,
        "the other saved one stays"
    );
}

#[test]
fn a_read_only_token_lists_templates_but_cannot_save_or_delete_them() {
    let d = Daemon::start();
    let f = FnDir::python(
        "solo",
        "def handler(event, context):\n    return {'solo': True}\n",
    );
    d.ok(&["deploy", f.path()]);
    d.ok(&["template", "save", "solo-tpl", "--from", "solo"]);
    let out = d.ok(&["token", "create", "--name", "viewer", "--scope", "read"]);
    let token = out.lines().last().unwrap_or("").trim().to_owned();
    assert!(token.starts_with("hearth_"), "{out}");
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];

    let r = http_anon(&d.addr, "GET", "/api/v1/templates", b"", &headers);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("solo-tpl"));
    let r = http_anon(&d.addr, "GET", "/api/v1/templates/solo-tpl", b"", &headers);
    assert_eq!(r.status, 200, "{}", r.text());

    let r = http_anon(
        &d.addr,
        "POST",
        "/api/v1/templates",
        br#"{"name":"stolen","from":"solo"}"#,
        &headers,
    );
    assert_eq!(
        (r.status, r.code()),
        (403, "forbidden".into()),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("deploy"),
        "names the scope needed: {}",
        r.text()
    );
    let r = http_anon(
        &d.addr,
        "DELETE",
        "/api/v1/templates/solo-tpl",
        b"",
        &headers,
    );
    assert_eq!(
        (r.status, r.code()),
        (403, "forbidden".into()),
        "{}",
        r.text()
    );
    // Without any token: 401.
    let r = http_anon(&d.addr, "GET", "/api/v1/templates", b"", &[]);
    assert_eq!(r.status, 401, "{}", r.text());

    let out = d.cli_with_token(&token, &["template", "save", "stolen", "--from", "solo"]);
    assert!(!out.status.success());
    let out = d.cli_with_token(&token, &["template", "delete", "solo-tpl"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("deploy"));

    // A deploy token of another application cannot save this one's code,
    // nor delete what was saved from it.
    let out = d.ok(&[
        "token",
        "create",
        "--name",
        "elsewhere",
        "--scope",
        "deploy",
        "--app",
        "other",
    ]);
    let other = out.lines().last().unwrap_or("").trim().to_owned();
    let auth = format!("Bearer {other}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let r = http_anon(
        &d.addr,
        "POST",
        "/api/v1/templates",
        br#"{"name":"stolen","from":"solo"}"#,
        &headers,
    );
    assert_eq!(
        (r.status, r.code()),
        (403, "forbidden".into()),
        "{}",
        r.text()
    );
    let r = http_anon(
        &d.addr,
        "DELETE",
        "/api/v1/templates/solo-tpl",
        b"",
        &headers,
    );
    assert_eq!(
        (r.status, r.code()),
        (403, "forbidden".into()),
        "{}",
        r.text()
    );

    assert_eq!(
        d.get("/api/v1/templates/solo-tpl").status,
        200,
        "still there"
    );
    assert_eq!(d.get("/api/v1/templates/stolen").status, 404, "never saved");
}
