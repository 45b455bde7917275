//! Managing functions as a whole, against a real daemon: delete (refused
//! while called unless forced; history kept; deploying again brings it
//! back), offline and online (503 over HTTP and nested calls), edit (the
//! function's information survives redeploys that leave hearth.toml's keys
//! alone), listing with conditions, who may do it, and a second daemon
//! sharing the store following along.

mod common;

use common::{alive, eventually, http, http_anon, Daemon, FnDir};

/// Answers its worker's pid and a version mark.
fn pid_code(v: u32) -> String {
    format!("import os\n\ndef handler(event):\n    return {{'pid': os.getpid(), 'v': {v}}}\n")
}

/// Calls `callee` through its worker and answers the value or the error's
/// code and status.
fn caller_of(callee: &str) -> (String, String) {
    let code = format!(
        "import hearth\n\ndef handler(event, context):\n    try:\n        return {{'value': context.invoke('{callee}', {{}})}}\n    except hearth.InvokeError as e:\n        return {{'code': e.code, 'message': str(e)}}\n"
    );
    (code, format!("calls = [\"{callee}\"]"))
}

fn names(reply: &common::Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["functions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn pid_of(reply: &common::Reply) -> u32 {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["pid"].as_u64().expect("pid") as u32
}

fn token(d: &Daemon, name: &str, scope: &str, app: Option<&str>) -> String {
    let mut args = vec!["token", "create", "--name", name, "--scope", scope];
    if let Some(app) = app {
        args.extend(["--app", app]);
    }
    let out = d.ok(&args);
    let last = out.lines().last().unwrap_or("").trim().to_owned();
    assert!(last.starts_with("hearth_"), "{out}");
    last
}

#[test]
fn delete_is_refused_while_called_unless_forced_keeps_history_and_a_deploy_brings_it_back() {
    let d = Daemon::start();
    let x = FnDir::python("doomed", &pid_code(1));
    d.ok(&["deploy", x.path()]);
    let (code, calls) = caller_of("doomed");
    let caller = FnDir::python_with("needs-doomed", &code, &calls);
    d.ok(&["deploy", caller.path()]);
    let pid = pid_of(&d.post("/fn/doomed", "{}"));

    // Refused while a function declares it calls it: nothing changes.
    let err = d.fails(&["delete", "doomed"]);
    assert!(
        err.contains("needs-doomed") && err.contains("--force"),
        "{err}"
    );
    let r = http(&d.addr, "DELETE", "/api/v1/functions/doomed", b"");
    assert_eq!((r.status, r.code()), (409, "function_in_use".into()));
    assert_eq!(pid_of(&d.post("/fn/doomed", "{}")), pid);

    let out = d.ok(&["delete", "doomed", "--force"]);
    assert!(out.contains("deleted"), "{out}");
    // Every call now: 404, saying it was deleted and how to bring it back.
    for path in ["/fn/doomed", "/fn/doomed@1"] {
        let r = d.post(path, "{}");
        assert_eq!((r.status, r.code()), (404, "function_not_found".into()));
        let e = &r.json()["error"];
        assert!(
            e["message"].as_str().unwrap_or("").contains("deleted"),
            "{e}"
        );
        assert!(
            e["hint"].as_str().unwrap_or("").contains("hearth deploy"),
            "{e}"
        );
    }
    let nested = d.post("/fn/needs-doomed", "{}");
    assert_eq!(nested.status, 200, "{}", nested.text());
    assert_eq!(nested.json()["code"], "function_not_found");
    assert!(
        eventually(10, || !alive(pid)),
        "its worker {pid} still runs"
    );

    // Not listed, not found; its history and versions kept.
    assert!(!names(&d.get("/api/v1/functions")).contains(&"doomed".to_owned()));
    assert!(!d.ok(&["list"]).lines().any(|l| l.starts_with("doomed ")));
    assert_eq!(d.get("/api/v1/functions/doomed").status, 404);
    let history = d.get("/api/v1/functions/doomed/releases").json();
    assert_eq!(history["releases"][0]["action"], "delete");
    assert_eq!(history["releases"][0]["version"], 1);
    assert!(d.ok(&["history", "doomed"]).contains("delete"));
    assert!(d.ok(&["versions", "doomed"]).contains('1'));
    let again = d.fails(&["delete", "doomed"]);
    assert!(again.contains("was deleted"), "{again}");

    // Deploying it again brings it back; its numbers go on.
    std::fs::write(x.dir.path().join("main.py"), pid_code(2)).expect("write");
    let out = d.ok(&["deploy", x.path()]);
    assert!(out.contains("version 2"), "{out}");
    assert_eq!(d.post("/fn/doomed", "{}").json()["v"], 2);
    assert!(names(&d.get("/api/v1/functions")).contains(&"doomed".to_owned()));
    let nested = d.post("/fn/needs-doomed", "{}");
    assert_eq!(nested.json()["value"]["v"], 2, "{}", nested.text());
    let actions: Vec<String> = d.get("/api/v1/functions/doomed/releases").json()["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(actions, ["publish", "delete", "publish"]);
}

#[test]
fn an_offline_function_refuses_every_call_until_it_is_online() {
    let d = Daemon::start();
    let y = FnDir::python("pausable", &pid_code(1));
    d.ok(&["deploy", y.path()]);
    let (code, calls) = caller_of("pausable");
    let caller = FnDir::python_with("needs-pausable", &code, &calls);
    d.ok(&["deploy", caller.path()]);
    d.ok(&["alias", "pausable", "prod", "--version", "1"]);
    let pid = pid_of(&d.post("/fn/pausable", "{}"));

    let out = d.ok(&["offline", "pausable"]);
    assert!(out.contains("offline"), "{out}");
    for path in ["/fn/pausable", "/fn/pausable@1", "/fn/pausable@prod"] {
        let r = d.post(path, "{}");
        assert_eq!(
            (r.status, r.code()),
            (503, "function_offline".into()),
            "{path}"
        );
        assert!(
            r.json()["error"]["hint"]
                .as_str()
                .unwrap_or("")
                .contains("hearth online pausable"),
            "{}",
            r.text()
        );
    }
    let nested = d.post("/fn/needs-pausable", "{}");
    assert_eq!(nested.status, 200, "{}", nested.text());
    assert_eq!(nested.json()["code"], "function_offline");
    assert!(
        eventually(10, || !alive(pid)),
        "its worker {pid} still runs"
    );
    let info = d.get("/api/v1/functions/pausable").json();
    assert_eq!(
        (info["state"].as_str(), info["live_version"].as_u64()),
        (Some("offline"), Some(1))
    );
    assert!(d
        .ok(&["list"])
        .lines()
        .any(|l| l.starts_with("pausable ") && l.contains("offline")));
    // Taking it offline twice changes nothing more.
    assert!(d.ok(&["offline", "pausable"]).contains("already"));

    // A publish while offline goes through and stays offline, saying so.
    std::fs::write(y.dir.path().join("main.py"), pid_code(2)).expect("write");
    let out = d.ok(&["deploy", y.path()]);
    assert!(out.contains("offline"), "{out}");
    assert_eq!(d.post("/fn/pausable", "{}").code(), "function_offline");
    assert_eq!(
        d.get("/api/v1/functions/pausable").json()["live_version"],
        2
    );

    // So does an alias move: it routes once the function is back.
    d.ok(&["alias", "pausable", "canary", "--version", "2"]);
    assert_eq!(
        d.post("/fn/pausable@canary", "{}").code(),
        "function_offline"
    );
    assert!(
        eventually(10, || d.get("/api/v1/workers").json()["pools"]
            .as_array()
            .is_some_and(|p| !p.iter().any(|p| p["function"] == "pausable"))),
        "an offline function keeps pools: {}",
        d.get("/api/v1/workers").text()
    );

    let out = d.ok(&["online", "pausable"]);
    assert!(out.contains("online"), "{out}");
    let r = d.post("/fn/pausable", "{}");
    assert_eq!((r.status, r.json()["v"].as_u64()), (200, Some(2)));
    assert_eq!(d.post("/fn/pausable@prod", "{}").json()["v"], 1);
    assert_eq!(d.post("/fn/pausable@canary", "{}").json()["v"], 2);
    assert_eq!(d.post("/fn/needs-pausable", "{}").json()["value"]["v"], 2);
    assert_eq!(d.get("/api/v1/functions/pausable").json()["state"], "live");
    let history = d.ok(&["history", "pausable"]);
    assert!(
        history.contains("offline") && history.contains("online"),
        "{history}"
    );
}

#[test]
fn an_edit_survives_redeploys_until_hearth_toml_changes_the_key() {
    let d = Daemon::start();
    let toml = |description: &str| format!("category = \"alpha\"\ndescription = \"{description}\"");
    let z = FnDir::python_with("edited", &pid_code(1), &toml("from toml"));
    d.ok(&["deploy", z.path()]);
    let out = d.ok(&[
        "edit",
        "edited",
        "--description",
        "written by hand",
        "--category",
        "beta",
    ]);
    assert!(out.contains("written by hand"), "{out}");
    let info = || d.get("/api/v1/functions/edited").json();
    assert_eq!(info()["category"], "beta");

    // New code, the same hearth.toml keys: the edit stays.
    std::fs::write(z.dir.path().join("main.py"), pid_code(2)).expect("write");
    d.ok(&["deploy", z.path()]);
    assert_eq!(d.post("/fn/edited", "{}").json()["v"], 2);
    let f = info();
    assert_eq!(
        (f["description"].as_str(), f["category"].as_str()),
        (Some("written by hand"), Some("beta"))
    );
    // hearth.toml changing the description: it applies, the category stays.
    let manifest = format!(
        "name = \"edited\"\nruntime = \"python\"\nentry = \"main.handler\"\napp = \"tests\"\n{}\n",
        toml("changed in toml")
    );
    z.write("hearth.toml", &manifest);
    d.ok(&["deploy", z.path()]);
    let f = info();
    assert_eq!(
        (f["description"].as_str(), f["category"].as_str()),
        (Some("changed in toml"), Some("beta"))
    );
    // The version keeps what its hearth.toml said.
    let versions = d.get("/api/v1/functions/edited/versions").json();
    assert_eq!(
        versions["versions"][0]["manifest"]["description"],
        "from toml"
    );

    // Over HTTP; unknown fields and unknown functions are refused.
    let r = http(
        &d.addr,
        "PUT",
        "/api/v1/functions/edited",
        br#"{"category":"gamma"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (
            r.json()["category"].as_str(),
            r.json()["description"].as_str()
        ),
        (Some("gamma"), Some("changed in toml"))
    );
    let r = http(
        &d.addr,
        "PUT",
        "/api/v1/functions/edited",
        br#"{"runtime":"lua"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = http(
        &d.addr,
        "PUT",
        "/api/v1/functions/nobody",
        br#"{"category":"x"}"#,
    );
    assert_eq!((r.status, r.code()), (404, "function_not_found".into()));
    let err = d.fails(&["edit", "edited"]);
    assert!(err.contains("--description"), "{err}");
}

#[test]
fn functions_are_listed_by_condition_with_the_cli_and_the_api() {
    let d = Daemon::start();
    let shop = FnDir::new(
        "name = \"charge\"\nruntime = \"python\"\nentry = \"main.handler\"\napp = \"shop\"\ncategory = \"Billing\"\ndescription = \"Charges cards\"\ntype = \"datasource\"\n[output]\ntype = \"object\"\n",
        &[("main.py", "def handler(event):\n    return {}\n")],
    );
    d.ok(&["deploy", shop.path()]);
    let node = FnDir::new(
        "name = \"greet-node\"\nruntime = \"node\"\nentry = \"main.handler\"\napp = \"tests\"\ncategory = \"greeting\"\ndescription = \"Says hi\"\n",
        &[("main.js", "exports.handler = async () => ({ hi: true });\n")],
    );
    d.ok(&["deploy", node.path()]);
    let draft = FnDir::python("sketch", &pid_code(1));
    d.ok(&["deploy", draft.path(), "--no-publish"]);
    let resting = FnDir::python("resting", &pid_code(1));
    d.ok(&["deploy", resting.path()]);
    d.ok(&["offline", "resting"]);

    let api = |query: &str| {
        let mut n = names(&d.get(&format!("/api/v1/functions?{query}")));
        n.sort();
        n
    };
    assert_eq!(api(""), ["charge", "greet-node", "resting", "sketch"]);
    assert_eq!(api("app=shop"), ["charge"]);
    assert_eq!(api("category=billing"), ["charge"]);
    assert_eq!(api("type=datasource"), ["charge"]);
    assert_eq!(api("type=function"), ["greet-node", "resting", "sketch"]);
    assert_eq!(api("runtime=node"), ["greet-node"]);
    assert_eq!(api("state=draft"), ["sketch"]);
    assert_eq!(api("state=offline"), ["resting"]);
    assert_eq!(api("state=live"), ["charge", "greet-node"]);
    assert_eq!(api("search=CARDS"), ["charge"]);
    assert_eq!(api("search=greet"), ["greet-node"]);
    assert_eq!(api("app=tests&runtime=python"), ["resting", "sketch"]);
    assert_eq!(api("search=says%20hi&state=live"), ["greet-node"]);
    let all = d.get("/api/v1/functions").json();
    let charge = all["functions"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["name"] == "charge").cloned())
        .expect("charge");
    assert_eq!(charge["type"], "datasource");

    for (query, param, value) in [
        ("type=blob", "type", "datasource"),
        ("runtime=ruby", "runtime", "python"),
        ("state=gone", "state", "offline"),
        ("colour=red", "colour", "search"),
    ] {
        let r = d.get(&format!("/api/v1/functions?{query}"));
        assert_eq!((r.status, r.code()), (400, "bad_request".into()), "{query}");
        let message = r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            message.contains(param) && message.contains(value),
            "{query}: {message}"
        );
    }

    let cli = |args: &[&str]| {
        let mut all = vec!["list"];
        all.extend_from_slice(args);
        let out = d.ok(&all);
        let mut n: Vec<String> = out
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        n.sort();
        n
    };
    assert_eq!(cli(&["--app", "shop"]), ["charge"]);
    assert_eq!(cli(&["--category", "BILLING"]), ["charge"]);
    assert_eq!(cli(&["--type", "datasource"]), ["charge"]);
    assert_eq!(cli(&["--runtime", "node"]), ["greet-node"]);
    assert_eq!(cli(&["--state", "offline"]), ["resting"]);
    assert_eq!(cli(&["--state", "draft"]), ["sketch"]);
    assert_eq!(cli(&["--search", "cards"]), ["charge"]);
    assert_eq!(
        cli(&["--app", "tests", "--runtime", "python"]),
        ["resting", "sketch"]
    );
    assert!(d
        .ok(&["list", "--app", "nowhere"])
        .contains("no function meets"));
    let err = d.fails(&["list", "--type", "blob"]);
    assert!(err.contains("type") && err.contains("datasource"), "{err}");
    let json = d.ok(&["list", "--json", "--type", "datasource"]);
    assert!(json.contains("\"type\": \"datasource\""), "{json}");
}

