//! Access control, tried as an attacker would: the management API needs a
//! token with the route's scope, function code cannot reach it as anyone,
//! browser-borne requests are refused, key-protected applications need an
//! invoke token, and rate limits answer 429 with Retry-After.

mod common;

use common::{http_anon, http_with, Daemon, FnDir};

fn versions_of(d: &Daemon, name: &str) -> usize {
    d.get(&format!("/api/v1/functions/{name}/versions")).json()["versions"]
        .as_array()
        .map(|v| v.len())
        .unwrap_or(0)
}

fn live_of(d: &Daemon, name: &str) -> u64 {
    d.get(&format!("/api/v1/functions/{name}")).json()["live_version"]
        .as_u64()
        .unwrap_or(0)
}

/// A function with two versions, the second live.
fn victim(d: &Daemon) {
    for v in 1..=2 {
        let f = FnDir::python(
            "victim",
            &format!("def handler(event, context):\n    return {{'v': {v}}}\n"),
        );
        d.ok(&["deploy", f.path()]);
    }
    assert_eq!(live_of(d, "victim"), 2);
}

/// Make a token with the CLI; it is alone on stdout's last line.
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

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn every_management_route_needs_a_token_and_nothing_changes_without_one() {
    let d = Daemon::start();
    victim(&d);
    let attempts: &[(&str, &str, &str)] = &[
        ("GET", "/api/v1/functions", ""),
        ("GET", "/api/v1/workers", ""),
        ("POST", "/api/v1/functions/victim/rollback", "{}"),
        (
            "POST",
            "/api/v1/functions/victim/publish",
            r#"{"version":1}"#,
        ),
        (
            "PUT",
            "/api/v1/functions/victim/aliases/prod",
            r#"{"version":1}"#,
        ),
        ("PUT", "/api/v1/apps/tests", r#"{"max_workers":1}"#),
        ("POST", "/api/v1/deploy", r#"{"files":[]}"#),
        ("GET", "/api/v1/tokens", ""),
        (
            "POST",
            "/api/v1/tokens",
            r#"{"name":"x","scopes":["admin"]}"#,
        ),
    ];
    for (method, path, body) in attempts {
        let r = http_anon(&d.addr, method, path, body.as_bytes(), &[]);
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        assert_eq!(r.code(), "unauthorized");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("scope"));
        // A made-up token is no better.
        let r = http_anon(
            &d.addr,
            method,
            path,
            body.as_bytes(),
            &[(
                "Authorization",
                "Bearer hearth_madeupmadeupmadeupmadeupmadeupmadeupmad",
            )],
        );
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
    }
    // Health stays open (for probes); calls to open applications too.
    assert_eq!(
        http_anon(&d.addr, "GET", "/api/v1/health", b"", &[]).status,
        200
    );
    assert_eq!(d.post("/fn/victim", "{}").json()["v"], 2);
    assert_eq!(live_of(&d, "victim"), 2);
    assert_eq!(versions_of(&d, "victim"), 2);
    assert!(d.get("/api/v1/functions/victim/aliases").json()["aliases"]
        .as_array()
        .is_none_or(|a| a.is_empty()));
}

#[test]
fn scopes_decide_and_the_error_names_the_scope_needed() {
    let d = Daemon::start();
    victim(&d);
    let read = token(&d, "reader", "read", None);
    let deploy_other = token(&d, "other-deployer", "deploy", Some("elsewhere"));
    let deploy_tests = token(&d, "deployer", "deploy", Some("tests"));

    // read: lists, may not roll back.
    let r = http_with(
        &d.addr,
        "GET",
        "/api/v1/functions",
        b"",
        &[("Authorization", &bearer(&read))],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http_with(
        &d.addr,
        "POST",
        "/api/v1/functions/victim/rollback",
        b"{}",
        &[("Authorization", &bearer(&read))],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code(), "forbidden");
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        message.contains("scope deploy") && message.contains("reader"),
        "{message}"
    );

    // deploy limited to another application: 403 naming the application.
    let r = http_with(
        &d.addr,
        "POST",
        "/api/v1/functions/victim/rollback",
        b"{}",
        &[("Authorization", &bearer(&deploy_other))],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("application tests"), "{}", r.text());
    // ... nor deploy into it through a bundle.
    let f = FnDir::python("victim", "def handler(e, c):\n    return 'pwned'\n");
    let out = d.cli_with_token(&deploy_other, &["deploy", f.path()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("application tests"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(versions_of(&d, "victim"), 2);
    assert_eq!(live_of(&d, "victim"), 2);

    // deploy for its application: rolls back, and is the actor.
    let r = http_with(
        &d.addr,
        "POST",
        "/api/v1/functions/victim/rollback",
        b"{}",
        &[
            ("Authorization", &bearer(&deploy_tests)),
            ("x-hearth-actor", "somebody-else"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(live_of(&d, "victim"), 1);
    let history = d.get("/api/v1/functions/victim/releases").json();
    let actors: Vec<&str> = history["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|r| r["actor"].as_str())
        .collect();
    assert_eq!(actors.first(), Some(&"deployer"), "{history}");
    assert!(!actors.contains(&"somebody-else"), "{history}");
    // The CLI's own releases are the local admin's.
    d.ok(&["publish", "victim", "--version", "2"]);
    let history = d.get("/api/v1/functions/victim/releases").json();
    assert_eq!(history["releases"][0]["actor"], "local-admin");

    // deploy may not touch applications or tokens (admin).
    let r = http_with(
        &d.addr,
        "PUT",
        "/api/v1/apps/tests",
        br#"{"max_workers":1}"#,
        &[("Authorization", &bearer(&deploy_tests))],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("scope admin"));
    let r = http_with(
        &d.addr,
        "GET",
        "/api/v1/tokens",
        b"",
        &[("Authorization", &bearer(&deploy_tests))],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn tokens_are_listed_without_secrets_and_revoked_at_once() {
    let d = Daemon::start();
    let t = token(&d, "ci", "deploy", None);
    let list = d.ok(&["token", "list"]);
    assert!(list.contains("ci") && list.contains("deploy"), "{list}");
    assert!(list.contains("local-admin"), "{list}");
    let json = d.get("/api/v1/tokens").text();
    assert!(!json.contains(&t), "the secret is never listed");
    assert!(!json.contains(&d.token));
    // Only a hash is kept in the store.
    let db = std::fs::read(d.data.join("hearth.db")).expect("db");
    let wal = std::fs::read(d.data.join("hearth.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
            "the token is not stored in clear"
        );
    }
    let auth = bearer(&t);
    let ok = http_with(
        &d.addr,
        "GET",
        "/api/v1/functions",
        b"",
        &[("Authorization", &auth)],
    );
    assert_eq!(ok.status, 200);
    // The last use is recorded.
    let listed = d.get("/api/v1/tokens").json();
    let ci = listed["tokens"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "ci").cloned())
        .expect("ci listed");
    assert!(ci["last_used"].as_i64().is_some(), "{ci}");

    d.ok(&["token", "revoke", "ci"]);
    let r = http_with(
        &d.addr,
        "GET",
        "/api/v1/functions",
        b"",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 401, "a revoked token is refused at once");
    let err = d.fails(&["token", "revoke", "ci"]);
    assert!(err.contains("no token named"), "{err}");
    // Duplicates and bad scopes are clear errors.
    token(&d, "twice", "read", None);
    let err = d.fails(&["token", "create", "--name", "twice", "--scope", "read"]);
    assert!(err.contains("exists already"), "{err}");
    let err = d.fails(&["token", "create", "--name", "x", "--scope", "root"]);
    assert!(err.contains("unknown scope"), "{err}");
    let err = d.fails(&[
        "token", "create", "--name", "x", "--scope", "admin", "--app", "tests",
    ]);
    assert!(err.contains("--app limits deploy and invoke"), "{err}");
}

#[test]
fn the_local_admin_token_is_private_and_replaced_when_missing() {
    use std::os::unix::fs::MetadataExt as _;
    let mut d = Daemon::start();
    let file = d.data.join("admin.token");
    let meta = std::fs::metadata(&file).expect("admin.token");
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::getuid().as_raw());
    let first = d.token.clone();
    // A restart keeps it; deleting it makes a new one and the old one dies.
    d.ok(&["list"]);
    assert!(d.stop());
    let d2 = Daemon::start_in(&d.data, &[], &[]);
    assert_eq!(d2.token, first);
    drop(d2);
    std::fs::remove_file(&file).expect("rm");
    let d3 = Daemon::start_in(&d.data, &[], &[]);
    assert_ne!(d3.token, first);
    let r = http_anon(
        &d3.addr,
        "GET",
        "/api/v1/functions",
        b"",
        &[("Authorization", &bearer(&first))],
    );
    assert_eq!(r.status, 401);
    d3.ok(&["list"]);
}

/// The attack from the issue: a deployed function's own code goes for the
/// management API over its network, and for the daemon's token on disk.
#[test]
fn function_code_cannot_reach_the_management_api_as_anyone() {
    let d = Daemon::start();
    victim(&d);
    let code = r#"
import json, os, urllib.request, urllib.error

def attempt(addr, method, path, body, headers):
    req = urllib.request.Request("http://" + addr + path, data=body.encode(), method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception as e:
        return str(e)

def handler(event, context):
    addr = event["addr"]
    out = {}
    out["rollback_text_plain"] = attempt(addr, "POST", "/api/v1/functions/victim/rollback", "{}",
        {"Content-Type": "text/plain", "Origin": "http://evil.example", "Host": "evil.example"})
    out["rollback_json"] = attempt(addr, "POST", "/api/v1/functions/victim/rollback", "{}",
        {"Content-Type": "application/json", "x-hearth-actor": "admin"})
    out["alias"] = attempt(addr, "PUT", "/api/v1/functions/victim/aliases/prod", '{"version":1}',
        {"Content-Type": "application/json"})
    out["budget"] = attempt(addr, "PUT", "/api/v1/apps/tests", '{"max_workers":1}',
        {"Content-Type": "application/json"})
    files = [{"path": "hearth.toml", "data": "bmFtZT0idmljdGltIgpydW50aW1lPSJweXRob24iCmVudHJ5PSJtYWluLmhhbmRsZXIiCmFwcD0idGVzdHMiCg=="},
             {"path": "main.py", "data": "ZGVmIGhhbmRsZXIoZSwgYyk6CiAgICByZXR1cm4gInB3bmVkIgo="}]
    out["deploy"] = attempt(addr, "POST", "/api/v1/deploy", json.dumps({"files": files}),
        {"Content-Type": "application/json"})
    out["made_up_token"] = attempt(addr, "POST", "/api/v1/functions/victim/rollback", "{}",
        {"Content-Type": "application/json", "Authorization": "Bearer hearth_" + "A" * 43})
    try:
        with open(event["token_file"]) as f:
            out["token_file"] = "read: " + f.read()
    except Exception as e:
        out["token_file"] = type(e).__name__
    out["env_tokens"] = [k for k, v in os.environ.items() if "hearth_" in v or "TOKEN" in k]
    return out
"#;
    let f = FnDir::python("attacker", code);
    d.ok(&["deploy", f.path()]);
    let event = serde_json::json!({
        "addr": d.addr,
        "token_file": d.data.join("admin.token"),
    });
    let r = d.post("/fn/attacker", &event.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    for key in [
        "rollback_text_plain",
        "rollback_json",
        "alias",
        "budget",
        "deploy",
        "made_up_token",
    ] {
        let status = out[key].as_u64().unwrap_or(0);
        assert!(status == 401 || status == 403, "{key}: {out}");
    }
    assert_eq!(out["env_tokens"], serde_json::json!([]), "{out}");
    if nix::unistd::getuid().is_root() {
        assert_eq!(out["token_file"], "PermissionError", "{out}");
    } else {
        eprintln!(
            "not root: workers run as this user and could read the token file; skipping that check"
        );
    }
    assert_eq!(live_of(&d, "victim"), 2);
    assert_eq!(versions_of(&d, "victim"), 2);
    assert_eq!(d.post("/fn/victim", "{}").json()["v"], 2);
    let apps = d.get("/api/v1/apps").json();
    let tests = apps["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "tests").cloned())
        .expect("tests app");
    assert_eq!(tests["max_workers"], 0, "{apps}");
    assert!(d.get("/api/v1/functions/victim/aliases").json()["aliases"]
        .as_array()
        .is_none_or(|a| a.is_empty()));
}

#[test]
fn browser_borne_requests_are_refused_even_with_a_token() {
    let d = Daemon::start();
    victim(&d);
    let auth = bearer(&d.token);
    // A form post (text/plain).
    let r = http_anon(
        &d.addr,
        "POST",
        "/api/v1/functions/victim/rollback",
        b"{}",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
    );
    assert_eq!(r.status, 415, "{}", r.text());
    // A page of another origin.
    let r = http_anon(
        &d.addr,
        "POST",
        "/api/v1/functions/victim/rollback",
        b"{}",
        &[("Authorization", &auth), ("Origin", "http://evil.example")],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    // DNS rebinding: a foreign host name.
    let r = http_anon(
        &d.addr,
        "POST",
        "/api/v1/functions/victim/rollback",
        b"{}",
        &[("Authorization", &auth), ("Host", "evil.example:7700")],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("allowed_hosts"), "{}", r.text());
    assert_eq!(live_of(&d, "victim"), 2);
    // The same origin is fine (the console will be served from here).
    let origin = format!("http://{}", d.addr);
    let r = http_anon(
        &d.addr,
        "POST",
        "/api/v1/functions/victim/rollback",
        b"{}",
        &[("Authorization", &auth), ("Origin", &origin)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // A name allowed by the daemon's settings.
    let d2 = Daemon::start_with(&["--allowed-host", "hearth.internal"], &[]);
    let r = http_anon(
        &d2.addr,
        "GET",
        "/api/v1/functions",
        b"",
        &[
            ("Authorization", &bearer(&d2.token)),
            ("Host", "hearth.internal:7700"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn key_protected_applications_need_an_invoke_token() {
    let d = Daemon::start();
    victim(&d);
    let caller = token(&d, "caller", "invoke", Some("tests"));
    let stranger = token(&d, "stranger", "invoke", Some("elsewhere"));
    let reader = token(&d, "reader", "read", None);
    let out = d.ok(&["app", "tests", "--invoke", "key"]);
    assert!(out.contains("invoke key"), "{out}");
    let call = |auth: Option<&str>| {
        let b = auth.map(bearer);
        let headers: Vec<(&str, &str)> = b.iter().map(|b| ("Authorization", b.as_str())).collect();
        http_anon(&d.addr, "POST", "/fn/victim", b"{}", &headers)
    };
    let r = call(None);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("key-protected"), "{}", r.text());
    assert_eq!(call(Some(&stranger)).status, 403);
    assert_eq!(call(Some(&reader)).status, 403);
    let r = call(Some(&caller));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["v"], 2);
    assert_eq!(call(Some(&d.token)).status, 200, "admin may call");
    // The CLI sends its token: invoke works.
    assert!(d.ok(&["invoke", "victim"]).contains("\"v\""));
    // Budgets set later keep the mode; open again opens.
    d.ok(&["app", "tests", "--max-workers", "3"]);
    assert_eq!(call(None).status, 401);
    d.ok(&["app", "tests", "--invoke", "open"]);
    assert_eq!(call(None).status, 200);
}

#[test]
fn rate_limits_answer_429_with_retry_after_and_are_counted() {
    let d = Daemon::start_with(&["--api-rate", "2/s burst 3"], &[]);
    let mut statuses = Vec::new();
    let mut retry = None;
    for _ in 0..8 {
        let r = d.get("/api/v1/functions");
        if r.status == 429 {
            retry = r.header("retry-after").map(str::to_owned);
            assert_eq!(r.code(), "rate_limited");
            assert!(r.text().contains("api_rate"), "{}", r.text());
        }
        statuses.push(r.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(retry.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
    // Counted (read once the allowance is back).
    assert!(common::eventually(5, || {
        let r = d.get("/api/v1/workers");
        r.status == 200 && r.json()["api_throttled"].as_u64().unwrap_or(0) >= 1
    }));
    // Another token has its own allowance.
    let r = http_anon(&d.addr, "GET", "/api/v1/health", b"", &[]);
    assert_eq!(r.status, 200);

    // Per function, from its hearth.toml, by every path.
    let d = Daemon::start();
    let f = FnDir::python_with(
        "limited",
        "def handler(e, c):\n    return 1\n",
        "[limits]\nrate_per_second = 1\nrate_burst = 2\n",
    );
    d.ok(&["deploy", f.path()]);
    let statuses: Vec<u16> = (0..6).map(|_| d.post("/fn/limited", "{}").status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = d.post("/fn/limited", "{}");
    if r.status == 429 {
        assert!(r.text().contains("rate_per_second"), "{}", r.text());
        assert!(r.header("retry-after").is_some());
    }
    let throttled = d.get("/api/v1/workers").json()["throttled"]
        .as_u64()
        .unwrap_or(0);
    assert!(throttled >= 1, "throttles are counted");
}