#[test]
fn a_read_token_cannot_delete_take_offline_or_edit() {
    let d = Daemon::start();
    let f = FnDir::python("guarded", &pid_code(1));
    d.ok(&["deploy", f.path()]);
    let reader = token(&d, "reader", "read", None);
    let other_app = token(&d, "elsewhere", "deploy", Some("shop"));
    for t in [&reader, &other_app] {
        let bearer = format!("Bearer {t}");
        let auth = [("Authorization", bearer.as_str())];
        let requests: [(&str, &str, &[u8]); 4] = [
            ("DELETE", "/api/v1/functions/guarded?force=true", b""),
            ("POST", "/api/v1/functions/guarded/offline", b""),
            ("POST", "/api/v1/functions/guarded/online", b""),
            ("PUT", "/api/v1/functions/guarded", br#"{"category":"x"}"#),
        ];
        for (method, path, body) in requests {
            let mut headers = auth.to_vec();
            if !body.is_empty() {
                headers.push(("Content-Type", "application/json"));
            }
            let r = http_anon(&d.addr, method, path, body, &headers);
            assert_eq!(
                (r.status, r.code()),
                (403, "forbidden".into()),
                "{method} {path}"
            );
        }
        for args in [
            &["delete", "guarded", "--force"][..],
            &["offline", "guarded"],
            &["edit", "guarded", "--category", "x"],
        ] {
            let out = d.cli_with_token(t, args);
            assert!(!out.status.success(), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("deploy"), "{args:?}: {err}");
        }
    }
    // Nothing changed.
    let info = d.get("/api/v1/functions/guarded").json();
    assert_eq!(
        (info["state"].as_str(), info["category"].as_str()),
        (Some("live"), Some(""))
    );
    assert_eq!(d.post("/fn/guarded", "{}").status, 200);
    // A deploy token of its own application may.
    let deployer = token(&d, "deployer", "deploy", Some("tests"));
    let out = d.cli_with_token(&deployer, &["offline", "guarded"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.post("/fn/guarded", "{}").code(), "function_offline");
}

#[test]
fn a_daemon_sharing_the_store_follows_offline_delete_and_back() {
    let tmp = common::reachable_tempdir();
    let data = tmp.path().join("data");
    let a = Daemon::start_in(&data, &[], &[]);
    let f = FnDir::python("shared-fn", &pid_code(1));
    a.ok(&["deploy", f.path()]);
    let b = Daemon::start_in(&data, &[], &[]);
    let pid = pid_of(&b.post("/fn/shared-fn", "{}"));

    a.ok(&["offline", "shared-fn"]);
    assert!(
        eventually(5, || b.post("/fn/shared-fn", "{}").code()
            == "function_offline"),
        "b never saw it go offline"
    );
    assert!(
        eventually(10, || !alive(pid)),
        "b's worker {pid} still runs"
    );
    a.ok(&["online", "shared-fn"]);
    assert!(
        eventually(5, || b.post("/fn/shared-fn", "{}").status == 200),
        "b never saw it come back"
    );
    a.ok(&["delete", "shared-fn"]);
    assert!(
        eventually(5, || b.post("/fn/shared-fn", "{}").code()
            == "function_not_found"),
        "b never saw the delete"
    );
    assert_eq!(b.post("/fn/shared-fn@1", "{}").status, 404);
    // A daemon started after the delete knows it too.
    drop(b);
    let c = Daemon::start_in(&data, &[], &[]);
    assert_eq!(c.post("/fn/shared-fn@1", "{}").status, 404);
    a.ok(&["deploy", f.path()]);
    assert!(eventually(5, || c.post("/fn/shared-fn", "{}").status == 200));
}
